//! The timers of a transfer machine, one table for the sender and the receiver alike (after
//! quinn-proto's `connection/timer.rs`).
//!
//! Why a table: each machine has several deadlines (the peer going silent, a delayed ACK, loss
//! detection, the probe timeout, the end of lingering…). Kept as named slots, `poll_timeout`
//! is the minimum over the table and `handle_timeout` asks each slot whether it expired,
//! instead of every machine recomputing its deadlines from a dozen fields in two places.

use crate::UnixMillis;

/// Which deadline a slot of the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Nothing authentic was heard from the peer for the idle timeout: give up.
    Idle,
    /// Sender: a packet sent before the newest acknowledged one becomes lost at this time.
    LossDetection,
    /// Sender: nothing was acknowledged for a probe timeout: send probes.
    Probe,
    /// Sender: the pacer will have credit for the next datagram.
    Pacing,
    /// Receiver: acknowledge what arrived at the latest now.
    AckDelay,
    /// After the end (success or failure), stop answering the peer's stragglers.
    Linger,
    /// Receiver: a challenge to a new peer address expires unanswered.
    PathValidation,
    /// Receiver: the audience's decision is due (declined for it then). Sender: the longest
    /// it waits for that decision.
    Decision,
    /// A `Hold` is due, so that the peer does not time out while we check a partial file.
    KeepAlive,
}

impl Timer {
    const COUNT: usize = 9;

    fn index(self) -> usize {
        match self {
            Timer::Idle => 0,
            Timer::LossDetection => 1,
            Timer::Probe => 2,
            Timer::Pacing => 3,
            Timer::AckDelay => 4,
            Timer::Linger => 5,
            Timer::PathValidation => 6,
            Timer::Decision => 7,
            Timer::KeepAlive => 8,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerTable {
    at: [Option<UnixMillis>; Timer::COUNT],
}

impl TimerTable {
    /// Arm `timer` for `at` (replacing an earlier deadline).
    pub(crate) fn set(&mut self, timer: Timer, at: UnixMillis) {
        self.at[timer.index()] = Some(at);
    }

    /// Arm or disarm `timer`.
    pub(crate) fn set_or_stop(&mut self, timer: Timer, at: Option<UnixMillis>) {
        self.at[timer.index()] = at;
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<UnixMillis> {
        self.at[timer.index()]
    }

    /// Disarm `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer.index()] = None;
    }

    /// Disarm every timer (the machine has ended).
    pub(crate) fn stop_all(&mut self) {
        self.at = [None; Timer::COUNT];
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: UnixMillis) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// If `timer` is due at `now`, disarm it and say so.
    pub(crate) fn expire(&mut self, timer: Timer, now: UnixMillis) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<UnixMillis> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, UnixMillis(100));
        t.set(Timer::AckDelay, UnixMillis(5));
        assert_eq!(t.next(), Some(UnixMillis(5)));
        assert!(!t.expire(Timer::AckDelay, UnixMillis(4)));
        assert!(t.expire(Timer::AckDelay, UnixMillis(5)));
        assert_eq!(t.next(), Some(UnixMillis(100)));
        t.stop_all();
        assert_eq!(t.next(), None);
    }
}
