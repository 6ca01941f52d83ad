//! The packets a sender has in flight, by packet number, and loss detection over them.
//!
//! Every transmission gets a fresh packet number, so an ACK says unambiguously which
//! transmission arrived. A packet is declared lost when one sent `packet_threshold` numbers
//! later is acknowledged, or `time_threshold` RTTs after a later one was (RFC 9002 §6.1); both
//! thresholds grow when a "lost" packet turns out to have arrived (reordering, as RACK does),
//! and such a late packet still counts as delivered. Lost packets are remembered a few RTTs
//! for that purpose, then forgotten.
//!
//! Packet numbers are sequential, so the packets sent live in a `VecDeque` indexed by
//! `pn - first` (as quinn-proto keeps its sent packets), and two short ordered lists say
//! which of them below the largest acknowledged number are still open: the suspects (neither
//! acknowledged nor lost yet) and the lost ones remembered. An ACK costs what it newly
//! acknowledges plus a binary search per range, and loss detection what it declares lost:
//! never a walk over the whole flight. Suspects become lost in the order they were sent (both
//! thresholds grow with the packet number), so each list stays sorted by construction.

use std::collections::VecDeque;

use super::super::rate::DeliveryState;
use super::super::rtt::{GRANULARITY_MS, RttEstimator};
use crate::UnixMillis;

/// Packet reordering tolerated before a packet is declared lost, at first (RFC 9002
/// kPacketThreshold); doubled, up to [`MAX_PACKET_THRESHOLD`], each time a loss proves
/// spurious.
const PACKET_THRESHOLD: u64 = 3;
/// Most reordering tolerated, in packets.
const MAX_PACKET_THRESHOLD: u64 = 256;
/// Time threshold in eighths of an RTT, at first (RFC 9002 kTimeThreshold = 9/8) and at most.
const TIME_THRESHOLD_X8: u64 = 9;
const MAX_TIME_THRESHOLD_X8: u64 = 16;
/// How many RTTs a packet declared lost is remembered, to notice that it arrived after all.
const LOST_MEMORY_RTTS: u64 = 4;

/// One transmission of a chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentPacket {
    /// Which chunk it carried.
    pub(super) chunk: u64,
    /// Bytes on the wire.
    pub(super) size: u64,
    /// File bytes it carried.
    pub(super) data_len: u64,
    pub(super) time_sent: UnixMillis,
    /// The rate controller's state when it left.
    pub(super) delivery: DeliveryState,
    /// Declared lost (no longer counted in flight) but remembered for a few RTTs.
    pub(super) lost: bool,
}

/// What an acknowledged packet was.
#[derive(Debug, Clone, Copy)]
pub(super) struct Acked {
    pub(super) packet: SentPacket,
    /// It had been declared lost: the path reorders more than tolerated.
    pub(super) was_lost: bool,
}

/// Packets in flight and the loss detector.
#[derive(Debug)]
pub(super) struct Flight {
    /// Slot `i` is packet number `first + i`: the packet while it is open, `None` once it was
    /// acknowledged or forgotten, or if the number went to a datagram not tracked here (a
    /// `Start`, the `Fin`).
    sent: VecDeque<Option<SentPacket>>,
    /// The packet number of `sent[0]`.
    first: u64,
    next_pn: u64,
    largest_acked: Option<u64>,
    /// Open packets below `largest_acked` not declared lost yet, by number (lazily pruned:
    /// an entry whose slot is empty was acknowledged).
    suspects: VecDeque<u64>,
    /// Packets declared lost and still remembered, by number (lazily pruned likewise).
    lost: VecDeque<u64>,
    bytes_in_flight: u64,
    loss_time: Option<UnixMillis>,
    packet_threshold: u64,
    time_threshold_x8: u64,
    /// An ACK's ranges, sorted and merged (reused: no allocation per ACK).
    ranges: Vec<(u64, u64)>,
}

impl Flight {
    pub(super) fn new() -> Self {
        Self {
            sent: VecDeque::new(),
            first: 0,
            next_pn: 0,
            largest_acked: None,
            suspects: VecDeque::new(),
            lost: VecDeque::new(),
            bytes_in_flight: 0,
            loss_time: None,
            packet_threshold: PACKET_THRESHOLD,
            time_threshold_x8: TIME_THRESHOLD_X8,
            ranges: Vec::new(),
        }
    }

    /// Bytes sent and neither acknowledged nor declared lost.
    pub(super) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// When the earliest packet not yet lost becomes lost by the time threshold.
    pub(super) fn loss_time(&self) -> Option<UnixMillis> {
        self.loss_time
    }

    /// Packets remembered (open, or lost and not forgotten yet): what the flight holds.
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.sent.iter().filter(|s| s.is_some()).count()
    }

    /// Slots held, remembered or not (the memory the flight takes).
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.sent.len()
    }

    /// The packet number for the next transmission.
    pub(super) fn take_pn(&mut self) -> u64 {
        self.next_pn += 1;
        self.next_pn - 1
    }

    fn slot_mut(&mut self, pn: u64) -> Option<&mut Option<SentPacket>> {
        let i = usize::try_from(pn.checked_sub(self.first)?).ok()?;
        self.sent.get_mut(i)
    }

    /// A packet left, under a number from [`Flight::take_pn`] (numbers only grow).
    pub(super) fn on_sent(&mut self, pn: u64, packet: SentPacket) {
        if self.sent.is_empty() {
            self.first = pn;
        }
        let Some(i) = pn
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if i < self.sent.len() {
            // A number used before: not the sender's way; keep the first.
            return;
        }
        self.sent.resize(i, None);
        self.sent.push_back(Some(packet));
        self.bytes_in_flight += packet.size;
    }

    /// Remove the packets an ACK covers (inclusive `(first, last)` ranges, in any order,
    /// overlapping or not, naming numbers sent or not), calling `acked` for each once.
    /// Returns the newly largest acknowledged packet number and its send time, if the ACK
    /// raised it (the RTT sample).
    pub(super) fn on_ack(
        &mut self,
        ranges: &[(u64, u64)],
        mut acked: impl FnMut(Acked),
    ) -> Option<(u64, UnixMillis)> {
        let end = self.first + self.sent.len() as u64;
        // Below this every open packet is a suspect or lost; at and above it, none was
        // acknowledged before.
        let fresh = self.largest_acked.map_or(self.first, |l| l + 1);
        let mut largest_new: Option<(u64, UnixMillis)> = None;
        // Sorted and merged first, so that no slot is visited twice however the peer wrote
        // its ranges (overlapping, repeated, out of order, reversed: hostile or not).
        let mut merged = std::mem::take(&mut self.ranges);
        merge(ranges, &mut merged);
        // Where the previous (lower) range left off in each list.
        let (mut si, mut li) = (0, 0);
        for &(lo, hi) in &merged {
            // Numbers at or above `fresh`: every slot of the range, once.
            let (from, to) = (lo.max(fresh).max(self.first), hi.saturating_add(1).min(end));
            for pn in from..to {
                self.take_acked(pn, &mut largest_new, &mut acked);
            }
            // Numbers below `fresh`: only the open ones, found in the two sorted lists.
            if lo < fresh {
                let top = hi.min(fresh - 1);
                si = seek(&self.suspects, si, lo);
                while let Some(&pn) = self.suspects.get(si).filter(|&&pn| pn <= top) {
                    self.take_acked(pn, &mut largest_new, &mut acked);
                    si += 1;
                }
                li = seek(&self.lost, li, lo);
                while let Some(&pn) = self.lost.get(li).filter(|&&pn| pn <= top) {
                    self.take_acked(pn, &mut largest_new, &mut acked);
                    li += 1;
                }
            }
        }
        self.ranges = merged;
        let raised = match largest_new {
            Some((pn, sent)) if self.largest_acked.is_none_or(|l| pn > l) => {
                // What is still open below the new largest is now a suspect.
                for p in fresh.max(self.first)..pn {
                    if self.slot_mut(p).is_some_and(|s| s.is_some()) {
                        self.suspects.push_back(p);
                    }
                }
                self.largest_acked = Some(pn);
                Some((pn, sent))
            }
            _ => None,
        };
        self.trim();
        raised
    }

    /// Acknowledge packet `pn` if it is open.
    fn take_acked(
        &mut self,
        pn: u64,
        largest_new: &mut Option<(u64, UnixMillis)>,
        acked: &mut impl FnMut(Acked),
    ) {
        let Some(p) = self.slot_mut(pn).and_then(Option::take) else {
            return;
        };
        if p.lost {
            self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
            self.time_threshold_x8 = (self.time_threshold_x8 + 1).min(MAX_TIME_THRESHOLD_X8);
        } else {
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(p.size);
        }
        acked(Acked {
            packet: p,
            was_lost: p.lost,
        });
        if largest_new.is_none_or(|(l, _)| pn > l) {
            *largest_new = Some((pn, p.time_sent));
        }
    }

    /// Drop empty slots at the front, and list entries below them.
    fn trim(&mut self) {
        while self.sent.front().is_some_and(Option::is_none) {
            self.sent.pop_front();
            self.first += 1;
        }
        if self.sent.is_empty() {
            self.first = self.next_pn;
        }
        let first = self.first;
        while self.suspects.front().is_some_and(|&pn| pn < first) {
            self.suspects.pop_front();
        }
        while self.lost.front().is_some_and(|&pn| pn < first) {
            self.lost.pop_front();
        }
    }

    /// Declare lost what the thresholds say is lost, calling `lost(pn, packet)` for each, and
    /// forget long-lost packets; re-arms [`Flight::loss_time`].
    pub(super) fn detect_lost(
        &mut self,
        now: UnixMillis,
        rtt: &RttEstimator,
        mut lost: impl FnMut(u64, &SentPacket),
    ) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let base = rtt.smoothed().max(rtt.latest());
        let loss_delay = (base * self.time_threshold_x8 / 8).max(GRANULARITY_MS);
        let forget_after = base.max(1) * LOST_MEMORY_RTTS;
        // Forget packets lost long ago, oldest first.
        while let Some(&pn) = self.lost.front() {
            match self.slot_mut(pn) {
                Some(slot)
                    if slot.is_some_and(|p| now.millis_since(p.time_sent) <= forget_after) =>
                {
                    break;
                }
                Some(slot) => *slot = None,
                None => {}
            }
            self.lost.pop_front();
        }
        self.trim();
        // Suspects in the order sent: the first that is not lost yet is the earliest to be.
        let packet_threshold = self.packet_threshold;
        while let Some(&pn) = self.suspects.front() {
            let Some(slot) = self.slot_mut(pn) else {
                self.suspects.pop_front();
                continue;
            };
            let Some(p) = slot.as_mut() else {
                // Acknowledged meanwhile.
                self.suspects.pop_front();
                continue;
            };
            let deadline = p.time_sent.plus_millis(loss_delay);
            if largest - pn < packet_threshold && deadline > now {
                self.loss_time = Some(deadline);
                break;
            }
            p.lost = true;
            let p = *p;
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(p.size);
            lost(pn, &p);
            self.suspects.pop_front();
            self.lost.push_back(pn);
        }
    }

    /// Forget everything (the transfer ended).
    pub(super) fn clear(&mut self) {
        self.sent.clear();
        self.suspects.clear();
        self.lost.clear();
        self.first = self.next_pn;
        self.bytes_in_flight = 0;
        self.loss_time = None;
    }
}

/// `ranges` (inclusive, any order; reversed ones are empty) sorted and merged into `out`.
fn merge(ranges: &[(u64, u64)], out: &mut Vec<(u64, u64)>) {
    out.clear();
    out.extend(ranges.iter().copied().filter(|&(lo, hi)| lo <= hi));
    out.sort_unstable();
    let mut w = 0;
    for r in 0..out.len() {
        let (lo, hi) = out[r];
        if w > 0 && lo <= out[w - 1].1.saturating_add(1) {
            out[w - 1].1 = out[w - 1].1.max(hi);
        } else {
            out[w] = (lo, hi);
            w += 1;
        }
    }
    out.truncate(w);
}

/// The first index at or after `from` of `list` (sorted) whose value is at least `lo`:
/// galloping from `from`, so the ranges of one ACK, in order, cost a search each in the
/// stretch between them rather than in the whole list.
fn seek(list: &VecDeque<u64>, from: usize, lo: u64) -> usize {
    let below = |i: usize| list.get(i).is_some_and(|&pn| pn < lo);
    if !below(from) {
        return from;
    }
    // list[from] < lo: find a bound past the answer, doubling the step.
    let (mut known_below, mut step) = (from, 1usize);
    while below(known_below + step) {
        known_below += step;
        step = step.saturating_mul(2);
    }
    // The answer lies in (known_below, known_below + step]: binary search there.
    let (mut lo_i, mut hi_i) = (known_below + 1, (known_below + step).min(list.len()));
    while lo_i < hi_i {
        let mid = lo_i + (hi_i - lo_i) / 2;
        if below(mid) {
            lo_i = mid + 1;
        } else {
            hi_i = mid;
        }
    }
    lo_i
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000);

    fn packet(chunk: u64, at: UnixMillis) -> SentPacket {
        SentPacket {
            chunk,
            size: 1000,
            data_len: 900,
            time_sent: at,
            delivery: DeliveryState {
                delivered: 0,
                delivered_time: at,
                first_sent_time: at,
                app_limited: false,
            },
            lost: false,
        }
    }

    /// A flight of `n` packets numbered 0.., sent 1 ms apart from `T0`.
    fn flight(n: u64) -> Flight {
        let mut f = Flight::new();
        for i in 0..n {
            let pn = f.take_pn();
            f.on_sent(pn, packet(i, T0.plus_millis(i)));
        }
        f
    }

    /// Acknowledge `ranges`; returns the chunks acknowledged (in the order reported), whether
    /// each had been declared lost, and the RTT sample.
    fn ack(f: &mut Flight, ranges: &[(u64, u64)]) -> (Vec<(u64, bool)>, Option<u64>) {
        let mut got = Vec::new();
        let sample = f.on_ack(ranges, |a| got.push((a.packet.chunk, a.was_lost)));
        (got, sample.map(|(pn, _)| pn))
    }

    fn lose(f: &mut Flight, now: UnixMillis, rtt: &RttEstimator) -> Vec<u64> {
        let mut lost = Vec::new();
        f.detect_lost(now, rtt, |pn, _| lost.push(pn));
        lost
    }

    fn sorted(mut v: Vec<(u64, bool)>) -> Vec<u64> {
        v.sort_unstable();
        v.into_iter().map(|(c, _)| c).collect()
    }

    #[test]
    fn seek_finds_the_first_value_not_below() {
        let list: VecDeque<u64> = [1, 3, 5, 7, 9, 11, 13, 15, 17].into_iter().collect();
        for from in 0..=list.len() {
            for lo in 0..20 {
                let want = (from..list.len())
                    .find(|&i| list[i] >= lo)
                    .unwrap_or(list.len());
                assert_eq!(
                    seek(&list, from, lo),
                    want.max(from),
                    "from {from}, lo {lo}"
                );
            }
        }
        assert_eq!(seek(&VecDeque::new(), 0, 5), 0);
    }

    #[test]
    fn ranges_with_gaps_acknowledge_exactly_what_they_name() {
        let mut f = flight(20);
        let (got, sample) = ack(&mut f, &[(15, 19), (8, 10), (0, 3)]);
        assert_eq!(sorted(got), [0, 1, 2, 3, 8, 9, 10, 15, 16, 17, 18, 19]);
        assert_eq!(sample, Some(19));
        assert_eq!(f.bytes_in_flight(), 8 * 1000);
        assert_eq!(f.remembered(), 8);
        // The front was acknowledged: its slots are gone.
        assert_eq!(f.slots(), 16);
    }

    #[test]
    fn a_repeated_or_overlapping_ack_acknowledges_nothing_twice() {
        let mut f = flight(10);
        let (first, _) = ack(&mut f, &[(2, 5)]);
        assert_eq!(first.len(), 4);
        let (again, sample) = ack(&mut f, &[(2, 5), (3, 4), (0, 5), (1, 2)]);
        assert_eq!(sorted(again), [0, 1], "only what was still open");
        assert_eq!(sample, None, "the largest did not grow: no RTT sample");
        let (dup, _) = ack(&mut f, &[(0, 5), (0, 5)]);
        assert!(dup.is_empty());
        assert_eq!(f.bytes_in_flight(), 4 * 1000);
    }

    #[test]
    fn an_ack_for_numbers_never_sent_is_ignored() {
        let mut f = flight(5);
        // Far beyond the last number, a reversed range, the whole number space.
        let (got, sample) = ack(&mut f, &[(1_000, 2_000), (9, 3), (u64::MAX, u64::MAX)]);
        assert!(got.is_empty());
        assert_eq!(sample, None);
        assert_eq!(f.bytes_in_flight(), 5 * 1000);
        let (all, sample) = ack(&mut f, &[(0, u64::MAX)]);
        assert_eq!(sorted(all), [0, 1, 2, 3, 4]);
        assert_eq!(sample, Some(4));
        assert_eq!((f.bytes_in_flight(), f.slots()), (0, 0));
        // Sending goes on after an empty flight.
        let pn = f.take_pn();
        f.on_sent(pn, packet(5, T0));
        assert_eq!(ack(&mut f, &[(pn, pn)]).0, [(5, false)]);
    }

    #[test]
    fn packets_three_below_the_largest_are_lost_and_a_late_ack_of_one_is_spurious() {
        let mut f = flight(10);
        let rtt = RttEstimator::new(100);
        // 0..=3 and 7..=9 arrive; 4, 5, 6 do not.
        ack(&mut f, &[(7, 9), (0, 3)]);
        let lost = lose(&mut f, T0.plus_millis(10), &rtt);
        assert_eq!(lost, [4, 5, 6], "3 or more below the largest (9)");
        assert_eq!(f.bytes_in_flight(), 0);
        // 5 arrives after all: acknowledged, reported as once lost, not counted twice.
        let (late, _) = ack(&mut f, &[(5, 5)]);
        assert_eq!(late, [(5, true)]);
        assert_eq!(f.bytes_in_flight(), 0);
        assert_eq!(f.packet_threshold, 2 * PACKET_THRESHOLD);
    }

    #[test]
    fn a_packet_within_the_reordering_threshold_is_lost_by_time() {
        let mut f = flight(4);
        let rtt = RttEstimator::new(100);
        ack(&mut f, &[(3, 3), (0, 1)]);
        // 2 is one below the largest: not lost by number; by time 9/8 RTT after it left.
        assert!(lose(&mut f, T0.plus_millis(4), &rtt).is_empty());
        let due = f.loss_time().expect("a loss timer");
        assert_eq!(due, T0.plus_millis(2 + 112));
        assert!(lose(&mut f, T0.plus_millis(113), &rtt).is_empty());
        assert_eq!(lose(&mut f, due, &rtt), [2]);
        assert_eq!(f.loss_time(), None);
    }

    #[test]
    fn lost_packets_are_forgotten_after_a_few_rtts_and_memory_stays_bounded() {
        let mut f = Flight::new();
        let rtt = RttEstimator::new(10);
        let mut now = T0;
        // A long session: every 10th packet lost, everything else acknowledged at once.
        for round in 0..2_000u64 {
            let mut pns = Vec::new();
            for _ in 0..10 {
                let pn = f.take_pn();
                f.on_sent(pn, packet(pn, now));
                pns.push(pn);
            }
            ack(&mut f, &[(pns[1], pns[9])]);
            lose(&mut f, now, &rtt);
            now = now.plus_millis(1);
            assert!(
                f.slots() <= 10 * (LOST_MEMORY_RTTS as usize * 10 + 5),
                "round {round}: {} slots",
                f.slots()
            );
        }
        assert!(f.suspects.is_empty());
        assert!(f.lost.len() <= 50, "{} remembered", f.lost.len());
    }

    /// The flight as it was kept before (a `BTreeMap` walked per ACK): the reference the
    /// `VecDeque` flight must agree with.
    #[derive(Default)]
    struct Model {
        sent: std::collections::BTreeMap<u64, SentPacket>,
        largest_acked: Option<u64>,
        bytes_in_flight: u64,
        loss_time: Option<UnixMillis>,
        packet_threshold: u64,
        time_threshold_x8: u64,
    }

    impl Model {
        fn on_ack(&mut self, ranges: &[(u64, u64)], acked: &mut Vec<(u64, bool)>) -> Option<u64> {
            let mut largest_new: Option<u64> = None;
            for &(first, last) in ranges {
                if first > last {
                    continue;
                }
                let pns: Vec<u64> = self.sent.range(first..=last).map(|(&pn, _)| pn).collect();
                for pn in pns {
                    let Some(p) = self.sent.remove(&pn) else {
                        continue;
                    };
                    if p.lost {
                        self.packet_threshold =
                            (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
                        self.time_threshold_x8 =
                            (self.time_threshold_x8 + 1).min(MAX_TIME_THRESHOLD_X8);
                    } else {
                        self.bytes_in_flight -= p.size;
                    }
                    acked.push((p.chunk, p.lost));
                    largest_new = largest_new.max(Some(pn));
                }
            }
            match largest_new {
                Some(pn) if self.largest_acked.is_none_or(|l| pn > l) => {
                    self.largest_acked = Some(pn);
                    Some(pn)
                }
                _ => None,
            }
        }

        fn detect_lost(&mut self, now: UnixMillis, rtt: &RttEstimator, lost: &mut Vec<u64>) {
            self.loss_time = None;
            let Some(largest) = self.largest_acked else {
                return;
            };
            let base = rtt.smoothed().max(rtt.latest());
            let loss_delay = (base * self.time_threshold_x8 / 8).max(GRANULARITY_MS);
            let forget_after = base.max(1) * LOST_MEMORY_RTTS;
            while let Some(e) = self.sent.first_entry() {
                if e.get().lost && now.millis_since(e.get().time_sent) > forget_after {
                    e.remove();
                } else {
                    break;
                }
            }
            for (&pn, p) in self.sent.range_mut(..largest) {
                if p.lost {
                    continue;
                }
                let deadline = p.time_sent.plus_millis(loss_delay);
                if largest - pn >= self.packet_threshold || deadline <= now {
                    p.lost = true;
                    self.bytes_in_flight -= p.size;
                    lost.push(pn);
                } else {
                    self.loss_time = Some(self.loss_time.map_or(deadline, |l| l.min(deadline)));
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Send this many packets (some numbers skipped, as a `Start` or `Fin` takes one).
        Send(u8, bool),
        /// An ACK with these ranges, relative to the next number (hostile ones included).
        Ack(Vec<(i16, i16)>),
        /// Time passes (ms), then loss detection runs.
        Tick(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (1u8..20, any::<bool>()).prop_map(|(n, skip)| Op::Send(n, skip)),
            proptest::collection::vec((-60i16..5, -60i16..5), 0..6).prop_map(Op::Ack),
            (0u8..40).prop_map(Op::Tick),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_flight_agrees_with_a_tree_walked_per_ack(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            let rtt = RttEstimator::new(20);
            let mut f = Flight::new();
            let mut m = Model {
                packet_threshold: PACKET_THRESHOLD,
                time_threshold_x8: TIME_THRESHOLD_X8,
                ..Model::default()
            };
            let mut now = T0;
            for op in ops {
                match op {
                    Op::Send(n, skip) => {
                        for _ in 0..n {
                            if skip {
                                f.take_pn();
                            }
                            let pn = f.take_pn();
                            let p = packet(pn, now);
                            f.on_sent(pn, p);
                            m.sent.insert(pn, p);
                            m.bytes_in_flight += p.size;
                        }
                    }
                    Op::Ack(rel) => {
                        let next = f.next_pn as i64;
                        let ranges: Vec<(u64, u64)> = rel
                            .iter()
                            .map(|&(a, b)| ((next + a as i64).max(0) as u64, (next + b as i64).max(0) as u64))
                            .collect();
                        let (mut got, sample) = ack(&mut f, &ranges);
                        let mut want = Vec::new();
                        let want_sample = m.on_ack(&ranges, &mut want);
                        got.sort_unstable();
                        want.sort_unstable();
                        proptest::prop_assert_eq!(got, want);
                        proptest::prop_assert_eq!(sample, want_sample);
                        let mut lost = Vec::new();
                        f.detect_lost(now, &rtt, |pn, _| lost.push(pn));
                        let mut want = Vec::new();
                        m.detect_lost(now, &rtt, &mut want);
                        proptest::prop_assert_eq!(lost, want);
                    }
                    Op::Tick(ms) => {
                        now = now.plus_millis(u64::from(ms));
                        let lost = lose(&mut f, now, &rtt);
                        let mut want = Vec::new();
                        m.detect_lost(now, &rtt, &mut want);
                        proptest::prop_assert_eq!(lost, want);
                    }
                }
                proptest::prop_assert_eq!(f.bytes_in_flight(), m.bytes_in_flight);
                proptest::prop_assert_eq!(f.loss_time(), m.loss_time);
                proptest::prop_assert_eq!(f.packet_threshold, m.packet_threshold);
            }
        }
    }
}
