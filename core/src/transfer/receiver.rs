//! The audience's side of a transfer: accepts authentic data within its window, hands the
//! driver in-order writes for the `.part` file, acknowledges selectively, and declares success
//! only after the whole-file BLAKE3 hash matches the presenter's.
//!
//! # Driving a receiver
//! Same loop as the sender: after every input drain [`Receiver::poll_event`] and
//! [`Receiver::poll_transmit`], then wait for a datagram or [`Receiver::poll_timeout`].
//! - [`ReceiverEvent::Write`]: write `data` at `offset` of the `.part` file. Writes come in
//!   file order, so a buffered sequential writer suffices. If writing fails, call
//!   [`Receiver::abort`] with [`AbortReason::LocalIo`].
//! - [`ReceiverEvent::Complete`]: every write before it is the whole, verified file: flush and
//!   rename the `.part` file to its final name (without overwriting anything).
//! - [`ReceiverEvent::Aborted`]: delete the `.part` file.
//!
//! # Memory
//! Data arriving out of order waits in memory until the gap before it fills, then goes to the
//! hasher and the driver. The receiver advertises a window (`cum + receive_window`) and drops
//! anything beyond it, so it never holds more than [`TransferConfig::receive_window`] bytes,
//! whatever the file size.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::datagram::{self, Ack, Body, ChainingValue, Datagram, DatagramError, TagKey};
use super::sack::RangeSet;
use super::tree::{FileHasher, is_leaf_size};
use super::{
    AbortReason, HASH_LEN, MAX_DATAGRAM, Rejected, TransferConfig, TransferId, TransferSecret,
};
use crate::{Clock, UnixMillis};

/// Acknowledge at the latest this long after an unacknowledged packet arrived (ms). The clock
/// ticks in milliseconds, so this is "at the next tick".
pub const MAX_ACK_DELAY_MS: u64 = 1;

/// A lingering receiver leaves once the sender has been quiet this long (ms): the sender got
/// our `Done` (else it would repeat its `Fin`), so there is nothing left to confirm.
pub const LINGER_QUIET_MS: u64 = 500;

/// What the receiver tells its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Write `data` at `offset` of the `.part` file.
    Write {
        /// Where in the file.
        offset: u64,
        /// The bytes, already authenticated.
        data: Bytes,
    },
    /// The whole file was written and its hash matches: rename `.part` to the final name.
    Complete {
        /// Size of the file.
        size: u64,
        /// Its BLAKE3 hash.
        hash: [u8; HASH_LEN],
    },
    /// The transfer is over without a file: delete the `.part` file.
    Aborted(AbortReason),
}

/// Counters an audience can show and tests can check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Size of the file.
    pub file_size: u64,
    /// Bytes received in order (written and hashed).
    pub bytes_received: u64,
    /// Authentic data datagrams received.
    pub datagrams: u64,
    /// Data datagrams whose bytes we already had.
    pub duplicates: u64,
    /// Data datagrams beyond the advertised window, dropped.
    pub beyond_window: u64,
    /// ACKs sent.
    pub acks_sent: u64,
    /// Bytes currently waiting for a gap to fill.
    pub buffered: u64,
    /// The most bytes ever waiting at once: the receiver's memory high-water mark.
    pub peak_buffered: u64,
    /// Datagrams ignored.
    pub rejected: Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    Receiving,
    Lingering { until: UnixMillis },
    Complete,
    Aborted,
}

/// The receiving machine of one transfer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Receiver {
    id: TransferId,
    key: TagKey,
    config: TransferConfig,
    file_size: u64,
    state: State,
    clock: Clock,
    cum: u64,
    leaf: Option<u64>,
    hasher: FileHasher,
    expected_hash: Option<[u8; HASH_LEN]>,
    buffer: BTreeMap<u64, (Bytes, Option<ChainingValue>)>,
    pns: RangeSet,
    largest_pn: Option<u64>,
    largest_pn_time: UnixMillis,
    ack_every: u32,
    unacked: u32,
    ack_now: bool,
    ack_deadline: Option<UnixMillis>,
    max_ranges: usize,
    last_heard: UnixMillis,
    control: VecDeque<Bytes>,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver for transfer `id` of a file the server announced as `file_size` bytes.
    ///
    /// If the sender's `Hello` announces another size the transfer aborts: the audience
    /// agreed to receive what the server described, nothing else.
    pub fn new(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        config: TransferConfig,
        now: UnixMillis,
    ) -> Self {
        let max_datagram = config
            .max_datagram
            .clamp(datagram::MIN_DATAGRAM, MAX_DATAGRAM);
        let payload = datagram::payload_capacity(max_datagram) as u64;
        // Acknowledge about every 64 KiB, at least every second and at most every eighth packet.
        let ack_every = (65_536 / payload).clamp(2, 8) as u32;
        Self {
            id,
            key: TagKey::derive(secret),
            file_size,
            state: State::AwaitingHello,
            clock: Clock::new(now),
            cum: 0,
            leaf: None,
            hasher: FileHasher::new(file_size, None),
            expected_hash: None,
            buffer: BTreeMap::new(),
            pns: RangeSet::new(),
            largest_pn: None,
            largest_pn_time: now,
            ack_every,
            unacked: 0,
            ack_now: false,
            ack_deadline: None,
            max_ranges: datagram::ack_range_capacity(max_datagram),
            last_heard: now,
            control: VecDeque::new(),
            events: VecDeque::new(),
            stats: ReceiverStats {
                file_size,
                ..ReceiverStats::default()
            },
            config: TransferConfig {
                max_datagram,
                ..config
            },
        }
    }

    /// The transfer this machine receives.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// Whether the transfer ended and the driver has nothing more to do for it (after a
    /// success the receiver lingers a little to confirm it to the sender again if needed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Complete | State::Aborted)
    }

    /// Whether the file was verified (it may still be lingering).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Lingering { .. } | State::Complete)
    }

    /// Counters, for progress display.
    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            bytes_received: self.cum,
            ..self.stats
        }
    }

    fn window_end(&self) -> u64 {
        self.cum
            .saturating_add(self.config.receive_window)
            .min(self.file_size)
    }

    /// Give up: tell the peer (best effort) and emit [`ReceiverEvent::Aborted`].
    pub fn abort(&mut self, reason: AbortReason, now: UnixMillis) {
        self.clock.advance(now);
        if self.is_finished() || self.is_complete() {
            return;
        }
        self.control
            .push_back(datagram::encode_abort(self.id, reason.to_peer(), &self.key));
        self.end(State::Aborted, ReceiverEvent::Aborted(reason));
    }

    fn end(&mut self, state: State, event: ReceiverEvent) {
        self.state = state;
        self.events.push_back(event);
        self.buffer.clear();
        self.stats.buffered = 0;
        self.ack_now = false;
        self.ack_deadline = None;
    }

    /// Feed a datagram that arrived for this transfer.
    ///
    /// Returns `Err` (and counts it) if it is not an authentic datagram of this transfer; only
    /// on `Ok` should a caller learn the sender's address from it.
    pub fn handle_datagram(&mut self, bytes: &Bytes, now: UnixMillis) -> Result<(), DatagramError> {
        let now = self.clock.advance(now);
        let (d, cv) = match datagram::decode_with(bytes, &self.key, self.leaf) {
            Ok((d, cv)) if d.id == self.id => (d, cv),
            Ok(_) => {
                self.stats.rejected.bad += 1;
                return Err(DatagramError::BadTag);
            }
            Err(e) => {
                self.stats.rejected.bad += 1;
                return Err(e);
            }
        };
        match self.state {
            State::Complete | State::Aborted => {
                self.stats.rejected.stale += 1;
                return Ok(());
            }
            State::Lingering { .. } => {
                self.last_heard = now;
                // The sender has not seen our `Done` yet: say it again.
                if matches!(d.body, Body::Fin { .. } | Body::Data { .. }) {
                    self.queue_done();
                } else {
                    self.stats.rejected.stale += 1;
                }
                return Ok(());
            }
            State::AwaitingHello | State::Receiving => {}
        }
        self.last_heard = now;
        match d.body {
            Body::Hello {
                file_size,
                payload_size,
            } => {
                if file_size != self.file_size {
                    self.abort(AbortReason::SizeMismatch, now);
                } else if payload_size == 0 || payload_size as usize > MAX_DATAGRAM {
                    self.abort(AbortReason::ProtocolViolation, now);
                } else {
                    if self.state == State::AwaitingHello {
                        // A power-of-two payload size announces tree mode (see `tree`).
                        self.leaf = is_leaf_size(u64::from(payload_size))
                            .then_some(u64::from(payload_size));
                        self.hasher = FileHasher::new(self.file_size, self.leaf);
                    }
                    self.state = State::Receiving;
                    self.ack_now = true;
                }
            }
            Body::Data {
                pn,
                offset,
                payload,
            } => {
                if self.state == State::AwaitingHello {
                    // Data before the sender heard our answer to its `Hello` cannot be ours.
                    self.stats.rejected.stale += 1;
                } else {
                    self.on_data(pn, offset, payload, cv, now);
                }
            }
            Body::Fin { file_size, hash } => {
                if self.state == State::AwaitingHello {
                    self.stats.rejected.stale += 1;
                } else if file_size != self.file_size {
                    self.abort(AbortReason::SizeMismatch, now);
                } else {
                    self.expected_hash = Some(hash);
                    self.ack_now = true;
                    self.try_finish(now);
                }
            }
            Body::Abort { reason } => {
                self.end(
                    State::Aborted,
                    ReceiverEvent::Aborted(AbortReason::PeerAborted(reason)),
                );
            }
            Body::Ack(_) | Body::Done { .. } => self.stats.rejected.stale += 1,
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        pn: u64,
        offset: u64,
        payload: Bytes,
        cv: Option<ChainingValue>,
        now: UnixMillis,
    ) {
        let len = payload.len() as u64;
        let Some(end) = offset
            .checked_add(len)
            .filter(|&e| e <= self.file_size && len > 0)
        else {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        };
        // In tree mode only the last leaf may be short.
        if self
            .leaf
            .is_some_and(|leaf| len != leaf && end != self.file_size)
        {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        self.stats.datagrams += 1;
        if self.pns.insert_one(pn) {
            match self.largest_pn {
                Some(l) if pn > l + 1 => self.ack_now = true, // a gap: tell the sender at once
                Some(l) if pn < l => self.ack_now = true,     // fills a gap
                _ => {}
            }
            if self.largest_pn.is_none_or(|l| pn > l) {
                self.largest_pn = Some(pn);
                self.largest_pn_time = now;
            }
            self.pns.truncate_low(self.max_ranges * 2);
        } else {
            self.ack_now = true;
        }

        if end <= self.cum {
            self.stats.duplicates += 1;
            self.ack_now = true;
        } else if end > self.window_end() {
            self.stats.beyond_window += 1;
            self.ack_now = true;
        } else if offset <= self.cum {
            if offset == self.cum {
                self.deliver(payload, cv);
            } else {
                // Overlaps what we have (plain mode only: tree-mode leaves are aligned).
                self.deliver(payload.slice((self.cum - offset) as usize..), None);
            }
            self.drain_buffer();
        } else if let std::collections::btree_map::Entry::Vacant(v) = self.buffer.entry(offset) {
            // Copied, not kept as a slice: the driver may receive into large shared blocks,
            // and a held slice would pin its whole block. A copy makes the memory bound the
            // bytes buffered, whatever the driver does (and in-order data, the common case,
            // is never copied).
            v.insert((Bytes::copy_from_slice(&payload), cv));
            self.stats.buffered += len;
            self.stats.peak_buffered = self.stats.peak_buffered.max(self.stats.buffered);
        } else {
            self.stats.duplicates += 1;
            self.ack_now = true;
        }

        self.unacked += 1;
        if self.unacked >= self.ack_every {
            self.ack_now = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now.plus_millis(MAX_ACK_DELAY_MS));
        }
        self.try_finish(now);
    }

    fn deliver(&mut self, data: Bytes, cv: Option<ChainingValue>) {
        self.hasher.push(&data, cv);
        let offset = self.cum;
        self.cum += data.len() as u64;
        self.events.push_back(ReceiverEvent::Write { offset, data });
    }

    fn drain_buffer(&mut self) {
        while let Some(entry) = self.buffer.first_entry() {
            let offset = *entry.key();
            if offset > self.cum {
                break;
            }
            let (data, cv) = entry.remove();
            self.stats.buffered -= data.len() as u64;
            let end = offset + data.len() as u64;
            if offset == self.cum {
                self.deliver(data, cv);
            } else if end > self.cum {
                self.deliver(data.slice((self.cum - offset) as usize..), None);
            }
        }
    }

    fn try_finish(&mut self, now: UnixMillis) {
        let Some(expected) = self.expected_hash else {
            return;
        };
        if self.cum < self.file_size || self.state != State::Receiving {
            return;
        }
        let hash = self.hasher.finalize();
        if hash == expected {
            self.state = State::Lingering {
                until: now.plus_millis(self.config.linger_ms),
            };
            self.events.push_back(ReceiverEvent::Complete {
                size: self.file_size,
                hash,
            });
            self.ack_now = false;
            self.ack_deadline = None;
            self.queue_done();
        } else {
            self.abort(AbortReason::HashMismatch, now);
        }
    }

    fn queue_done(&mut self) {
        let d = Datagram {
            id: self.id,
            body: Body::Done {
                file_size: self.file_size,
            },
        };
        self.control.push_back(datagram::encode(&d, &self.key));
    }

    /// Timers: delayed ACK, idle timeout, end of lingering. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        match self.state {
            State::Lingering { until }
                if now >= until || now.millis_since(self.last_heard) >= LINGER_QUIET_MS =>
            {
                self.state = State::Complete
            }
            State::AwaitingHello | State::Receiving
                if now.millis_since(self.last_heard) >= self.config.idle_timeout_ms =>
            {
                self.abort(AbortReason::PeerSilent, now);
            }
            _ => {
                if self.ack_deadline.is_some_and(|t| t <= now) {
                    self.ack_now = true;
                }
            }
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        match self.state {
            State::Complete | State::Aborted => None,
            State::Lingering { until } => {
                Some(until.min(self.last_heard.plus_millis(LINGER_QUIET_MS)))
            }
            State::AwaitingHello | State::Receiving => {
                let idle = self.last_heard.plus_millis(self.config.idle_timeout_ms);
                Some(self.ack_deadline.map_or(idle, |a| a.min(idle)))
            }
        }
    }

    /// The next file operation or outcome, if any.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// The next datagram to send to the sender, if any.
    pub fn poll_transmit(&mut self, now: UnixMillis) -> Option<Bytes> {
        let now = self.clock.advance(now);
        if let Some(c) = self.control.pop_front() {
            return Some(c);
        }
        if !self.ack_now || !matches!(self.state, State::Receiving) {
            return None;
        }
        self.ack_now = false;
        self.ack_deadline = None;
        self.unacked = 0;
        let delay = now
            .millis_since(self.largest_pn_time)
            .min(u64::from(u16::MAX)) as u16;
        let ack = Ack {
            ack_delay_ms: delay,
            cum_offset: self.cum,
            window_end: self.window_end(),
            ranges: self.pns.iter_desc().take(self.max_ranges).collect(),
        };
        self.stats.acks_sent += 1;
        Some(datagram::encode(
            &Datagram {
                id: self.id,
                body: Body::Ack(ack),
            },
            &self.key,
        ))
    }
}
