//! One connection's output, as the core accounts for it.
//!
//! The core hands bytes to the driver and the driver reports what it wrote to the socket, so
//! the core always knows how much of a connection's output is still unsent. That number
//! drives three decisions, all made here and nowhere else:
//! - **backpressure**: above the high-water mark the core stops taking the connection's
//!   requests (their replies would only pile up) and resumes once it is back under the
//!   low-water mark; long listings are produced only while under the mark, as output drains;
//! - **the write timeout**: a connection with unsent output and no progress for that long
//!   is cut off;
//! - **the hard limit**: a connection that fell so far behind others' events that more than
//!   the limit waits for it is cut off, so the server's memory is bounded by connections ×
//!   limit.
//!
//! Counting is in bytes the runtime actually wrote, so a later byte transform (TLS) between
//! the core and the socket changes nothing here.

use std::collections::VecDeque;

use bytes::Bytes;

use super::inbox::LetterId;
use crate::time::UnixMillis;

/// An event waiting behind an unfinished listing, and the stored private message it
/// delivers, if it is one.
#[derive(Debug)]
struct Held {
    bytes: Bytes,
    letter: Option<LetterId>,
}

/// Output accounting of one connection.
#[derive(Debug)]
pub struct Flow {
    /// Bytes handed to the driver since the connection opened.
    sent: u64,
    /// Bytes the driver reported written.
    written: u64,
    /// Events held back until the connection's listing is finished, so they never land in
    /// the middle of a multi-line reply or before the catch-up they follow.
    held: VecDeque<Held>,
    held_bytes: usize,
    /// When the output last made progress (or started waiting).
    last_progress: UnixMillis,
    /// Above the high-water mark and not yet back under the low one.
    backed_up: bool,
    /// Private messages in flight: the stream offset their last byte ends at.
    letters: Vec<(u64, LetterId)>,
}

impl Flow {
    /// A connection that has sent nothing yet.
    pub fn new(now: UnixMillis) -> Self {
        Self {
            sent: 0,
            written: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            last_progress: now,
            backed_up: false,
            letters: Vec::new(),
        }
    }

    /// Bytes handed to the driver and not yet written.
    pub fn queued(&self) -> usize {
        usize::try_from(self.sent - self.written).unwrap_or(usize::MAX)
    }

    /// Everything not yet written: queued in the driver or held here.
    pub fn unsent(&self) -> usize {
        self.queued().saturating_add(self.held_bytes)
    }

    /// `len` more bytes go to the driver now; `letter` if they deliver a stored private
    /// message. Returns whether the output was idle before (so the write timer must start).
    pub fn hand_out(&mut self, len: usize, letter: Option<LetterId>, now: UnixMillis) -> bool {
        let was_idle = self.sent == self.written;
        if was_idle {
            self.last_progress = now;
        }
        self.sent += len as u64;
        if let Some(id) = letter {
            self.letters.push((self.sent, id));
        }
        was_idle
    }

    /// Keep an event until the listing in progress is done.
    pub fn hold(&mut self, bytes: Bytes, letter: Option<LetterId>) {
        self.held_bytes += bytes.len();
        self.held.push_back(Held { bytes, letter });
    }

    /// The held events, to hand out now, in order.
    pub fn release_held(&mut self) -> Vec<(Bytes, Option<LetterId>)> {
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|h| (h.bytes, h.letter))
            .collect()
    }

    /// The driver wrote `n` more bytes.
    pub fn wrote(&mut self, n: usize, now: UnixMillis) {
        self.written = (self.written + n as u64).min(self.sent);
        self.last_progress = now;
    }

    /// When the write timeout cuts the connection if nothing more is written, if output is
    /// waiting at all.
    pub fn stall_deadline(&self, write_timeout_millis: u64) -> Option<UnixMillis> {
        (self.sent > self.written).then(|| self.last_progress.plus_millis(write_timeout_millis))
    }

    /// Update the backpressure state; returns whether the connection may take requests.
    pub fn accepting(&mut self, high_water: usize, low_water: usize) -> bool {
        let unsent = self.unsent();
        if unsent > high_water {
            self.backed_up = true;
        } else if unsent <= low_water {
            self.backed_up = false;
        }
        !self.backed_up
    }

    /// Whether a listing may produce more now (it fills up to the high-water mark).
    pub fn has_room(&self, high_water: usize) -> bool {
        self.unsent() < high_water
    }

    /// The connection ended with `unacked` of its written bytes not acknowledged by the peer:
    /// the private messages that surely arrived, and those that may not have.
    pub fn settle_letters(&mut self, unacked: usize) -> (Vec<LetterId>, Vec<LetterId>) {
        let arrived = self.written.saturating_sub(unacked as u64);
        let mut delivered = Vec::new();
        let mut not = Vec::new();
        for (end, id) in self.letters.drain(..) {
            if end <= arrived {
                delivered.push(id);
            } else {
                not.push(id);
            }
        }
        not.extend(self.held.drain(..).filter_map(|h| h.letter));
        self.held_bytes = 0;
        (delivered, not)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_has_hysteresis_between_the_marks() {
        let mut f = Flow::new(UnixMillis(0));
        f.hand_out(100, None, UnixMillis(0));
        assert!(f.accepting(100, 50));
        f.hand_out(1, None, UnixMillis(0));
        assert!(!f.accepting(100, 50));
        f.wrote(40, UnixMillis(1));
        assert!(!f.accepting(100, 50), "61 left: still above the low mark");
        f.wrote(11, UnixMillis(2));
        assert!(f.accepting(100, 50));
    }

    #[test]
    fn the_write_timer_runs_only_while_output_waits_and_restarts_with_progress() {
        let mut f = Flow::new(UnixMillis(0));
        assert_eq!(f.stall_deadline(30), None);
        assert!(f.hand_out(10, None, UnixMillis(5)));
        assert!(!f.hand_out(10, None, UnixMillis(6)));
        assert_eq!(f.stall_deadline(30), Some(UnixMillis(35)));
        f.wrote(5, UnixMillis(20));
        assert_eq!(f.stall_deadline(30), Some(UnixMillis(50)));
        f.wrote(15, UnixMillis(21));
        assert_eq!(f.stall_deadline(30), None);
    }

    #[test]
    fn letters_count_as_delivered_only_once_written_and_acknowledged() {
        let mut f = Flow::new(UnixMillis(0));
        f.hand_out(10, Some(LetterId(1)), UnixMillis(0));
        f.hand_out(10, Some(LetterId(2)), UnixMillis(0));
        f.hand_out(10, Some(LetterId(3)), UnixMillis(0));
        f.hold(Bytes::from_static(b"x"), Some(LetterId(4)));
        f.wrote(25, UnixMillis(1));
        // 25 written, of which the peer had not acknowledged the last 6: only #1 arrived.
        let (delivered, not) = f.settle_letters(6);
        assert_eq!(delivered, vec![LetterId(1)]);
        assert_eq!(not, vec![LetterId(2), LetterId(3), LetterId(4)]);
    }
}
