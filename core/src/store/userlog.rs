//! `userlog.txt`: `number; login timestamp; username; client IP; client UDP port`.

use std::net::IpAddr;

use super::lines::{damaged, records, timestamp, user, utf8};
use super::{DataFile, LoadWarning};
use crate::time::{Timestamp, Zone};
use crate::types::UserName;

/// One active user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRecord {
    /// Position in login order, 1..n.
    pub number: u32,
    /// When they logged in.
    pub since: Timestamp,
    /// Who.
    pub user: UserName,
    /// The client's IP address as the server sees it.
    pub ip: IpAddr,
    /// The UDP port the client receives uploads on (0 if it declared none, e.g. `nc`).
    pub udp_port: u16,
}

/// One line of the file, with its `\n` (text: every field is ASCII).
pub fn render_active(a: &ActiveRecord, zone: Zone) -> String {
    format!(
        "{}; {}; {}; {}; {}\n",
        a.number,
        zone.render(a.since),
        a.user,
        a.ip,
        a.udp_port
    )
}

/// Parse the file (used by tests and tools; the server empties it at start, since nobody is
/// online then).
pub fn parse_userlog(
    text: impl AsRef<[u8]>,
    zone: Zone,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<ActiveRecord> {
    const FILE: DataFile = DataFile::UserLog;
    let mut out = Vec::new();
    for line in records(FILE, text.as_ref(), warnings) {
        let parsed = (|| -> Result<ActiveRecord, String> {
            let text = utf8(line.text, "line")?;
            let f: Vec<&str> = text.split("; ").collect();
            let [n, ts, name, ip, port] = f.as_slice() else {
                return Err("expected 5 fields".into());
            };
            Ok(ActiveRecord {
                number: n.parse().map_err(|_| format!("{n:?} is not a number"))?,
                since: timestamp(ts.as_bytes(), zone)?,
                user: user(name.as_bytes())?,
                ip: ip
                    .parse()
                    .map_err(|_| format!("{ip:?} is not an IP address"))?,
                udp_port: port
                    .parse()
                    .map_err(|_| format!("{port:?} is not a port"))?,
            })
        })();
        match parsed {
            Ok(a) => out.push(a),
            Err(reason) => warnings.push(damaged(FILE, &line, reason)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = ActiveRecord {
            number: 1,
            since: Timestamp::from_unix_secs(1_795_000_000),
            user: UserName::new("yoda").unwrap(),
            ip: "127.0.0.1".parse().unwrap(),
            udp_port: 5000,
        };
        let text = render_active(&a, Zone::UTC);
        assert!(text.ends_with("; yoda; 127.0.0.1; 5000\n"), "{text}");
        let mut w = Vec::new();
        assert_eq!(parse_userlog(&text, Zone::UTC, &mut w), vec![a]);
    }
}
