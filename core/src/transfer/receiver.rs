//! The audience's side of a transfer: accepts authentic data within its window, hands the
//! driver in-order writes for the `.part` file, acknowledges selectively, and declares success
//! only after the whole-file BLAKE3 hash matches the presenter's.
//!
//! # Driving a receiver
//! - Inputs: [`Receiver::handle_datagram`] for every datagram of this transfer (with the
//!   address it came from), [`Receiver::handle_timeout`] when [`Receiver::poll_timeout`] is due
//!   (a spurious call is harmless), [`Receiver::abort`] when the driver cannot create or write
//!   the file, or the user cancels.
//! - Outputs, after every input: drain [`Receiver::poll_event`], then
//!   [`Receiver::poll_transmit`], until both return `None`; then wait for a datagram or
//!   [`Receiver::poll_timeout`].
//! - [`ReceiverEvent::Write`]: write `data` at `offset` of the `.part` file. Writes come in
//!   file order, so a buffered sequential writer suffices. In plain mode the in-order bytes
//!   of the datagrams handled since the last drain come as one write.
//! - [`ReceiverEvent::Complete`]: every write before it is the whole, verified file: flush and
//!   give the `.part` file its final name (without overwriting anything).
//! - [`ReceiverEvent::Aborted`]: delete the `.part` file. The machine stays a little longer
//!   (until [`Receiver::is_finished`]) to repeat its `Abort` to a sender that missed it.
//!
//! # Who the peer is
//! The server named the presenter's address in its announcement; every answer goes there,
//! including an `Abort` sent before anything arrived (a file that cannot be created, too many
//! transfers at once). Authentic data from another address is accepted, but moves the answers
//! there only if it carries a packet number higher than any seen (or is the `Hello`) and the
//! sender then answers a `Challenge` from that address (a NAT that rebinds, or maps the port
//! anew): one replayed datagram cannot redirect the acknowledgements.
//!
//! # Memory
//! Data arriving out of order waits in memory until the gap before it fills, then goes to the
//! hasher and the driver. The receiver advertises a window (`cum + receive_window`) and drops
//! anything beyond it, and every held segment is charged its bookkeeping overhead against a
//! memory cap (see `reassembly`), shared by all receivers of a [`super::TransferSet`].
//! Payloads must be whole, aligned chunks of the size the `Hello` announced (at least
//! [`MIN_PAYLOAD`] bytes), so a sender of tiny datagrams breaks the protocol instead of
//! filling the memory.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::datagram::{self, Ack, Body, ChainingValue, Datagram, DatagramError, TagKey};
use super::reassembly::{Insert, Reassembly};
use super::sack::RangeSet;
use super::timer::{Timer, TimerTable};
use super::tree::{FileHasher, is_leaf_size};
use super::{
    AbortReason, HASH_LEN, MAX_DATAGRAM, Rejected, TransferConfig, TransferId, TransferSecret,
    Transmit,
};
use crate::{Clock, UnixMillis};

/// Acknowledge at the latest this long after an unacknowledged packet arrived (ms). The clock
/// ticks in milliseconds, so this is "at the next tick".
pub const MAX_ACK_DELAY_MS: u64 = 1;

/// A lingering receiver leaves once the sender has been quiet this long (ms): the sender got
/// our `Done` (else it would repeat its `Fin`), so there is nothing left to confirm.
pub const LINGER_QUIET_MS: u64 = 500;

/// Smallest payload a `Hello` may announce: what the smallest allowed datagram carries. Why:
/// a held segment costs its overhead whatever its size; tiny payloads would multiply it.
pub const MIN_PAYLOAD: u64 =
    (datagram::MIN_DATAGRAM - datagram::HEADER_LEN - datagram::DATA_BODY_LEN - datagram::TAG_LEN)
        as u64;

/// After the end, stragglers from the sender are answered (with `Done` or `Abort`) at most
/// this often (ms): enough for a sender that missed the answer, never a flood.
const ANSWER_EVERY_MS: u64 = 10;

/// In-order bytes gathered before they are hashed and handed to the driver (plain mode).
const STAGE_BYTES: usize = 256 << 10;

/// How long a challenge to a new sender address waits for its answer (ms).
const CHALLENGE_TIMEOUT_MS: u64 = 1_000;

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
    /// The whole file was written and its hash matches: give `.part` its final name.
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
    /// Data datagrams dropped because holding them would exceed the memory cap.
    pub over_memory: u64,
    /// ACKs sent.
    pub acks_sent: u64,
    /// Memory charged for data waiting for a gap to fill (payload plus overhead).
    pub buffered: u64,
    /// The most memory ever charged at once: the receiver's high-water mark.
    pub peak_buffered: u64,
    /// Challenges sent to a new sender address.
    pub challenges: u64,
    /// Times the answers moved to a new, verified sender address.
    pub migrations: u64,
    /// Datagrams ignored.
    pub rejected: Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    Receiving,
    /// Verified; confirming `Done` to a sender that may have missed it.
    Lingering,
    /// Gave up; repeating `Abort` to a sender that may have missed it.
    Closing,
    Complete,
    Aborted,
}

/// A challenge sent to an address the sender may have moved to.
#[derive(Debug, Clone, Copy)]
struct Challenge {
    to: SocketAddr,
    token: u64,
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
    timers: TimerTable,
    // The peer.
    peer: SocketAddr,
    challenge: Option<Challenge>,
    next_token: u64,
    last_heard: UnixMillis,
    last_answer: Option<UnixMillis>,
    /// Why we gave up, to repeat it.
    abort_reason: Option<AbortReason>,
    // The file.
    /// Payload size announced by the `Hello` (0 before it).
    payload: u64,
    leaf: Option<u64>,
    cum: u64,
    hasher: Option<FileHasher>,
    expected_hash: Option<[u8; HASH_LEN]>,
    held: Reassembly,
    memory_cap: u64,
    /// Plain mode: in-order bytes gathered for one hash update and one write.
    staged: BytesMut,
    // Acknowledgements.
    pns: RangeSet,
    largest_pn: Option<u64>,
    largest_pn_time: UnixMillis,
    ack_every: u32,
    unacked: u32,
    ack_now: bool,
    max_ranges: usize,
    // Outputs.
    control: VecDeque<Transmit>,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver for transfer `id` of a file the server announced as `file_size` bytes, from
    /// the presenter's client at `peer` (as the server named it).
    ///
    /// If the sender's `Hello` announces another size the transfer aborts: the audience
    /// agreed to receive what the server described, nothing else.
    pub fn new(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        peer: SocketAddr,
        config: TransferConfig,
        now: UnixMillis,
    ) -> Self {
        let max_datagram = config
            .max_datagram
            .clamp(datagram::MIN_DATAGRAM, MAX_DATAGRAM);
        let own_payload = datagram::payload_capacity(max_datagram) as u64;
        // Acknowledge about every 64 KiB, at least every second and at most every eighth packet.
        let ack_every = (65_536 / own_payload).clamp(2, 8) as u32;
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, now.plus_millis(config.idle_timeout_ms));
        Self {
            id,
            key: TagKey::derive(secret),
            file_size,
            state: State::AwaitingHello,
            clock: Clock::new(now),
            timers,
            peer,
            challenge: None,
            next_token: config.seed ^ id.0.rotate_left(17),
            last_heard: now,
            last_answer: None,
            abort_reason: None,
            payload: 0,
            leaf: None,
            cum: 0,
            hasher: None,
            expected_hash: None,
            held: Reassembly::default(),
            memory_cap: config.receive_memory,
            staged: BytesMut::new(),
            pns: RangeSet::new(),
            largest_pn: None,
            largest_pn_time: now,
            ack_every,
            unacked: 0,
            ack_now: false,
            max_ranges: datagram::ack_range_capacity(max_datagram),
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

    /// A receiver that refuses the transfer at once: it tells the presenter at `peer` why
    /// (and again if the presenter sends anyway), then ends. For a client that already
    /// receives as many files as it takes, or a file it cannot save.
    pub fn refuse(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        peer: SocketAddr,
        reason: AbortReason,
        config: TransferConfig,
        now: UnixMillis,
    ) -> Self {
        let mut r = Self::new(id, secret, file_size, peer, config, now);
        r.abort(reason, now);
        r
    }

    /// The transfer this machine receives.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// Where the answers go: the presenter's address from the server, or the address it
    /// proved it moved to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the machine has nothing more to do and can be dropped (after the outcome it
    /// stays a little to repeat `Done` or `Abort` to a sender that missed it).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Complete | State::Aborted)
    }

    /// Whether the file was verified (it may still be lingering).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Lingering | State::Complete)
    }

    /// Whether the file was verified and the machine still stays to confirm it to a sender
    /// that may have missed the confirmation.
    pub fn is_lingering(&self) -> bool {
        self.state == State::Lingering
    }

    /// Whether the outcome is known (verified or given up), lingering or not.
    fn is_over(&self) -> bool {
        !matches!(self.state, State::AwaitingHello | State::Receiving)
    }

    /// Counters, for progress display.
    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            bytes_received: self.cum,
            buffered: self.held.charged(),
            ..self.stats
        }
    }

    /// Memory charged for out-of-order data held now.
    pub(crate) fn memory_charged(&self) -> u64 {
        self.held.charged()
    }

    /// The most memory this receiver may charge for out-of-order data (a set shares one
    /// budget among its receivers and sets each one's share before handing it a datagram).
    pub(crate) fn set_memory_cap(&mut self, cap: u64) {
        self.memory_cap = cap.min(self.config.receive_memory);
    }

    fn window_end(&self) -> u64 {
        self.cum
            .saturating_add(self.config.receive_window)
            .min(self.file_size)
    }

    /// Give up: tell the peer (at once, and again to its stragglers) and emit
    /// [`ReceiverEvent::Aborted`].
    ///
    /// After success (lingering) there is nothing to give up: the machine says `Done` once
    /// more, for a sender that may have missed it, and ends (the client is leaving).
    pub fn abort(&mut self, reason: AbortReason, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.state == State::Lingering {
            self.queue_done();
            self.state = State::Complete;
            self.timers.stop_all();
            return;
        }
        if self.is_over() {
            return;
        }
        self.send_abort(reason);
        self.end(State::Closing, ReceiverEvent::Aborted(reason), now);
    }

    fn send_abort(&mut self, reason: AbortReason) {
        let contents = datagram::encode_abort(self.id, reason.to_peer(), &self.key);
        self.control.push_back(Transmit {
            to: self.peer,
            contents,
        });
        self.abort_reason = Some(reason);
    }

    fn end(&mut self, state: State, event: ReceiverEvent, now: UnixMillis) {
        self.state = state;
        self.events.push_back(event);
        self.held.clear();
        self.staged.clear();
        self.ack_now = false;
        self.challenge = None;
        self.timers.stop_all();
        self.last_answer = None;
        if matches!(state, State::Lingering | State::Closing) {
            self.timers
                .set(Timer::Linger, now.plus_millis(self.config.linger_ms));
        }
        if state == State::Lingering {
            // The sender was just heard (its last bytes or its `Fin`): if it stays quiet, it
            // got our `Done`.
            self.timers
                .set(Timer::Idle, now.plus_millis(LINGER_QUIET_MS));
        }
    }

    /// Feed a datagram that arrived for this transfer from `from`.
    ///
    /// Returns `Err` (and counts it) if it is not an authentic datagram of this transfer:
    /// then nothing changed.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        bytes: &Bytes,
        now: UnixMillis,
    ) -> Result<(), DatagramError> {
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
            State::Lingering | State::Closing => {
                self.on_straggler(&d.body, now);
                return Ok(());
            }
            State::AwaitingHello | State::Receiving => {}
        }
        self.last_heard = now;
        self.timers
            .set(Timer::Idle, now.plus_millis(self.config.idle_timeout_ms));
        match d.body {
            Body::Hello {
                file_size,
                payload_size,
            } => {
                self.on_hello(file_size, u64::from(payload_size), now);
                // The presenter's datagrams come from elsewhere than the server said (a NAT
                // that maps its port anew): without an answer there, its `Hello` would never
                // be acknowledged. Ask it to prove itself from there, as for data.
                if from != self.peer && self.state == State::Receiving {
                    self.challenge_address(from, now);
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
                    self.on_data(from, pn, offset, payload, cv, now);
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
                // The sender knows: nothing to repeat to it.
                self.end(
                    State::Aborted,
                    ReceiverEvent::Aborted(AbortReason::PeerAborted(reason)),
                    now,
                );
            }
            Body::Response { token } => self.on_response(from, token),
            Body::Ack(_) | Body::Done { .. } | Body::Challenge { .. } => {
                self.stats.rejected.stale += 1
            }
        }
        Ok(())
    }

    /// An authentic datagram after the outcome: the sender missed our `Done` or `Abort`.
    fn on_straggler(&mut self, body: &Body, now: UnixMillis) {
        self.last_heard = now;
        self.timers
            .set(Timer::Idle, now.plus_millis(LINGER_QUIET_MS));
        if let Body::Abort { .. } = body {
            // It gave up too: nothing left to tell it.
            self.state = if self.state == State::Lingering {
                State::Complete
            } else {
                State::Aborted
            };
            self.timers.stop_all();
            return;
        }
        let due = self
            .last_answer
            .is_none_or(|t| now.millis_since(t) >= ANSWER_EVERY_MS);
        if !due {
            self.stats.rejected.stale += 1;
            return;
        }
        self.last_answer = Some(now);
        match self.state {
            State::Lingering => self.queue_done(),
            State::Closing => {
                let reason = self.abort_reason.unwrap_or(AbortReason::Cancelled);
                self.send_abort(reason);
            }
            _ => {}
        }
    }

    fn on_hello(&mut self, file_size: u64, payload: u64, now: UnixMillis) {
        let max_payload = datagram::payload_capacity(MAX_DATAGRAM) as u64;
        if file_size != self.file_size {
            self.abort(AbortReason::SizeMismatch, now);
        } else if !(MIN_PAYLOAD..=max_payload).contains(&payload)
            || (self.payload != 0 && payload != self.payload)
        {
            self.abort(AbortReason::ProtocolViolation, now);
        } else {
            if self.state == State::AwaitingHello {
                self.payload = payload;
                // A power-of-two payload size announces tree mode (see `tree`).
                self.leaf = is_leaf_size(payload).then_some(payload);
                self.hasher = Some(FileHasher::new(self.file_size, self.leaf));
            }
            self.state = State::Receiving;
            self.ack_now = true;
        }
    }

    fn on_data(
        &mut self,
        from: SocketAddr,
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
        // Only whole chunks of the announced size, at their place; only the last may be short.
        if !offset.is_multiple_of(self.payload) || (len != self.payload && end != self.file_size) {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        self.stats.datagrams += 1;
        let newest = self.largest_pn.is_none_or(|l| pn > l);
        if self.pns.insert_one(pn) {
            match self.largest_pn {
                Some(l) if pn > l + 1 => self.ack_now = true, // a gap: tell the sender at once
                Some(l) if pn < l => self.ack_now = true,     // fills a gap
                _ => {}
            }
            if newest {
                self.largest_pn = Some(pn);
                self.largest_pn_time = now;
            }
            self.pns.truncate_low(self.max_ranges * 2);
        } else {
            self.ack_now = true;
        }
        if from != self.peer && newest {
            self.challenge_address(from, now);
        }

        if end <= self.cum {
            self.stats.duplicates += 1;
            self.ack_now = true;
        } else if end > self.window_end() {
            self.stats.beyond_window += 1;
            self.ack_now = true;
        } else if offset == self.cum {
            self.deliver(payload, cv);
            self.drain_held();
        } else {
            match self.held.insert(offset, &payload, cv, self.memory_cap) {
                Insert::Held => {
                    self.stats.peak_buffered = self.stats.peak_buffered.max(self.held.charged());
                }
                Insert::Duplicate => {
                    self.stats.duplicates += 1;
                    self.ack_now = true;
                }
                Insert::NoRoom => self.stats.over_memory += 1,
            }
        }

        self.unacked += 1;
        if self.unacked >= self.ack_every {
            self.ack_now = true;
        } else if self.timers.get(Timer::AckDelay).is_none() {
            self.timers
                .set(Timer::AckDelay, now.plus_millis(MAX_ACK_DELAY_MS));
        }
        self.try_finish(now);
    }

    /// The newest data came from another address: ask the sender to prove it is there.
    fn challenge_address(&mut self, to: SocketAddr, now: UnixMillis) {
        if self.challenge.is_some() {
            return; // one at a time, so this cannot be used to flood anyone
        }
        self.next_token = self.next_token.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let token = self.next_token;
        self.challenge = Some(Challenge { to, token });
        self.timers
            .set(Timer::PathValidation, now.plus_millis(CHALLENGE_TIMEOUT_MS));
        self.stats.challenges += 1;
        let contents = datagram::encode(
            &Datagram {
                id: self.id,
                body: Body::Challenge { token },
            },
            &self.key,
        );
        self.control.push_back(Transmit { to, contents });
    }

    fn on_response(&mut self, from: SocketAddr, token: u64) {
        match self.challenge {
            Some(c) if c.to == from && c.token == token => {
                self.peer = from;
                self.challenge = None;
                self.timers.stop(Timer::PathValidation);
                self.stats.migrations += 1;
                self.ack_now = true;
            }
            _ => self.stats.rejected.stale += 1,
        }
    }

    fn deliver(&mut self, data: Bytes, cv: Option<ChainingValue>) {
        if self.leaf.is_some() {
            // Tree mode: the payload's CV was computed with its tag; hand the bytes on as
            // they are.
            if let Some(h) = self.hasher.as_mut() {
                h.push(&data, cv);
            }
            let offset = self.cum;
            self.cum += data.len() as u64;
            self.events.push_back(ReceiverEvent::Write { offset, data });
            return;
        }
        // Plain mode: gather in-order payloads into one run, hashed and written as a whole
        // (BLAKE3 hashes a long run many chunks at a time; datagram by datagram it cannot).
        if self.staged.is_empty() {
            self.staged.reserve(STAGE_BYTES);
        }
        self.staged.extend_from_slice(&data);
        self.cum += data.len() as u64;
        if self.staged.len() >= STAGE_BYTES || self.cum == self.file_size {
            self.flush_staged();
        }
    }

    /// Hash and hand on the gathered in-order bytes.
    fn flush_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let data = self.staged.split().freeze();
        if let Some(h) = self.hasher.as_mut() {
            h.push(&data, None);
        }
        let offset = self.cum - data.len() as u64;
        self.events.push_back(ReceiverEvent::Write { offset, data });
    }

    fn drain_held(&mut self) {
        while let Some((data, cv)) = self.held.take(self.cum) {
            self.deliver(data, cv);
        }
    }

    fn try_finish(&mut self, now: UnixMillis) {
        let Some(expected) = self.expected_hash else {
            return;
        };
        if self.cum < self.file_size || self.state != State::Receiving {
            return;
        }
        let hash = match self.hasher.as_ref() {
            Some(h) => h.finalize(),
            None => *blake3::hash(&[]).as_bytes(),
        };
        if hash == expected {
            self.end(
                State::Lingering,
                ReceiverEvent::Complete {
                    size: self.file_size,
                    hash,
                },
                now,
            );
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
        self.control.push_back(Transmit {
            to: self.peer,
            contents: datagram::encode(&d, &self.key),
        });
    }

    /// Timers: delayed ACK, idle timeout, an unanswered challenge, the end of lingering.
    /// Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        match self.state {
            State::Complete | State::Aborted => {}
            State::Lingering | State::Closing => {
                if self.timers.is_due(Timer::Linger, now) || self.timers.is_due(Timer::Idle, now) {
                    self.state = if self.state == State::Lingering {
                        State::Complete
                    } else {
                        State::Aborted
                    };
                    self.timers.stop_all();
                }
            }
            State::AwaitingHello | State::Receiving => {
                if self.timers.expire(Timer::Idle, now) {
                    self.abort(AbortReason::PeerSilent, now);
                    return;
                }
                if self.timers.expire(Timer::PathValidation, now) {
                    self.challenge = None;
                }
                if self.timers.expire(Timer::AckDelay, now) {
                    self.ack_now = true;
                }
            }
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.timers.next()
    }

    /// The next file operation or outcome, if any. In-order bytes gathered since the last
    /// drain come out here as one write.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        if self.events.is_empty() {
            self.flush_staged();
        }
        self.events.pop_front()
    }

    /// The next datagram to send, and where, if any.
    pub fn poll_transmit(&mut self, now: UnixMillis) -> Option<Transmit> {
        let now = self.clock.advance(now);
        if let Some(c) = self.control.pop_front() {
            return Some(c);
        }
        if !self.ack_now || self.state != State::Receiving {
            return None;
        }
        self.ack_now = false;
        self.timers.stop(Timer::AckDelay);
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
        let contents = datagram::encode(
            &Datagram {
                id: self.id,
                body: Body::Ack(ack),
            },
            &self.key,
        );
        Some(Transmit {
            to: self.peer,
            contents,
        })
    }
}
