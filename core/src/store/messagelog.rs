//! `messagelog.txt`: `number; timestamp; username; message; edited`.

use super::lines::{damaged, fields, records, rsplit_once, timestamp, user, utf8};
use super::{DataFile, LoadWarning, Problem};
use crate::time::{Timestamp, Zone};
use crate::types::{MessageNumber, MessageText, UserName, check_stored_text};

/// One post as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    /// Position on the board, 1..n.
    pub number: MessageNumber,
    /// When it was posted or last edited.
    pub at: Timestamp,
    /// Who wrote it.
    pub author: UserName,
    /// The text; may contain `;`, and bytes that are not UTF-8 when the file held them.
    pub text: MessageText,
    /// Whether it was edited.
    pub edited: bool,
}

fn parse_line(line: &[u8], zone: Zone) -> Result<PostRecord, String> {
    let Some([n, ts, author, tail]) = fields::<4>(line) else {
        return Err("expected `number; timestamp; username; message; edited`".into());
    };
    let (text, edited) = rsplit_once(tail, b"; ").ok_or("missing the `edited` field")?;
    let n = utf8(n, "message number")?;
    let number = n
        .parse::<u32>()
        .ok()
        .and_then(MessageNumber::new)
        .ok_or_else(|| format!("{n:?} is not a message number"))?;
    let at = timestamp(ts, zone)?;
    let author = user(author)?;
    let edited = match edited {
        b"yes" => true,
        b"no" => false,
        other => {
            return Err(format!(
                "edited must be yes or no, not \"{}\"",
                other.escape_ascii()
            ));
        }
    };
    let text = MessageText::from_bytes(text);
    check_stored_text(&text).map_err(|e| e.to_string())?;
    Ok(PostRecord {
        number,
        at,
        author,
        text,
        edited,
    })
}

/// Parse the file. A line that is not a post is a [`Problem::Damaged`] warning; posts are
/// renumbered 1..n in file order (with a [`Problem::Renumbered`] warning where the file's
/// numbers had gaps), since numbers are positions.
pub fn parse_messagelog(
    text: impl AsRef<[u8]>,
    zone: Zone,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<PostRecord> {
    const FILE: DataFile = DataFile::MessageLog;
    let mut out: Vec<PostRecord> = Vec::new();
    for line in records(FILE, text.as_ref(), warnings) {
        match parse_line(line.text, zone) {
            Ok(mut post) => {
                let expected = MessageNumber::from_index(out.len());
                if post.number != expected {
                    warnings.push(LoadWarning {
                        file: FILE,
                        line: line.number,
                        problem: Problem::Renumbered {
                            from: post.number.get(),
                            to: expected.get(),
                        },
                    });
                    post.number = expected;
                }
                out.push(post);
            }
            Err(reason) => warnings.push(damaged(FILE, &line, reason)),
        }
    }
    out
}

/// One line of the file, with its `\n`; the text byte for byte.
pub fn render_post(p: &PostRecord, zone: Zone) -> Vec<u8> {
    let edited = if p.edited { "yes" } else { "no" };
    let mut out = format!("{}; {}; {}; ", p.number, zone.render(p.at), p.author).into_bytes();
    out.extend_from_slice(p.text.as_bytes());
    out.extend_from_slice(format!("; {edited}\n").as_bytes());
    out
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
            b"1; 21 Nov 2026 22:30:01; yoda; do; or do not; no\n"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_round_trip_exactly() {
        let line: &[u8] = b"1; 21 Nov 2026 22:30:01; yoda; caf\xe9 \xff\xfe; no\n";
        let mut w = Vec::new();
        let posts = parse_messagelog(line, Zone::UTC, &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(render_post(&posts[0], Zone::UTC), line);
    }

    #[test]
    fn each_kind_of_damage_is_reported_and_the_good_lines_kept() {
        let mut w = Vec::new();
        let text: &[u8] = b"1; 21 Nov 2026 22:30:01; yoda; ok; no\n\
            x; 21 Nov 2026 22:30:01; yoda; a; no\n\
            2; 31 Nov 2026 22:30:01; yoda; a; no\n\
            3; 21 Nov 2026 22:30:01; yo da; a; no\n\
            4; 21 Nov 2026 22:30:01; yoda; a; maybe\n\
            5; 21 Nov 2026 22:30:01; yoda; a\x1b[2J; no\n\
            6; 21 Nov 2026 22:30:01; yoda\n\
            7; 21 Nov 2026 22:30:01; y\xffda; a; no\n\
            8; 21 Nov 2026 22:30:02; luke; fine; yes\n";
        let posts = parse_messagelog(text, Zone::UTC, &mut w);
        assert_eq!(posts.len(), 2);
        let damaged: Vec<usize> = w
            .iter()
            .filter(|w| matches!(w.problem, Problem::Damaged { .. }))
            .map(|w| w.line)
            .collect();
        assert_eq!(damaged, [2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(posts[1].number.get(), 2);
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
        assert!(
            matches!(&w[..], [LoadWarning { line: 2, problem: Problem::Torn { raw }, .. }] if raw == b"2; 21 Nov 20"),
            "{w:?}"
        );
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
