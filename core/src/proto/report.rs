//! The presenter's report of how an upload ended: `XFR <transfer id> <outcome> <bytes>`.
//!
//! The file goes from client to client; only the presenter's client knows how it ended. It
//! tells the server in this one line so that the server's console can narrate each upload's
//! outcome once. The line is not a request: like `PONG` it may come between any two lines,
//! gets no reply (a reply would be mistaken for the answer to the request in flight), and a
//! report the server cannot place is answered with a `* NOTICE`.
//!
//! `bytes` is how much of the file the audience acknowledged (all of it when `complete`).

use std::fmt;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag_no_case, take_while_m_n},
    character::complete::{char, digit1},
    combinator::{all_consuming, map_res, value},
};

use crate::transfer::TransferId;

/// The word that starts a report line (any case).
pub const WORD: &str = "XFR";

/// How an upload ended, as its presenter's client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The audience verified and kept the whole file.
    Complete,
    /// The audience declined it, or did not answer in time.
    Declined,
    /// Either side cancelled it, or left.
    Cancelled,
    /// The network, a disk or the file's check failed.
    Failed,
}

impl UploadOutcome {
    /// The word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            UploadOutcome::Complete => "complete",
            UploadOutcome::Declined => "declined",
            UploadOutcome::Cancelled => "cancelled",
            UploadOutcome::Failed => "failed",
        }
    }
}

/// One report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReport {
    /// The transfer, as the `227` named it.
    pub id: TransferId,
    /// How it ended.
    pub outcome: UploadOutcome,
    /// Bytes the audience acknowledged.
    pub bytes: u64,
}

impl fmt::Display for UploadReport {
    /// The wire form without the line ending.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{WORD} {} {} {}",
            self.id,
            self.outcome.word(),
            self.bytes
        )
    }
}

/// Whether a line from a client is meant as a report (it starts with `XFR `, any case),
/// well formed or not.
pub fn is_report(line: &[u8]) -> bool {
    line.len() >= 4 && line[..3].eq_ignore_ascii_case(WORD.as_bytes()) && line[3] == b' '
}

fn outcome(i: &str) -> IResult<&str, UploadOutcome> {
    alt((
        value(UploadOutcome::Complete, tag_no_case("complete")),
        value(UploadOutcome::Declined, tag_no_case("declined")),
        value(UploadOutcome::Cancelled, tag_no_case("cancelled")),
        value(UploadOutcome::Failed, tag_no_case("failed")),
    ))
    .parse(i)
}

/// Parse a report line (without its line ending).
pub fn parse_report(line: &[u8]) -> Option<UploadReport> {
    let line = std::str::from_utf8(line).ok()?;
    let id = map_res(
        take_while_m_n(16, 16, |c: char| c.is_ascii_hexdigit()),
        |s| u64::from_str_radix(s, 16),
    );
    let bytes = map_res(digit1, str::parse::<u64>);
    let parsed: IResult<&str, _> = all_consuming((
        tag_no_case(WORD),
        char(' '),
        id,
        char(' '),
        outcome,
        char(' '),
        bytes,
    ))
    .parse(line);
    let (_, (_, _, id, _, outcome, _, bytes)) = parsed.ok()?;
    Some(UploadReport {
        id: TransferId(id),
        outcome,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_renders_and_parses_back() {
        for outcome in [
            UploadOutcome::Complete,
            UploadOutcome::Declined,
            UploadOutcome::Cancelled,
            UploadOutcome::Failed,
        ] {
            let r = UploadReport {
                id: TransferId(0x00c0_ffee_0000_0001),
                outcome,
                bytes: u64::MAX,
            };
            let line = r.to_string();
            assert!(is_report(line.as_bytes()));
            assert_eq!(parse_report(line.as_bytes()), Some(r), "{line}");
        }
        assert_eq!(
            parse_report(b"xfr 00000000000000ff COMPLETE 5"),
            Some(UploadReport {
                id: TransferId(255),
                outcome: UploadOutcome::Complete,
                bytes: 5
            })
        );
    }

    #[test]
    fn hostile_reports_are_not_parsed_and_never_panic() {
        for bad in [
            &b"XFR "[..],
            b"XFR 00ff complete 1",
            b"XFR 00000000000000ff done 1",
            b"XFR 00000000000000ff complete",
            b"XFR 00000000000000ff complete 99999999999999999999999",
            b"XFR 00000000000000ff complete 1 extra",
            b"XFR 00000000000000ff complete -1",
            b"XFR \xff\xfe",
        ] {
            assert!(is_report(bad));
            assert_eq!(
                parse_report(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(!is_report(b"XFRX 1"));
        assert!(!is_report(b"MSG XFR 1"));
    }
}
