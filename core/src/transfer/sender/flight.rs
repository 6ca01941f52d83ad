//! The packets a sender has in flight, by packet number, and loss detection over them.
//!
//! Every transmission gets a fresh packet number, so an ACK says unambiguously which
//! transmission arrived. A packet is declared lost when one sent `packet_threshold` numbers
//! later is acknowledged, or `time_threshold` RTTs after a later one was (RFC 9002 §6.1); both
//! thresholds grow when a "lost" packet turns out to have arrived (reordering, as RACK does),
//! and such a late packet still counts as delivered. Lost packets are remembered a few RTTs
//! for that purpose, then forgotten.

use std::collections::BTreeMap;

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
    sent: BTreeMap<u64, SentPacket>,
    next_pn: u64,
    largest_acked: Option<u64>,
    bytes_in_flight: u64,
    loss_time: Option<UnixMillis>,
    packet_threshold: u64,
    time_threshold_x8: u64,
}

impl Flight {
    pub(super) fn new() -> Self {
        Self {
            sent: BTreeMap::new(),
            next_pn: 0,
            largest_acked: None,
            bytes_in_flight: 0,
            loss_time: None,
            packet_threshold: PACKET_THRESHOLD,
            time_threshold_x8: TIME_THRESHOLD_X8,
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

    /// The packet number for the next transmission.
    pub(super) fn take_pn(&mut self) -> u64 {
        self.next_pn += 1;
        self.next_pn - 1
    }

    /// A packet left.
    pub(super) fn on_sent(&mut self, pn: u64, packet: SentPacket) {
        self.bytes_in_flight += packet.size;
        self.sent.insert(pn, packet);
    }

    /// Remove the packets an ACK covers (inclusive `(first, last)` ranges), calling `acked`
    /// for each. Returns the newly largest acknowledged packet number and its send time, if
    /// the ACK raised it (the RTT sample).
    pub(super) fn on_ack(
        &mut self,
        ranges: &[(u64, u64)],
        mut acked: impl FnMut(Acked),
    ) -> Option<(u64, UnixMillis)> {
        let mut largest_new: Option<(u64, UnixMillis)> = None;
        for &(first, last) in ranges {
            while let Some((&pn, _)) = self.sent.range(first..=last).next() {
                let Some(p) = self.sent.remove(&pn) else {
                    break;
                };
                if p.lost {
                    self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
                    self.time_threshold_x8 =
                        (self.time_threshold_x8 + 1).min(MAX_TIME_THRESHOLD_X8);
                } else {
                    self.bytes_in_flight = self.bytes_in_flight.saturating_sub(p.size);
                }
                acked(Acked {
                    packet: p,
                    was_lost: p.lost,
                });
                if largest_new.is_none_or(|(l, _)| pn > l) {
                    largest_new = Some((pn, p.time_sent));
                }
            }
        }
        match largest_new {
            Some((pn, sent)) if self.largest_acked.is_none_or(|l| pn > l) => {
                self.largest_acked = Some(pn);
                Some((pn, sent))
            }
            _ => None,
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
        while let Some(e) = self.sent.first_entry() {
            let p = e.get();
            if p.lost && now.millis_since(p.time_sent) > forget_after {
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
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(p.size);
                lost(pn, p);
            } else {
                self.loss_time = Some(self.loss_time.map_or(deadline, |l| l.min(deadline)));
            }
        }
    }

    /// Forget everything (the transfer ended).
    pub(super) fn clear(&mut self) {
        self.sent.clear();
        self.bytes_in_flight = 0;
        self.loss_time = None;
    }
}
