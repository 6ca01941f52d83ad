//! Helpers shared by the record parsers: numbered lines and `; ` fields.

use super::LoadWarning;
use crate::proto::timestamp::parse_civil_time;
use crate::time::Timestamp;
use crate::time::Zone;

/// The non-blank lines of `text` with their one-based numbers, `\r` stripped.
///
/// A last line without its `\n` is a record whose append was cut short by a crash; it was never
/// acknowledged, so it is reported and skipped rather than half-trusted.
pub(super) fn records<'a>(
    file: &'static str,
    text: &'a str,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i + 1 == n {
            if !complete && !line.trim().is_empty() {
                if file == "credentials.txt" {
                    // Written by people, often without a final newline: trust it.
                    out.push((i + 1, line));
                } else {
                    warnings.push(LoadWarning {
                        file,
                        line: i + 1,
                        problem: "incomplete last line (cut short by a crash?) ignored".into(),
                    });
                }
            }
            break;
        }
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    out
}

/// Parse a timestamp field in the server's zone.
pub(super) fn timestamp(field: &str, zone: Zone) -> Result<Timestamp, String> {
    let civil = parse_civil_time(field).ok_or_else(|| format!("malformed timestamp {field:?}"))?;
    zone.timestamp_of(civil).map_err(|e| e.to_string())
}
