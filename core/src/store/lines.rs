//! Helpers shared by the record parsers: numbered lines and `; ` fields, over raw bytes.
//!
//! A data file may hold anything (an editor, a bad disk), so parsing works on bytes: a field
//! that must be text (a name, a timestamp) is checked to be UTF-8 where it is read, and a
//! message is kept byte for byte.

use super::{DataFile, LoadWarning, Problem};
use crate::proto::timestamp::parse_civil_time;
use crate::time::Timestamp;
use crate::time::Zone;
use crate::types::UserName;

/// One line of a file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    /// One-based line number.
    pub number: usize,
    /// The line as the file holds it, without its `\n` (a `\r` before it is kept).
    pub raw: &'a [u8],
    /// The line without a trailing `\r`.
    pub text: &'a [u8],
}

/// The lines of a file: every complete line, and the last one if it lacks its `\n`.
pub(super) struct Lines<'a> {
    /// Lines ending in `\n`, empty ones included.
    pub complete: Vec<Line<'a>>,
    /// A last line without its `\n` (never empty).
    pub unterminated: Option<Line<'a>>,
}

/// Split `bytes` into lines.
pub(super) fn lines(bytes: &[u8]) -> Lines<'_> {
    let mut complete = Vec::new();
    let mut unterminated = None;
    let mut parts = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, raw)) = parts.next() {
        let line = Line {
            number: i + 1,
            raw,
            text: raw.strip_suffix(b"\r").unwrap_or(raw),
        };
        if parts.peek().is_some() {
            complete.push(line);
        } else if !raw.is_empty() {
            unterminated = Some(line);
        }
    }
    Lines {
        complete,
        unterminated,
    }
}

/// Whether a line holds nothing at all (skipped without a word: it carries no record).
pub(super) fn is_empty(line: &Line<'_>) -> bool {
    line.text.is_empty()
}

/// The lines of a file the server writes itself, each with its record or the problem that
/// keeps it out.
///
/// An empty line is skipped. A last line without its `\n` is a record whose append was cut
/// short by a crash; it was never acknowledged, so it is reported as torn and never trusted.
pub(super) fn records<'a>(
    file: DataFile,
    bytes: &'a [u8],
    warnings: &mut Vec<LoadWarning>,
) -> Vec<Line<'a>> {
    let all = lines(bytes);
    if let Some(torn) = all.unterminated {
        warnings.push(LoadWarning {
            file,
            line: torn.number,
            problem: Problem::Torn {
                raw: torn.raw.to_vec(),
            },
        });
    }
    all.complete.into_iter().filter(|l| !is_empty(l)).collect()
}

/// Record `reason` as the damage of `line`.
pub(super) fn damaged(file: DataFile, line: &Line<'_>, reason: String) -> LoadWarning {
    LoadWarning {
        file,
        line: line.number,
        problem: Problem::Damaged {
            reason,
            raw: line.raw.to_vec(),
        },
    }
}

/// `bytes` as text, or why not.
pub(super) fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes)
        .map_err(|_| format!("the {what} \"{}\" is not UTF-8 text", bytes.escape_ascii()))
}

/// Split at the first `sep`.
pub(super) fn split_once<'a>(bytes: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = bytes.windows(sep.len()).position(|w| w == sep)?;
    Some((&bytes[..at], &bytes[at + sep.len()..]))
}

/// Split at the last `sep`.
pub(super) fn rsplit_once<'a>(bytes: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = bytes.windows(sep.len()).rposition(|w| w == sep)?;
    Some((&bytes[..at], &bytes[at + sep.len()..]))
}

/// Split into exactly `N` fields at `; `, the last taking the rest; `None` if there are fewer.
pub(super) fn fields<const N: usize>(bytes: &[u8]) -> Option<[&[u8]; N]> {
    let mut out = [&bytes[..0]; N];
    let mut rest = bytes;
    for slot in out.iter_mut().take(N - 1) {
        let (head, tail) = split_once(rest, b"; ")?;
        *slot = head;
        rest = tail;
    }
    out[N - 1] = rest;
    Some(out)
}

/// Parse a user-name field.
pub(super) fn user(field: &[u8]) -> Result<UserName, String> {
    let s = utf8(field, "user name")?;
    UserName::new(s).map_err(|e| format!("invalid user name {s:?}: {e}"))
}

/// Parse a timestamp field in the server's zone.
pub(super) fn timestamp(field: &[u8], zone: Zone) -> Result<Timestamp, String> {
    let field = utf8(field, "timestamp")?;
    let civil = parse_civil_time(field).ok_or_else(|| format!("malformed timestamp {field:?}"))?;
    zone.timestamp_of(civil).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_raw_bytes_and_numbers() {
        let l = lines(b"a\r\n\nb\xff\nc");
        let raw: Vec<&[u8]> = l.complete.iter().map(|l| l.raw).collect();
        assert_eq!(raw, [&b"a\r"[..], b"", b"b\xff"]);
        assert_eq!(l.complete[0].text, b"a");
        let last = l.unterminated.unwrap();
        assert_eq!((last.number, last.raw), (4, &b"c"[..]));
        assert!(lines(b"a\n").unterminated.is_none());
        assert!(lines(b"").complete.is_empty());
    }

    #[test]
    fn fields_split_at_the_separator_and_the_last_takes_the_rest() {
        let [a, b, c] = fields::<3>(b"1; x; y; z").unwrap();
        assert_eq!((a, b, c), (&b"1"[..], &b"x"[..], &b"y; z"[..]));
        assert!(fields::<3>(b"1; x").is_none());
        assert_eq!(
            rsplit_once(b"a; b; c", b"; "),
            Some((&b"a; b"[..], &b"c"[..]))
        );
    }
}
