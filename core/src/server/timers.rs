//! The server's timers: one small table of per-connection deadlines, quinn-style.
//!
//! Each connection has at most one armed entry per [`TimerKind`] in a min-heap. A deadline
//! that moves later (a connection's output made progress) is not re-sorted: when its old
//! entry comes due, the owner looks at the real deadline and either fires or re-arms. So
//! arming costs `O(log n)` once per wait, not once per progress report, and
//! [`Timers::next`] may name an instant at which nothing is due yet — a spurious wake-up,
//! which the server's contract allows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::output::ConnId;
use crate::time::UnixMillis;

/// What a connection can be waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// The login timeout of a connection that has not logged in.
    Login,
    /// The write timeout of a connection whose output makes no progress.
    Stall,
    /// The end of a rate-limit delay: the connection's held request may run.
    Wake,
    /// The deadline of a TLS handshake after `STARTTLS`.
    Handshake,
    /// The keepalive of a logged-in connection: ping it, or give it up (see `liveness`).
    Keepalive,
}

impl TimerKind {
    fn bit(self) -> u8 {
        match self {
            TimerKind::Login => 1,
            TimerKind::Stall => 2,
            TimerKind::Wake => 4,
            TimerKind::Handshake => 8,
            TimerKind::Keepalive => 16,
        }
    }
}

/// Which kinds a connection has an entry for (a bit per [`TimerKind`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Armed(u8);

impl Armed {
    /// Whether `kind` has an entry.
    pub fn has(self, kind: TimerKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// The heap of entries.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(UnixMillis, ConnId, TimerKind)>>,
}

impl Timers {
    /// Arm `kind` for `conn` at `at` unless an entry is already there (it comes due no later
    /// than any deadline that only moves later, and re-arms then).
    pub fn arm(&mut self, armed: &mut Armed, conn: ConnId, kind: TimerKind, at: UnixMillis) {
        if !armed.has(kind) {
            armed.0 |= kind.bit();
            self.heap.push(Reverse((at, conn, kind)));
        }
    }

    /// The earliest entry, if any.
    pub fn next(&self) -> Option<UnixMillis> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Take the next entry due at `now`; the caller clears its [`Armed`] bit with
    /// [`Timers::fired`] and fires or re-arms.
    pub fn pop_due(&mut self, now: UnixMillis) -> Option<(ConnId, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, conn, kind))| (conn, kind))
            }
            _ => None,
        }
    }

    /// The entry of `kind` was taken.
    pub fn fired(armed: &mut Armed, kind: TimerKind) {
        armed.0 &= !kind.bit();
    }

    /// Entries in the heap.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_kind_and_due_entries_come_in_order() {
        let mut t = Timers::default();
        let (a, b) = (ConnId::new(0, 0), ConnId::new(1, 0));
        let (mut armed_a, mut armed_b) = (Armed::default(), Armed::default());
        t.arm(&mut armed_a, a, TimerKind::Stall, UnixMillis(30));
        t.arm(&mut armed_a, a, TimerKind::Stall, UnixMillis(40));
        t.arm(&mut armed_b, b, TimerKind::Login, UnixMillis(10));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(UnixMillis(10)));
        assert_eq!(t.pop_due(UnixMillis(9)), None);
        assert_eq!(t.pop_due(UnixMillis(35)), Some((b, TimerKind::Login)));
        assert_eq!(t.pop_due(UnixMillis(35)), Some((a, TimerKind::Stall)));
        Timers::fired(&mut armed_a, TimerKind::Stall);
        assert!(!armed_a.has(TimerKind::Stall));
        t.arm(&mut armed_a, a, TimerKind::Stall, UnixMillis(40));
        assert_eq!(t.next(), Some(UnixMillis(40)));
    }
}
