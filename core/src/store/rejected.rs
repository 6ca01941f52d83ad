//! `<file>.rejected`: the lines of a data file the loader could not load, kept byte for byte.
//!
//! Each entry is two lines: a header saying when, from which line and why, then the line
//! exactly as the file held it (so it can be copied back once fixed):
//!
//! ```text
//! # 21 Nov 2026 22:30:01; credentials.txt line 3; damaged; no password after the name obiwan
//! obiwan
//! ```
//!
//! The third field is `damaged` or `torn` (a last line cut short by a crash). The loader reads
//! `credentials.txt.rejected` back: the name of every damaged credentials line stays reserved,
//! so nobody can sign up as it and take over its posts and private messages. To free such a
//! name, restore its line in `credentials.txt` or delete its entry here.

use super::credentials::intended_name;
use super::lines::lines;
use super::{DataFile, LoadWarning, Problem};
use crate::types::UserName;

/// The header of an entry for a torn line.
const TORN: &str = "torn";
/// The header of an entry for a damaged line.
const DAMAGED: &str = "damaged";

/// The entry for `warning` (nothing for a warning that keeps its line), stamped `at` (the
/// server's rendering of now).
pub fn render_entry(warning: &LoadWarning, at: &str) -> Option<Vec<u8>> {
    let raw = warning.problem.rejected_bytes()?;
    let kind = match warning.problem {
        Problem::Torn { .. } => TORN,
        _ => DAMAGED,
    };
    // The reason is one line: a control character in it (it may quote the file) is shown
    // escaped.
    let reason: String = warning
        .problem
        .to_string()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    let mut out = format!(
        "# {at}; {} line {}; {kind}; {reason}\n",
        warning.file, warning.line
    )
    .into_bytes();
    out.extend_from_slice(raw);
    out.push(b'\n');
    Some(out)
}

/// The names that stay reserved because `credentials.txt.rejected` (its content given) holds
/// a damaged line meant for them.
///
/// Read leniently, since people may edit it: after a header the next line is the rejected
/// line, whatever it holds; a line that follows no header counts as damaged; an entry marked
/// `torn` (a sign-up cut short, never acknowledged) reserves nothing.
pub fn reserved_names(rejected_credentials: &[u8]) -> Vec<UserName> {
    let mut out = Vec::new();
    let mut after_header: Option<bool> = None; // Some(torn?) right after a header
    for line in lines(rejected_credentials).complete {
        match after_header.take() {
            Some(torn) => {
                if !torn {
                    out.extend(intended_name(line.raw));
                }
            }
            None => {
                if let Some(header) = line.text.strip_prefix(b"# ") {
                    let kind = header.split(|&b| b == b';').nth(2).map(|k| k.trim_ascii());
                    after_header = Some(kind == Some(TORN.as_bytes()));
                } else if !line.text.trim_ascii().is_empty() {
                    out.extend(intended_name(line.raw));
                }
            }
        }
    }
    out
}

/// Which rejected files the loader reads back: only `credentials.txt.rejected`, for the names
/// it keeps reserved.
pub const READ_BACK: [DataFile; 1] = [DataFile::Credentials];

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(problem: Problem) -> LoadWarning {
        LoadWarning {
            file: DataFile::Credentials,
            line: 3,
            problem,
        }
    }

    #[test]
    fn an_entry_is_a_header_and_the_line_byte_for_byte() {
        let e = render_entry(
            &warning(Problem::Damaged {
                reason: "bad\nname".into(),
                raw: b"l\xffke\tr2d2\r".to_vec(),
            }),
            "21 Nov 2026 22:30:01",
        )
        .unwrap();
        assert_eq!(
            e,
            b"# 21 Nov 2026 22:30:01; credentials.txt line 3; damaged; bad\\nname\nl\xffke\tr2d2\r\n"
        );
        assert!(render_entry(&warning(Problem::Renumbered { from: 2, to: 1 }), "x").is_none());
    }

    #[test]
    fn damaged_credentials_reserve_their_names_and_torn_sign_ups_do_not() {
        let mut file = Vec::new();
        for (raw, torn) in [
            (&b"luke\tr2d2"[..], false),
            (b"eve $argon2id$v=1", true),
            (b"# obiwan", false),
            (b"l\xffia pw", false),
        ] {
            let problem = if torn {
                Problem::Torn { raw: raw.to_vec() }
            } else {
                Problem::Damaged {
                    reason: "x".into(),
                    raw: raw.to_vec(),
                }
            };
            file.extend(render_entry(&warning(problem), "21 Nov 2026 22:30:01").unwrap());
        }
        // An operator's own note, and a line pasted in without a header.
        file.extend_from_slice(b"\nhan solo\n");
        let names: Vec<String> = reserved_names(&file)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["luke", "han"]);
    }
}
