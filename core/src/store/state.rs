//! The server's further state: `inbox.txt`, `blocks.txt`, `logins.txt`.

use std::collections::BTreeMap;

use super::lines::{damaged, fields, records, timestamp, user};
use super::{DataFile, LoadWarning};
use crate::time::{Timestamp, Zone};
use crate::types::{MessageText, UserName, check_stored_text};

/// A private message waiting for its recipient to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    /// Recipient.
    pub to: UserName,
    /// When it was sent.
    pub at: Timestamp,
    /// Sender.
    pub from: UserName,
    /// The text; may contain `;`, and bytes that are not UTF-8 when the file held them.
    pub text: MessageText,
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

/// Parse every line with `one`. When `key` gives a record a key, a later record with the same
/// key is damaged (the server keeps one per key, so the file cannot hold two): `what` names it.
fn parse_all<T, K: Ord>(
    file: DataFile,
    text: &[u8],
    warnings: &mut Vec<LoadWarning>,
    mut one: impl FnMut(&[u8]) -> Result<T, String>,
    key: impl Fn(&T) -> Option<(K, String)>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut first: BTreeMap<K, usize> = BTreeMap::new();
    for line in records(file, text, warnings) {
        match one(line.text) {
            Ok(r) => match key(&r) {
                Some((k, what)) => match first.get(&k) {
                    Some(n) => warnings.push(damaged(
                        file,
                        &line,
                        format!("{what} already on line {n}; only the first line counts"),
                    )),
                    None => {
                        first.insert(k, line.number);
                        out.push(r);
                    }
                },
                None => out.push(r),
            },
            Err(reason) => warnings.push(damaged(file, &line, reason)),
        }
    }
    out
}

fn no_key<T>(_: &T) -> Option<((), String)> {
    None
}

/// Parse `inbox.txt`; a line that is not a letter is a [`super::Problem::Damaged`] warning.
pub fn parse_inbox(
    text: impl AsRef<[u8]>,
    zone: Zone,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<InboxRecord> {
    parse_all(
        DataFile::Inbox,
        text.as_ref(),
        warnings,
        |line| {
            let Some([to, at, from, text]) = fields::<4>(line) else {
                return Err("expected `recipient; timestamp; sender; message`".into());
            };
            let text = MessageText::from_bytes(text);
            check_stored_text(&text).map_err(|e| e.to_string())?;
            Ok(InboxRecord {
                to: user(to)?,
                at: timestamp(at, zone)?,
                from: user(from)?,
                text,
            })
        },
        no_key,
    )
}

/// One line of `inbox.txt`, with its `\n`; the text byte for byte.
pub fn render_inbox(r: &InboxRecord, zone: Zone) -> Vec<u8> {
    let mut out = format!("{}; {}; {}; ", r.to, zone.render(r.at), r.from).into_bytes();
    out.extend_from_slice(r.text.as_bytes());
    out.push(b'\n');
    out
}

/// Parse `blocks.txt`; a line that is not a block is a [`super::Problem::Damaged`] warning.
pub fn parse_blocks(text: impl AsRef<[u8]>, warnings: &mut Vec<LoadWarning>) -> Vec<BlockRecord> {
    parse_all(
        DataFile::Blocks,
        text.as_ref(),
        warnings,
        |line| {
            let Some([a, b]) = fields::<2>(line) else {
                return Err("expected `blocker; blocked`".into());
            };
            Ok(BlockRecord {
                blocker: user(a)?,
                blocked: user(b)?,
            })
        },
        |r| {
            Some((
                (r.blocker.clone(), r.blocked.clone()),
                format!("{} blocks {}", r.blocker, r.blocked),
            ))
        },
    )
}

/// One line of `blocks.txt`, with its `\n` (text: names are ASCII).
pub fn render_block(r: &BlockRecord) -> String {
    format!("{}; {}\n", r.blocker, r.blocked)
}

/// Parse `logins.txt`; a line that is not a login record is a [`super::Problem::Damaged`]
/// warning.
pub fn parse_logins(
    text: impl AsRef<[u8]>,
    zone: Zone,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<LoginRecord> {
    parse_all(
        DataFile::Logins,
        text.as_ref(),
        warnings,
        |line| {
            let Some([u, login, logout]) = fields::<3>(line) else {
                return Err("expected `username; last login; last logout`".into());
            };
            let logout = if logout == b"-" {
                None
            } else {
                Some(timestamp(logout, zone)?)
            };
            Ok(LoginRecord {
                user: user(u)?,
                login: timestamp(login, zone)?,
                logout,
            })
        },
        |r| Some((r.user.clone(), format!("the last login of {}", r.user))),
    )
}

/// One line of `logins.txt`, with its `\n` (text: names and timestamps are ASCII).
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
        assert_eq!(parse_inbox(render_inbox(&i, z), z, &mut w), vec![i]);
        let b = BlockRecord {
            blocker: name("bob"),
            blocked: name("yoda"),
        };
        assert_eq!(parse_blocks(render_block(&b), &mut w), vec![b]);
        let l = LoginRecord {
            user: name("bob"),
            login: t,
            logout: None,
        };
        assert_eq!(
            parse_logins(render_login(&l, z), z, &mut w),
            vec![l.clone()]
        );
        let l2 = LoginRecord {
            logout: Some(t),
            ..l
        };
        assert_eq!(parse_logins(render_login(&l2, z), z, &mut w), vec![l2]);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn a_letter_keeps_bytes_that_are_not_utf8() {
        let line: &[u8] = b"bob; 21 Nov 2026 22:30:01; yoda; \xc3\x28 hi\n";
        let mut w = Vec::new();
        let r = parse_inbox(line, Zone::UTC, &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(render_inbox(&r[0], Zone::UTC), line);
    }

    #[test]
    fn damaged_lines_of_each_file_are_reported_by_line() {
        let z = Zone::UTC;
        let lines_of = |w: &[LoadWarning]| w.iter().map(|w| w.line).collect::<Vec<_>>();
        let mut w = Vec::new();
        let i = parse_inbox(
            "bob; 21 Nov 2026 22:30:01; yoda; hi\nbob; 21 Nov 2026; yoda; hi\nbob; x\n\n\t\n",
            z,
            &mut w,
        );
        assert_eq!((i.len(), lines_of(&w)), (1, vec![2, 3, 5]));
        let mut w = Vec::new();
        let b = parse_blocks(
            &b"bob; yoda\nbob;yoda\nbob; yo da\nbob; \xff\nbob; yoda\n"[..],
            &mut w,
        );
        assert_eq!((b.len(), lines_of(&w)), (1, vec![2, 3, 4, 5]));
        let mut w = Vec::new();
        let l = parse_logins(
            "bob; 21 Nov 2026 22:30:01; -\nbob; 21 Nov 2026 22:30:01\nbob; -; -\nbob; 21 Nov 2026 22:30:01; -; x\nbob; 21 Nov 2026 22:30:02; -\n",
            z,
            &mut w,
        );
        assert_eq!((l.len(), lines_of(&w)), (1, vec![2, 3, 4, 5]));
    }
}
