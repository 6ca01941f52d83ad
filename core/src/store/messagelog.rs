//! `messagelog.txt`: `number; timestamp; username; message; edited`.

use super::LoadWarning;
use super::lines::{records, timestamp};
use crate::time::{Timestamp, Zone};
use crate::types::{MessageNumber, UserName, check_text};

/// One post as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    /// Position on the board, 1..n.
    pub number: MessageNumber,
    /// When it was posted or last edited.
    pub at: Timestamp,
    /// Who wrote it.
    pub author: UserName,
    /// The text; may contain `;`.
    pub text: String,
    /// Whether it was edited.
    pub edited: bool,
}

fn parse_line(line: &str, zone: Zone) -> Result<PostRecord, String> {
    let mut head = line.splitn(4, "; ");
    let (Some(n), Some(ts), Some(user), Some(tail)) =
        (head.next(), head.next(), head.next(), head.next())
    else {
        return Err("expected `number; timestamp; username; message; edited`".into());
    };
    let (text, edited) = tail.rsplit_once("; ").ok_or("missing the `edited` field")?;
    let number = n
        .parse::<u32>()
        .ok()
        .and_then(MessageNumber::new)
        .ok_or_else(|| format!("{n:?} is not a message number"))?;
    let at = timestamp(ts, zone)?;
    let author = UserName::new(user).map_err(|e| format!("invalid user name {user:?}: {e}"))?;
    let edited = match edited {
        "yes" => true,
        "no" => false,
        other => return Err(format!("edited must be yes or no, not {other:?}")),
    };
    check_text(text).map_err(|e| e.to_string())?;
    Ok(PostRecord {
        number,
        at,
        author,
        text: text.to_owned(),
        edited,
    })
}

/// Parse the file. Bad lines are skipped with a warning; posts are renumbered 1..n in file
/// order (with a warning if the file's numbers had gaps), since numbers are positions.
pub fn parse_messagelog(
    text: &str,
    zone: Zone,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<PostRecord> {
    const FILE: &str = "messagelog.txt";
    let mut out: Vec<PostRecord> = Vec::new();
    for (line_no, line) in records(FILE, text, warnings) {
        match parse_line(line, zone) {
            Ok(mut post) => {
                let expected = MessageNumber::from_index(out.len());
                if post.number != expected {
                    warnings.push(LoadWarning {
                        file: FILE,
                        line: line_no,
                        problem: format!("message #{} renumbered #{expected}", post.number),
                    });
                    post.number = expected;
                }
                out.push(post);
            }
            Err(problem) => warnings.push(LoadWarning {
                file: FILE,
                line: line_no,
                problem,
            }),
        }
    }
    out
}

/// One line of the file, with its `\n`.
pub fn render_post(p: &PostRecord, zone: Zone) -> String {
    let edited = if p.edited { "yes" } else { "no" };
    format!(
        "{}; {}; {}; {}; {}\n",
        p.number,
        zone.render(p.at),
        p.author,
        p.text,
        edited
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_may_contain_the_separator() {
        let mut w = Vec::new();
        let posts = parse_messagelog(
            "1; 21 Nov 2026 22:30:01; yoda; do; or do not; no\n",
            Zone::UTC,
            &mut w,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(posts[0].text, "do; or do not");
        assert_eq!(
            render_post(&posts[0], Zone::UTC),
            "1; 21 Nov 2026 22:30:01; yoda; do; or do not; no\n"
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let mut w = Vec::new();
        let posts = parse_messagelog(
            "1; 21 Nov 2026 22:30:01; yoda; hi; no\n2; 21 Nov 20",
            Zone::UTC,
            &mut w,
        );
        assert_eq!(posts.len(), 1);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn gaps_are_renumbered() {
        let mut w = Vec::new();
        let posts = parse_messagelog(
            "1; 21 Nov 2026 22:30:01; yoda; a; no\n3; 21 Nov 2026 22:30:02; luke; b; yes\n",
            Zone::UTC,
            &mut w,
        );
        assert_eq!(posts[1].number.get(), 2);
        assert!(posts[1].edited);
        assert_eq!(w.len(), 1);
    }
}
