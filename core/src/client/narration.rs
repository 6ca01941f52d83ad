//! How the client words what its transfers did: the lines a presenter and an audience read.
//!
//! Kept apart from the bookkeeping (`uploads`) so that the words can change without touching
//! the rules, and the rules without the words.

use super::output::FileProblem;
use super::render::human_bytes;
use crate::UnixMillis;
use crate::transfer::{AbortReason, PeerReason};
use crate::types::UserName;

/// `300.0 MiB in 1.2 s, 250.0 MiB/s`.
pub(super) fn rate(bytes: u64, since: UnixMillis, now: UnixMillis) -> String {
    let ms = now.millis_since(since).max(1);
    let per_sec = bytes as f64 * 1000.0 / ms as f64;
    format!(
        "{} in {:.1} s, {}/s",
        human_bytes(bytes),
        ms as f64 / 1000.0,
        human_bytes(per_sec as u64)
    )
}

/// `2 min`, `90 s`: a duration as a message says it.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// What becomes of an interrupted download's bytes, as the end of its line: kept for resuming
/// (`held` bytes) or removed.
pub(super) fn part_fate(kept: Option<u64>, from: &UserName) -> String {
    match kept {
        Some(held) => format!(
            "; the {} received are kept: if {from} sends it again, it resumes from there",
            human_bytes(held)
        ),
        None => "; the partial file was removed".to_string(),
    }
}

/// Why an upload failed, as its presenter should read it: what the audience's client said,
/// in words about that client.
pub(super) fn upload_failure(to: &UserName, reason: AbortReason) -> String {
    match reason {
        AbortReason::PeerAborted(PeerReason::LocalIo) => format!(
            "{to}'s client cannot save the file (its download folder is missing, full or not writable)"
        ),
        AbortReason::PeerAborted(PeerReason::Busy) => format!(
            "{to}'s client is receiving too many files at once; try again when one has finished"
        ),
        AbortReason::PeerAborted(PeerReason::Refused) => {
            format!("{to}'s client refused the file")
        }
        AbortReason::PeerAborted(PeerReason::Cancelled) => {
            format!("{to} cancelled it (or logged out); sending it again resumes where it stopped")
        }
        other => other.to_string(),
    }
}

/// The problem to report for an upload source that is not a readable regular file.
pub fn upload_problem(path: &str, problem: &FileProblem) -> String {
    format!("Cannot upload {path}: {problem}")
}
