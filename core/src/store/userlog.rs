//! `userlog.txt`: `number; login timestamp; username; client IP; client UDP port`.

use std::net::IpAddr;

use super::LoadWarning;
use super::lines::{records, timestamp};
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

/// One line of the file, with its `\n`.
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

/// Parse the file (used by tests and tools; the server rewrites it at start).
pub fn parse_userlog(text: &str, zone: Zone, warnings: &mut Vec<LoadWarning>) -> Vec<ActiveRecord> {
    const FILE: &str = "userlog.txt";
    let mut out = Vec::new();
    for (line_no, line) in records(FILE, text, warnings) {
        let parsed = (|| -> Result<ActiveRecord, String> {
            let f: Vec<&str> = line.split("; ").collect();
            let [n, ts, user, ip, port] = f.as_slice() else {
                return Err("expected 5 fields".into());
            };
            Ok(ActiveRecord {
                number: n.parse().map_err(|_| format!("{n:?} is not a number"))?,
                since: timestamp(ts, zone)?,
                user: UserName::new(user).map_err(|e| e.to_string())?,
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
            Err(problem) => warnings.push(LoadWarning {
                file: FILE,
                line: line_no,
                problem,
            }),
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
