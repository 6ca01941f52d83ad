//! How the client words what its transfers did: the lines a presenter and an audience read.
//!
//! Kept apart from the bookkeeping (`uploads`) so that the words can change without touching
//! the rules, and the rules without the words.

use std::net::SocketAddr;

use super::output::FileProblem;
use super::render::human_bytes;
use super::upload_queue::PendingUpload;
use crate::UnixMillis;
use crate::transfer::{AbortReason, PeerReason};
use crate::types::UserName;

/// `300.0 MiB in 1.2 s, 250.0 MiB/s`; `2.9 MiB in 23 ms, …` under a second (where tenths of
/// a second would read `0.0 s`). The speed is of the `moved` bytes only: a resumed transfer's
/// kept bytes did not travel (and a `--max-rate` cap would seem broken if they counted).
pub(super) fn rate(bytes: u64, moved: u64, since: UnixMillis, now: UnixMillis) -> String {
    let ms = now.millis_since(since).max(1);
    let per_sec = moved.min(bytes) as f64 * 1000.0 / ms as f64;
    let took = if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    };
    format!(
        "{} in {took}, {}/s",
        human_bytes(bytes),
        human_bytes(per_sec as u64)
    )
}

/// `16 uploads are`: how many uploads run, as the subject of a sentence.
fn uploads_running(running: usize) -> String {
    match running {
        1 => "1 upload is".to_string(),
        n => format!("{n} uploads are"),
    }
}

/// An upload that waits its turn, `place` in line: asked for while `at_limit` uploads ran
/// (the most at once), or while others still waited.
pub(super) fn upload_queued(
    path: &str,
    to: &UserName,
    at_limit: Option<usize>,
    place: usize,
) -> String {
    let when = match place {
        1 => "it goes next".to_string(),
        2 => "1 goes before it".to_string(),
        n => format!("{} go before it", n - 1),
    };
    match at_limit {
        Some(running) => format!(
            "{path} to {to} waits its turn: {} running (the most at once); {when}",
            uploads_running(running)
        ),
        None => format!("{path} to {to} waits its turn: {when}"),
    }
}

/// An upload asked for while the queue was full too.
pub(super) fn upload_queue_full(path: &str, at_limit: Option<usize>, waiting: usize) -> String {
    let running = match at_limit {
        Some(running) => format!("{} running and ", uploads_running(running)),
        None => String::new(),
    };
    format!(
        "Cannot upload {path}: {running}{waiting} more wait their turn (the most); wait for one to finish"
    )
}

/// `a.mp4 to luke, b.mp4 to luke`: queued uploads, listed.
fn listed(uploads: &[PendingUpload]) -> String {
    uploads
        .iter()
        .map(|u| format!("{} to {}", u.path, u.to))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CANCEL` took these uploads out of the queue.
pub(super) fn queue_cancelled(uploads: &[PendingUpload]) -> String {
    match uploads {
        [one] => format!(
            "{} to {} will not be sent (it was waiting its turn)",
            one.path, one.to
        ),
        many => format!(
            "{} queued uploads will not be sent: {}",
            many.len(),
            listed(many)
        ),
    }
}

/// The client stops with uploads still waiting their turn.
pub(super) fn queue_dropped(uploads: &[PendingUpload]) -> String {
    match uploads {
        [one] => format!(
            "{} to {} was not sent (it was waiting its turn)",
            one.path, one.to
        ),
        many => format!(
            "{} queued uploads were not sent: {}",
            many.len(),
            listed(many)
        ),
    }
}

/// `OUT` while uploads still wait their turn.
pub(super) fn logging_out_after_queue(waiting: usize) -> String {
    let uploads = match waiting {
        1 => "the queued upload has".to_string(),
        n => format!("the {n} queued uploads have"),
    };
    format!(
        "Logging out once {uploads} run and the running transfers finish (they give up on their own if the peer is gone)…"
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
        AbortReason::PeerLeft => format!(
            "{to} went offline (its client stopped); it stopped without ending the transfer, so it keeps nothing of it: sending it again once {to} is back starts over"
        ),
        other => other.to_string(),
    }
}

/// An upload that gave up without one answer from the audience's client: not "went silent"
/// but probably unreachable, which a person can do something about.
pub(super) fn upload_never_answered(name: &str, to: &UserName, at: SocketAddr) -> String {
    format!(
        "Upload of {name} to {to} failed: no answer at all came from {to}'s client at {at}: its UDP port may not be reachable from here (a firewall or a NAT on the way), or its client stopped"
    )
}

/// A download that gave up before anything came from the presenter's client.
pub(super) fn download_never_arrived(name: &str, from: &UserName, at: SocketAddr) -> String {
    format!(
        "Upload of {name} from {from} failed: nothing at all arrived from {from}'s client at {at}: its datagrams may not get through to this client (a firewall or a NAT on the way), or its client stopped"
    )
}

/// The problem to report for an upload source that is not a readable regular file.
pub fn upload_problem(path: &str, problem: &FileProblem) -> String {
    format!("Cannot upload {path}: {problem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_under_a_second_says_its_milliseconds() {
        let t0 = UnixMillis(1_000_000);
        assert_eq!(
            rate(3_000_000, 3_000_000, t0, UnixMillis(1_000_023)),
            "2.9 MiB in 23 ms, 124.4 MiB/s"
        );
        assert_eq!(
            rate(300 << 20, 300 << 20, t0, UnixMillis(1_001_200)),
            "300.0 MiB in 1.2 s, 250.0 MiB/s"
        );
        assert_eq!(rate(10, 10, t0, t0), "10 B in 1 ms, 9.8 KiB/s");
        // Resumed with 15 of 64 MiB kept: 49 MiB moved in 6.4 s.
        assert_eq!(
            rate(64 << 20, 49 << 20, t0, UnixMillis(1_006_400)),
            "64.0 MiB in 6.4 s, 7.7 MiB/s"
        );
    }
}
