//! The server's further state: `inbox.txt`, `blocks.txt`, `logins.txt`.

use super::LoadWarning;
use super::lines::{records, timestamp};
use crate::time::{Timestamp, Zone};
use crate::types::{UserName, check_text};

/// A private message waiting for its recipient to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    /// Recipient.
    pub to: UserName,
    /// When it was sent.
    pub at: Timestamp,
    /// Sender.
    pub from: UserName,
    /// The text; may contain `;`.
    pub text: String,
}

/// `blocker` blocks `blocked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// Who blocks.
    pub blocker: UserName,
    /// Who is blocked.
    pub blocked: UserName,
}

/// When a user last logged in and out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// Who.
    pub user: UserName,
    /// Last login.
    pub login: Timestamp,
    /// Last logout, if they ever logged out.
    pub logout: Option<Timestamp>,
}

fn user(s: &str) -> Result<UserName, String> {
    UserName::new(s).map_err(|e| format!("invalid user name {s:?}: {e}"))
}

fn parse_all<T>(
    file: &'static str,
    text: &str,
    warnings: &mut Vec<LoadWarning>,
    mut one: impl FnMut(&str) -> Result<T, String>,
) -> Vec<T> {
    let mut out = Vec::new();
    for (line_no, line) in records(file, text, warnings) {
        match one(line) {
            Ok(r) => out.push(r),
            Err(problem) => warnings.push(LoadWarning {
                file,
                line: line_no,
                problem,
            }),
        }
    }
    out
}

/// Parse `inbox.txt`.
pub fn parse_inbox(text: &str, zone: Zone, warnings: &mut Vec<LoadWarning>) -> Vec<InboxRecord> {
    parse_all("inbox.txt", text, warnings, |line| {
        let mut f = line.splitn(4, "; ");
        let (Some(to), Some(at), Some(from), Some(text)) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err("expected `recipient; timestamp; sender; message`".into());
        };
        check_text(text).map_err(|e| e.to_string())?;
        Ok(InboxRecord {
            to: user(to)?,
            at: timestamp(at, zone)?,
            from: user(from)?,
            text: text.to_owned(),
        })
    })
}

/// One line of `inbox.txt`, with its `\n`.
pub fn render_inbox(r: &InboxRecord, zone: Zone) -> String {
    format!("{}; {}; {}; {}\n", r.to, zone.render(r.at), r.from, r.text)
}

/// Parse `blocks.txt`.
pub fn parse_blocks(text: &str, warnings: &mut Vec<LoadWarning>) -> Vec<BlockRecord> {
    parse_all("blocks.txt", text, warnings, |line| {
        let (a, b) = line.split_once("; ").ok_or("expected `blocker; blocked`")?;
        Ok(BlockRecord {
            blocker: user(a)?,
            blocked: user(b)?,
        })
    })
}

/// One line of `blocks.txt`, with its `\n`.
pub fn render_block(r: &BlockRecord) -> String {
    format!("{}; {}\n", r.blocker, r.blocked)
}

/// Parse `logins.txt`.
pub fn parse_logins(text: &str, zone: Zone, warnings: &mut Vec<LoadWarning>) -> Vec<LoginRecord> {
    parse_all("logins.txt", text, warnings, |line| {
        let f: Vec<&str> = line.split("; ").collect();
        let [u, login, logout] = f.as_slice() else {
            return Err("expected `username; last login; last logout`".into());
        };
        let logout = if *logout == "-" {
            None
        } else {
            Some(timestamp(logout, zone)?)
        };
        Ok(LoginRecord {
            user: user(u)?,
            login: timestamp(login, zone)?,
            logout,
        })
    })
}

/// One line of `logins.txt`, with its `\n`.
pub fn render_login(r: &LoginRecord, zone: Zone) -> String {
    let logout = r
        .logout
        .map(|t| zone.render(t))
        .unwrap_or_else(|| "-".into());
    format!("{}; {}; {}\n", r.user, zone.render(r.login), logout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn inbox_blocks_and_logins_round_trip() {
        let z = Zone::from_offset_seconds(39600);
        let t = Timestamp::from_unix_secs(1_795_000_000);
        let i = InboxRecord {
            to: name("bob"),
            at: t,
            from: name("yoda"),
            text: "a; b".into(),
        };
        let mut w = Vec::new();
        assert_eq!(parse_inbox(&render_inbox(&i, z), z, &mut w), vec![i]);
        let b = BlockRecord {
            blocker: name("bob"),
            blocked: name("yoda"),
        };
        assert_eq!(parse_blocks(&render_block(&b), &mut w), vec![b]);
        let l = LoginRecord {
            user: name("bob"),
            login: t,
            logout: None,
        };
        assert_eq!(
            parse_logins(&render_login(&l, z), z, &mut w),
            vec![l.clone()]
        );
        let l2 = LoginRecord {
            logout: Some(t),
            ..l
        };
        assert_eq!(parse_logins(&render_login(&l2, z), z, &mut w), vec![l2]);
        assert!(w.is_empty(), "{w:?}");
    }
}
