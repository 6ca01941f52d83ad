//! The presenter's side of a transfer: reads the file through its driver, sends it paced and
//! selectively repeated, and learns from the receiver's SACKs what arrived.
//!
//! # Driving a sender
//! - Inputs: [`Sender::handle_datagram`] for every datagram of this transfer,
//!   [`Sender::handle_file_data`] answering a [`SenderEvent::Read`], [`Sender::handle_timeout`]
//!   when [`Sender::poll_timeout`] is due (a spurious call is harmless), [`Sender::abort`] when
//!   the file cannot be read or the user cancels.
//! - Outputs, after creating it and after every input: drain [`Sender::poll_event`], then
//!   [`Sender::poll_batch`] (several datagrams for one send of the socket) or
//!   [`Sender::poll_transmit`] (one), until both return `None`; then wait for a datagram or
//!   until [`Sender::poll_timeout`].
//! - [`SenderEvent::Read`] asks for file bytes: read exactly `len` bytes at `offset` and
//!   answer with [`Sender::handle_file_data`] (or [`Sender::abort`] with
//!   [`AbortReason::LocalIo`] if that fails). Reads are sequential and one at a time, which is
//!   what lets the sender hash the file as it goes, without a second pass.
//! - [`SenderEvent::Complete`] / [`SenderEvent::Aborted`] give the outcome; after an abort the
//!   machine stays a little (until [`Sender::is_finished`]) to repeat its `Abort` to a
//!   receiver that missed it.
//!
//! # How it works
//! The pieces, one module each: `source` reads the file and hashes it, `chunks` holds
//! what was read until it is acknowledged and decides what goes next, `flight` tracks the
//! packets in flight and detects losses, `pool` holds the blocks datagrams are sealed into;
//! the RTT estimator, the rate controller and the pacer are the transfer's own modules.
//!
//! A `Hello` with our X25519 public key (repeated on the probe timeout, backing off to
//! [`TransferConfig::max_probe_timeout_ms`]) opens the transfer. The receiver may answer
//! `Hold` while its user decides or it checks a partial file: we keep waiting, up to
//! [`TransferConfig::decision_timeout_ms`] beyond the idle timeout. Its `Welcome` brings its
//! public key — from then on every datagram about the file is sealed with the session keys
//! (see `keys`) — and, for a resume, the CVs of what it holds: we read and hash that range
//! first (telling the receiver to `Hold` on), and start where the file stops agreeing. A
//! `Start` (repeated until acknowledged; its first ACK is the first RTT sample) says where.
//! Data goes in payload-sized chunks, one fresh packet number per transmission. A lost chunk is queued again unless a newer transmission of it
//! is in flight or it was acknowledged meanwhile. When nothing is acknowledged for a probe
//! timeout, the oldest unacknowledged chunk is sent again regardless of the window, with
//! exponential backoff up to [`TransferConfig::max_probe_timeout_ms`]. The chunks in flight
//! are kept in memory until acknowledged; the receiver's window bounds them. When the whole
//! file was read and sent, a `Fin` carries its BLAKE3 hash; a `Done` from the receiver
//! completes the transfer. Every datagram goes to the address the server named.

mod chunks;
mod flight;
mod pool;
mod source;

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use self::chunks::Chunks;
use self::flight::{Flight, SentPacket};
use self::pool::SealPool;
use self::source::Source;
use super::datagram::{self, Ack, Body, DatagramError, HoldReason, Offer};
use super::keys::{EphemeralKey, KeyPair, Side, Transcript, TransferKeys};
use super::pacer::Pacer;
use super::rate::{Mode, RateController};
use super::rtt::RttEstimator;
use super::timer::{Timer, TimerTable};
use super::{
    AbortReason, Batch, HASH_LEN, MAX_BATCH_BYTES, Rejected, TransferConfig, TransferId,
    TransferSecret, Transmit,
};
use crate::{Clock, UnixMillis};

/// Longest ACK delay the receiver is expected to add (ms), part of the probe timeout.
pub const MAX_ACK_DELAY_MS: u64 = 2;
/// Datagrams sent when the probe timer fires.
const PROBES_PER_TIMEOUT: u8 = 2;
/// Copies of each handshake datagram sent at first (`Hello`, a resume's `Start`): they are
/// tiny, and a lost one costs a whole initial probe timeout (hundreds of ms) before any data
/// moves — at 5 % loss two copies make that twenty times rarer.
const HANDSHAKE_COPIES: u8 = 2;
/// After giving up, the receiver's stragglers are answered with `Abort` at most this often
/// (ms).
const ANSWER_EVERY_MS: u64 = 10;
/// A closing sender leaves once the receiver has been quiet this long (ms).
const CLOSING_QUIET_MS: u64 = 500;
/// First gap between the `Abort`s of an upload given up after its hash went out (doubling):
/// a lost `Abort` or a lost answer to it is tried again well within the linger.
const CLOSING_PROBE_MS: u64 = 20;
/// While checking a resume offer, a `Hold` goes to the receiver this often (ms), so it does
/// not time out on a long check.
const KEEP_ALIVE_MS: u64 = 1_000;

/// What the sender needs from its driver, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// Read exactly `len` bytes of the file at `offset` and hand them to
    /// [`Sender::handle_file_data`].
    Read {
        /// Where to read.
        offset: u64,
        /// How many bytes (never beyond the end of the file).
        len: usize,
    },
    /// The receiver verified the whole file and kept it.
    Complete,
    /// The transfer is over without success, for this reason.
    Aborted(AbortReason),
    /// After we gave up, the receiver's `Done` came: it had verified and kept the whole file
    /// before our `Abort` reached it (a cancel that came too late). Follows an
    /// [`SenderEvent::Aborted`].
    ArrivedAnyway,
}

/// Counters a presenter can show (progress bar, closing line) and tests can check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Size of the file.
    pub file_size: u64,
    /// File bytes the receiver acknowledged.
    pub bytes_acked: u64,
    /// Data datagrams sent, retransmissions included.
    pub datagrams_sent: u64,
    /// Data datagrams that were retransmissions (including probes).
    pub retransmissions: u64,
    /// Data datagrams declared lost.
    pub lost: u64,
    /// Probe timeouts that fired (nothing acknowledged for a while: probes went out).
    pub probe_timeouts: u64,
    /// Longest backed-off probe timeout waited, in ms.
    pub longest_probe_wait_ms: u64,
    /// Of those, how many were acknowledged later: reordering, not loss.
    pub spurious_losses: u64,
    /// Bytes written to the wire, all kinds.
    pub wire_bytes: u64,
    /// File bytes the receiver already held and we did not send again (a resume).
    pub resumed_from: u64,
    /// Smoothed RTT (ms).
    pub srtt_ms: u64,
    /// Current pacing rate (bytes per second).
    pub pacing_rate: u64,
    /// Current bottleneck-bandwidth estimate (bytes per second).
    pub btl_bw: u64,
    /// Current congestion window (bytes).
    pub cwnd: u64,
    /// Datagrams ignored.
    pub rejected: Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sending `Hello`s until the receiver's `Welcome`.
    Hello,
    /// Reading and hashing the range the receiver offered to resume from.
    Checking,
    Sending,
    /// Gave up; repeating `Abort` to a receiver that may have missed it.
    Closing,
    Complete,
    Aborted,
}

/// The sending machine of one transfer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Sender {
    id: TransferId,
    keys: TransferKeys,
    secret: TransferSecret,
    ephemeral: EphemeralKey,
    config: TransferConfig,
    peer: SocketAddr,
    file_size: u64,
    payload: u64,
    datagram_size: u64,
    state: State,
    clock: Clock,
    timers: TimerTable,
    source: Source,
    chunks: Chunks,
    flight: Flight,
    // The peer's view.
    peer_cum: u64,
    peer_window_end: u64,
    // Control datagrams.
    hello_sent: bool,
    /// Why the receiver asked us to wait, while it does.
    held: Option<HoldReason>,
    /// Where sending starts, once the receiver's offer (if any) was checked.
    start: Option<u64>,
    start_sent_at: Option<UnixMillis>,
    start_sends: u32,
    start_acked: bool,
    /// The receiver offered part of the file (so data waits for the `Start`'s ACK).
    offered: bool,
    fin_sent: bool,
    fin_sent_at: Option<UnixMillis>,
    fin_due: bool,
    probes: u8,
    pto_count: u32,
    last_sent: UnixMillis,
    last_heard: UnixMillis,
    /// Whether anything authentic came from the peer at all: a peer never heard is
    /// probably unreachable (a firewall, a NAT), not just gone quiet.
    heard_any: bool,
    last_answer: Option<UnixMillis>,
    /// Gap before the next `Abort` of a transfer given up after its hash went out.
    closing_probe_ms: u64,
    abort_reason: Option<AbortReason>,
    control: VecDeque<Bytes>,
    events: VecDeque<SenderEvent>,
    /// Where datagrams are sealed (one allocation per block, not per datagram).
    pool: SealPool,
    /// Where received datagrams are opened.
    scratch: BytesMut,
    // Models.
    rtt: RttEstimator,
    rate: RateController,
    pacer: Pacer,
    stats: SenderStats,
}

impl Sender {
    /// A sender of a file of `file_size` bytes for transfer `id` to the audience's client at
    /// `peer` (as the server named it), starting at `now`, with `ephemeral` as its half of the
    /// key exchange (fresh random bytes for every transfer).
    ///
    /// The file name does not travel here: the server told the audience already.
    pub fn new(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        peer: SocketAddr,
        config: TransferConfig,
        ephemeral: EphemeralKey,
        now: UnixMillis,
    ) -> Self {
        let max_datagram = config
            .max_datagram
            .clamp(datagram::MIN_DATAGRAM, super::MAX_DATAGRAM);
        let config = TransferConfig {
            max_datagram,
            ..config
        };
        let payload = config.payload_size() as u64;
        let datagram_size = payload + (datagram::DATA_HEADER_LEN + datagram::TAG_LEN) as u64;
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, now.plus_millis(config.idle_timeout_ms));
        Self {
            id,
            keys: TransferKeys::new(secret, id, Side::Sender),
            secret: secret.clone(),
            ephemeral,
            peer,
            file_size,
            payload,
            datagram_size,
            state: State::Hello,
            clock: Clock::new(now),
            timers,
            source: Source::new(file_size, payload, config.read_size),
            chunks: Chunks::new(file_size, payload),
            flight: Flight::new(),
            peer_cum: 0,
            peer_window_end: 0,
            hello_sent: false,
            held: None,
            start: None,
            start_sent_at: None,
            start_sends: 0,
            start_acked: false,
            offered: false,
            fin_sent: false,
            fin_sent_at: None,
            fin_due: false,
            probes: HANDSHAKE_COPIES,
            pto_count: 0,
            last_sent: now,
            last_heard: now,
            heard_any: false,
            last_answer: None,
            closing_probe_ms: CLOSING_PROBE_MS,
            abort_reason: None,
            control: VecDeque::new(),
            events: VecDeque::new(),
            pool: SealPool::default(),
            scratch: BytesMut::new(),
            rtt: RttEstimator::new(config.initial_rtt_ms),
            rate: RateController::new(
                now,
                datagram_size as usize,
                config.initial_rtt_ms,
                config.max_rate,
                config.seed,
            ),
            pacer: Pacer::new(now, datagram_size),
            stats: SenderStats {
                file_size,
                ..SenderStats::default()
            },
            config,
        }
    }

    /// The transfer this machine sends.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// Whether anything authentic ever came from the audience (a `Welcome`, a `Hold`, an
    /// ACK): if not, when it gives up, the audience was probably unreachable.
    pub fn has_heard_from_peer(&self) -> bool {
        self.heard_any
    }

    /// The audience's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Send at most `cap` bytes per second from now on: this upload's share of the client's
    /// cap on all its uploads (see [`TransferSet`](super::TransferSet)).
    pub fn set_rate_cap(&mut self, cap: u64) {
        self.rate.set_max_rate(cap);
    }

    /// Whether the machine has nothing more to do and can be dropped.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Complete | State::Aborted)
    }

    /// Whether the file's hash (the `Fin`) went out: until then the receiver cannot have kept
    /// the file, so an upload given up before it surely did not arrive.
    pub fn hash_sent(&self) -> bool {
        self.fin_sent
    }

    fn is_over(&self) -> bool {
        matches!(
            self.state,
            State::Closing | State::Complete | State::Aborted
        )
    }

    /// Why the receiver asked us to wait, while it does (its user deciding, or its check of a
    /// partial file): for a presenter's progress line.
    pub fn waiting_for(&self) -> Option<HoldReason> {
        match self.state {
            State::Hello => self.held,
            State::Checking => Some(HoldReason::CheckingOffer),
            _ => None,
        }
    }

    /// Counters and the current model, for progress display.
    pub fn stats(&self) -> SenderStats {
        SenderStats {
            bytes_acked: self.chunks.acked_bytes(self.peer_cum),
            srtt_ms: self.rtt.smoothed(),
            pacing_rate: self.rate.pacing_rate(),
            btl_bw: self.rate.btl_bw(),
            cwnd: self.rate.cwnd(),
            ..self.stats
        }
    }

    /// The rate controller's mode (for tests and diagnostics).
    pub fn mode(&self) -> Mode {
        self.rate.mode()
    }

    /// Give up: tell the peer (at once, and again to its stragglers) and report `reason`.
    pub fn abort(&mut self, reason: AbortReason, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.is_over() {
            return;
        }
        self.abort_reason = Some(reason);
        self.send_abort();
        self.finish(State::Closing, SenderEvent::Aborted(reason));
        // Stay to repeat the `Abort` to stragglers; leave early once they stop coming.
        self.timers
            .set(Timer::Linger, now.plus_millis(self.config.linger_ms));
        // With the hash out, the receiver may have kept the file already: say `Abort` again
        // until its answer (a `Done`, see `on_straggler`) gets through or lingering ends.
        if self.fin_sent {
            self.closing_probe_ms = CLOSING_PROBE_MS;
            self.timers
                .set(Timer::Probe, now.plus_millis(self.closing_probe_ms));
        }
    }

    fn send_abort(&mut self) {
        let reason = self.abort_reason.unwrap_or(AbortReason::Cancelled);
        self.queue(Body::Abort {
            reason: reason.to_peer(),
        });
    }

    /// Seal a handshake-class datagram for the control queue.
    fn queue(&mut self, body: Body) {
        let room = self.room();
        if let Some(d) = self.keys.seal(self.id, body, self.pool.reserve(room)) {
            self.control.push_back(d);
        }
    }

    /// Room to ask the pool for before sealing one datagram: the largest this sender seals.
    fn room(&self) -> usize {
        (self.datagram_size as usize).max(datagram::MAX_HELLO_LEN)
    }

    fn finish(&mut self, state: State, event: SenderEvent) {
        self.state = state;
        self.events.push_back(event);
        self.chunks.clear();
        self.flight.clear();
        self.timers.stop_all();
    }

    /// The file bytes a [`SenderEvent::Read`] asked for.
    ///
    /// Data that was not asked for, or of the wrong length, is a driver bug or a file that
    /// changed under us: the transfer aborts with [`AbortReason::LocalIo`].
    pub fn handle_file_data(&mut self, offset: u64, data: Bytes, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.is_over() {
            return;
        }
        let chunks = &mut self.chunks;
        let accepted = self.source.accept(offset, data, |piece| chunks.push(piece));
        if accepted.is_err() {
            self.abort(AbortReason::LocalIo, now);
            return;
        }
        if self.state == State::Checking
            && let Some(from) = self.source.take_verdict()
        {
            self.begin(from, now);
        }
        self.arm_timers();
    }

    fn maybe_request_read(&mut self) {
        match self.state {
            // Checking an offer holds nothing: the reads go back to back.
            State::Checking => {}
            State::Sending => {
                // Keep a read's worth of unsent data ready, and never hold more than the
                // receiver's window plus that: memory stays bounded whatever the file size.
                let read_end = self.source.read_end();
                let read_len = self.source.read_len();
                let unsent = self.chunks.unsent_bytes(read_end);
                let held = self.chunks.held_bytes(read_end);
                // The receiver's advertised window, but never more than our own configured
                // window: a peer cannot make us hold the whole file in memory.
                let window = self
                    .peer_window_end
                    .saturating_sub(self.peer_cum)
                    .min(self.config.receive_window)
                    .max(self.config.receive_window.min(1 << 20));
                if unsent >= read_len || held >= window.saturating_add(read_len) {
                    return;
                }
            }
            _ => return,
        }
        if let Some((offset, len)) = self.source.start_read() {
            self.events.push_back(SenderEvent::Read { offset, len });
        }
    }

    /// The next file request or outcome, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.maybe_request_read();
        self.events.pop_front()
    }

    /// Feed a datagram that arrived for this transfer from `from`.
    ///
    /// Returns `Err` (and counts it) if it is not an authentic datagram of this transfer:
    /// then nothing changed.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        now: UnixMillis,
    ) -> Result<(), DatagramError> {
        let now = self.clock.advance(now);
        let d = match self.keys.open(bytes, &mut self.scratch) {
            Ok(d) if d.id == self.id => d,
            Ok(_) => {
                self.stats.rejected.unauthentic += 1;
                return Err(DatagramError::Unauthentic);
            }
            Err(e) => {
                self.stats.rejected.count(e);
                return Err(e);
            }
        };
        match self.state {
            State::Complete | State::Aborted => {
                self.stats.rejected.stale += 1;
                return Ok(());
            }
            State::Closing => {
                self.on_straggler(&d.body, now);
                return Ok(());
            }
            State::Hello | State::Checking | State::Sending => {}
        }
        self.last_heard = now;
        self.heard_any = true;
        self.timers
            .set(Timer::Idle, now.plus_millis(self.config.idle_timeout_ms));
        match d.body {
            Body::Hold { reason } if self.state == State::Hello => self.on_hold(reason, now),
            Body::Welcome { public, offer } if self.state == State::Hello => {
                self.on_welcome(public, offer, now)
            }
            Body::Ack(ack) if self.state == State::Sending => self.on_ack(ack, now),
            Body::Done { file_size }
                if self.state == State::Sending
                    && file_size == self.file_size
                    && self.source.hash().is_some()
                    && self.fin_sent =>
            {
                self.peer_cum = self.file_size;
                self.finish(State::Complete, SenderEvent::Complete);
            }
            Body::Done { .. } => self.abort(AbortReason::ProtocolViolation, now),
            Body::Abort { reason } => {
                self.finish(
                    State::Aborted,
                    SenderEvent::Aborted(AbortReason::PeerAborted(reason)),
                );
            }
            // Only the receiver at the address the server named asks us to prove where we
            // are; anyone else relaying its challenge gets nothing.
            Body::Challenge { token } if from == self.peer => {
                self.queue(Body::Response { token });
            }
            // A repeated `Welcome` (ours was answered already), a `Hold` after it, an ACK
            // before `Start`, anything only a sender sends: nothing to do.
            Body::Hold { .. }
            | Body::Welcome { .. }
            | Body::Ack(_)
            | Body::Challenge { .. }
            | Body::Response { .. }
            | Body::Hello { .. }
            | Body::Start { .. }
            | Body::Data { .. }
            | Body::Fin { .. } => self.stats.rejected.stale += 1,
        }
        self.arm_timers();
        Ok(())
    }

    /// The receiver asks us to wait (its user decides, or it checks a partial file): wait, but
    /// not for ever.
    fn on_hold(&mut self, reason: HoldReason, now: UnixMillis) {
        if self.held.is_none() {
            let limit = self
                .config
                .decision_timeout_ms
                .saturating_add(self.config.idle_timeout_ms);
            self.timers.set(Timer::Decision, now.plus_millis(limit));
        }
        self.held = Some(reason);
        // It heard us: repeat the `Hello` only as a keep-alive, not as a probe backing off.
        self.pto_count = self.pto_count.max(16);
    }

    /// The receiver's half of the exchange and its resume offer: derive the session keys, then
    /// check the offer (if any) or start at once.
    fn on_welcome(&mut self, public: [u8; 32], offer: Offer, now: UnixMillis) {
        let transcript = Transcript {
            sender_public: self.ephemeral.public(),
            receiver_public: public,
            file_size: self.file_size,
            payload_size: self.payload as u32,
        };
        let Ok(session) = KeyPair::session(
            &self.ephemeral,
            &public,
            &self.secret,
            self.id,
            &transcript,
            Side::Sender,
            self.config.protection,
        ) else {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        };
        self.keys.set_session(session);
        // The first RTT sample, when the `Welcome` answers our first `Hello`s (no `Hold`, no
        // repeat: nothing ambiguous): with it a lost `Start` or first ACK costs a few round
        // trips, not the initial guess's probe timeout (600 ms).
        if self.pto_count == 0 && self.held.is_none() && !self.rtt.has_sample() {
            self.rtt.update(now.millis_since(self.last_sent), 0);
        }
        self.held = None;
        self.timers.stop(Timer::Decision);
        self.pto_count = 0;
        if offer.is_empty() {
            self.begin(0, now);
            return;
        }
        self.offered = true;
        if self.source.check(offer).is_err() {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        self.state = State::Checking;
        // Tell the receiver at once that its offer is being checked, then every so often.
        self.queue(Body::Hold {
            reason: HoldReason::CheckingOffer,
        });
        self.timers
            .set(Timer::KeepAlive, now.plus_millis(KEEP_ALIVE_MS));
    }

    /// Start sending the file from `from` (everything below the receiver holds already).
    fn begin(&mut self, from: u64, now: UnixMillis) {
        let first = from / self.payload;
        self.chunks = Chunks::starting_at(self.file_size, self.payload, first);
        self.peer_cum = from;
        self.stats.resumed_from = from;
        self.start = Some(from);
        self.state = State::Sending;
        self.timers.stop(Timer::KeepAlive);
        // The `Start` leaves first and is repeated by the probes until acknowledged.
        self.probes = 0;
        self.last_sent = now;
        // Twice: data waits for its acknowledgement (the receiver's first ACK also opens its
        // window), so a lost one would stall the start by a probe timeout.
        for _ in 0..2 {
            if let Some(d) = self.send_start(now) {
                self.control.push_back(d.freeze());
            }
        }
    }

    fn send_start(&mut self, now: UnixMillis) -> Option<BytesMut> {
        let room = self.room();
        let offset = self.start?;
        let pn = self.flight.take_pn();
        self.start_sends += 1;
        self.start_sent_at = Some(now);
        self.last_sent = now;
        self.keys
            .seal_numbered_mut(self.id, pn, Body::Start { offset }, self.pool.reserve(room))
    }

    /// An authentic datagram after we gave up: the receiver missed our `Abort`.
    fn on_straggler(&mut self, body: &Body, now: UnixMillis) {
        self.timers
            .set(Timer::Idle, now.plus_millis(CLOSING_QUIET_MS));
        match body {
            Body::Abort { .. } => {
                self.state = State::Aborted;
                self.timers.stop_all();
                return;
            }
            // Only possible once our `Fin` (the hash) went out: the receiver checked the file.
            Body::Done { file_size } if *file_size == self.file_size && self.fin_sent => {
                self.state = State::Aborted;
                self.timers.stop_all();
                self.events.push_back(SenderEvent::ArrivedAnyway);
                return;
            }
            _ => {}
        }
        if self
            .last_answer
            .is_none_or(|t| now.millis_since(t) >= ANSWER_EVERY_MS)
        {
            self.last_answer = Some(now);
            self.send_abort();
        } else {
            self.stats.rejected.stale += 1;
        }
    }

    fn on_ack(&mut self, ack: Ack, now: UnixMillis) {
        if !self.start_acked {
            self.start_acked = true;
            // Only the `Start`s sent together at first give an unambiguous RTT sample (Karn).
            match self.start_sent_at {
                Some(t) if self.start_sends <= 2 => {
                    self.rtt
                        .update(now.millis_since(t), u64::from(ack.ack_delay_ms));
                }
                _ => {}
            }
            self.pto_count = 0;
        }
        if ack.cum_offset > self.file_size || ack.window_end < ack.cum_offset {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        self.peer_window_end = self.peer_window_end.max(ack.window_end);
        let mut progressed = false;
        if ack.cum_offset > self.peer_cum {
            self.peer_cum = ack.cum_offset;
            progressed = true;
        }

        // Packets acknowledged by number.
        let Self {
            flight,
            chunks,
            rate,
            stats,
            ..
        } = self;
        let newest = flight.on_ack(&ack.ranges, |a| {
            progressed = true;
            if a.was_lost {
                stats.spurious_losses += 1;
            }
            rate.on_packet_acked(
                a.packet.delivery,
                a.packet.time_sent,
                a.packet.data_len,
                now,
            );
            chunks.mark_acked(a.packet.chunk);
        });
        if let Some((_, sent)) = newest {
            self.rtt
                .update(now.millis_since(sent), u64::from(ack.ack_delay_ms));
        }
        self.chunks.ack_below(self.peer_cum);

        self.detect_lost(now);
        if progressed {
            self.pto_count = 0;
        }
        let rtt = self
            .rtt
            .has_sample()
            .then(|| (self.rtt.min(), self.rtt.smoothed()));
        self.rate
            .on_ack_processed(now, rtt, self.flight.bytes_in_flight());

        // Every byte arrived but no `Done` a round trip after the `Fin`: the receiver is
        // waiting for it, so it was lost.
        if self.peer_cum == self.file_size
            && self.fin_sent
            && self
                .fin_sent_at
                .is_some_and(|t| now.millis_since(t) > self.rtt.smoothed())
        {
            self.fin_due = true;
        }
    }

    fn detect_lost(&mut self, now: UnixMillis) {
        let Self {
            flight,
            chunks,
            rate,
            stats,
            rtt,
            ..
        } = self;
        flight.detect_lost(now, rtt, |pn, p: &SentPacket| {
            stats.lost += 1;
            rate.on_packet_lost(p.size);
            chunks.on_lost(p.chunk, pn);
        });
    }

    fn pto_deadline(&self) -> Option<UnixMillis> {
        let outstanding = match self.state {
            State::Hello => true,
            State::Sending => {
                !self.start_acked
                    || self.flight.bytes_in_flight() > 0
                    || self.fin_sent
                    || self.chunks.window_blocked(self.peer_window_end)
            }
            _ => false,
        };
        if !outstanding {
            return None;
        }
        let base = self.rtt.pto_base(MAX_ACK_DELAY_MS);
        let backed_off = base.saturating_mul(1u64 << self.pto_count.min(16));
        // Once the `Fin` is out, a receiver that has the file waits only
        // `LINGER_QUIET_MS` of silence before it takes our quiet as "got your `Done`" and
        // leaves: probe more often than that, or a lost `Done` makes a file that arrived look
        // lost (the upload would end "the peer went silent" after the idle timeout).
        let most = if self.fin_sent {
            (super::receiver::LINGER_QUIET_MS / 2).max(base)
        } else {
            self.config.max_probe_timeout_ms.max(base)
        };
        let timeout = backed_off.min(most);
        Some(self.last_sent.plus_millis(timeout))
    }

    /// When the pacer will let the next datagram go, if one waits for it.
    fn pacing_deadline(&self) -> Option<UnixMillis> {
        let size = self.datagram_size;
        let waiting = self.probes == 0
            && self.has_paced_data()
            && self.flight.bytes_in_flight() + size <= self.rate.cwnd()
            && !self.pacer.can_send(size);
        waiting.then(|| self.pacer.next_send_time(size, self.rate.pacing_rate()))
    }

    /// Re-derive the deadlines that depend on the state (loss, probe, pacing) after a change.
    fn arm_timers(&mut self) {
        if self.is_over() {
            return;
        }
        self.timers
            .set_or_stop(Timer::LossDetection, self.flight.loss_time());
        self.timers.set_or_stop(Timer::Probe, self.pto_deadline());
        self.timers
            .set_or_stop(Timer::Pacing, self.pacing_deadline());
    }

    /// Timers: idle timeout, the wait for the audience's decision, loss detection, probe
    /// timeout, keep-alive, end of closing. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        match self.state {
            State::Complete | State::Aborted => return,
            State::Closing => {
                if self.timers.is_due(Timer::Linger, now) || self.timers.is_due(Timer::Idle, now) {
                    self.state = State::Aborted;
                    self.timers.stop_all();
                } else if self.timers.expire(Timer::Probe, now) {
                    self.send_abort();
                    self.closing_probe_ms = (self.closing_probe_ms * 2).min(self.config.linger_ms);
                    self.timers
                        .set(Timer::Probe, now.plus_millis(self.closing_probe_ms));
                }
                return;
            }
            State::Hello | State::Checking | State::Sending => {}
        }
        if self.timers.is_due(Timer::Decision, now) {
            self.abort(AbortReason::NoAnswer, now);
            return;
        }
        // While the receiver holds us (its user deciding), its `Hold`s keep us alive; without
        // them, silence is silence.
        if self.timers.is_due(Timer::Idle, now) {
            self.abort(AbortReason::PeerSilent, now);
            return;
        }
        if self.timers.expire(Timer::KeepAlive, now) && self.state == State::Checking {
            self.queue(Body::Hold {
                reason: HoldReason::CheckingOffer,
            });
            self.timers
                .set(Timer::KeepAlive, now.plus_millis(KEEP_ALIVE_MS));
        }
        if self.flight.loss_time().is_some_and(|t| t <= now) {
            self.detect_lost(now);
        }
        if self.pto_deadline().is_some_and(|t| t <= now) {
            self.stats.probe_timeouts += 1;
            self.stats.longest_probe_wait_ms = self
                .stats
                .longest_probe_wait_ms
                .max(now.millis_since(self.last_sent));
            self.pto_count = self.pto_count.saturating_add(1);
            self.probes = PROBES_PER_TIMEOUT;
            // The probe timer restarts from the probes, not from the last data packet.
            self.last_sent = now;
        }
        self.arm_timers();
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.timers.next()
    }

    /// Whether data must wait for the `Start` to be acknowledged: when resuming, the receiver
    /// cannot place data before it knows where the file starts (from scratch it can).
    fn start_pending(&self) -> bool {
        !self.start_acked && self.start.is_some_and(|s| s > 0 || self.offered)
    }

    fn has_paced_data(&self) -> bool {
        self.state == State::Sending
            && !self.start_pending()
            && (self.chunks.has_retx()
                || self.chunks.has_new(self.peer_window_end)
                || (self.fin_ready() && (!self.fin_sent || self.fin_due)))
    }

    fn fin_ready(&self) -> bool {
        self.source.hash().is_some() && self.chunks.all_sent()
    }

    /// The next datagram to send, and where, if one may leave at `now`: a batch of one (see
    /// [`Sender::poll_batch`]).
    pub fn poll_transmit(&mut self, now: UnixMillis) -> Option<Transmit> {
        self.poll_batch(now, 1).map(|b| Transmit {
            to: b.to,
            contents: b.contents,
        })
    }

    /// The next datagrams to send, as one [`Batch`] for the audience: at most `max_segments`
    /// (what the runtime's socket takes in one send), [`TransferConfig::batch_segments`] and
    /// [`MAX_BATCH_BYTES`] together, sealed back to back into one buffer. `None` when nothing
    /// may leave at `now`.
    ///
    /// A control datagram (`Start`, `Hold`, `Response`, `Abort`, ...) goes alone. A full-sized
    /// datagram is followed by as many further data datagrams as the pacer and the window
    /// allow, all full-sized but the last (the file's short last chunk ends a batch). Each
    /// datagram is paced, counted and numbered exactly as if it had been polled alone.
    pub fn poll_batch(&mut self, now: UnixMillis, max_segments: usize) -> Option<Batch> {
        let now = self.clock.advance(now);
        let full = self.datagram_size as usize;
        let limit = max_segments
            .min(self.config.batch_segments)
            .min(MAX_BATCH_BYTES / full.max(1))
            .max(1);
        let out = self.next_batch(now, limit);
        self.arm_timers();
        if let Some(b) = &out {
            self.stats.wire_bytes += b.contents.len() as u64;
        }
        out
    }

    fn next_batch(&mut self, now: UnixMillis, limit: usize) -> Option<Batch> {
        if let Some(c) = self.control.pop_front() {
            return Some(Batch::single(self.peer, c));
        }
        let full = self.datagram_size as usize;
        if limit > 1 {
            // Room for the whole batch in the current block: its datagrams stay contiguous.
            self.pool.reserve(limit * full);
        }
        let mut batch = self.next_datagram(now)?;
        let mut segments = 1;
        if batch.len() == full {
            while segments < limit {
                let Some(next) = self.next_chunk(now) else {
                    break;
                };
                let short = next.len() < full;
                // Free: `next` was sealed right after `batch` in the same block.
                batch.unsplit(next);
                segments += 1;
                if short {
                    break;
                }
            }
        }
        let segment_size = if segments == 1 { batch.len() } else { full };
        Some(Batch {
            to: self.peer,
            contents: batch.freeze(),
            segment_size: segment_size.max(1),
        })
    }

    fn next_datagram(&mut self, now: UnixMillis) -> Option<BytesMut> {
        match self.state {
            State::Closing | State::Complete | State::Aborted | State::Checking => None,
            State::Hello => {
                if self.hello_sent && self.probes == 0 {
                    return None;
                }
                self.probes = self.probes.saturating_sub(1);
                self.hello_sent = true;
                self.last_sent = now;
                let body = Body::Hello {
                    public: self.ephemeral.public(),
                    file_size: self.file_size,
                    payload_size: self.payload as u32,
                    protection: self.config.protection,
                };
                let room = self.room();
                self.keys.seal_mut(self.id, body, self.pool.reserve(room))
            }
            State::Sending => {
                if self.probes > 0 {
                    self.probes -= 1;
                    return self.send_probe(now);
                }
                if self.start_pending() || !self.may_send(now) {
                    return None;
                }
                if let Some(d) = self.take_chunk(now) {
                    return Some(d);
                }
                if self.fin_ready() && (!self.fin_sent || self.fin_due) {
                    return self.send_fin(now);
                }
                None
            }
        }
    }

    /// Whether the pacer and the congestion window let one more data datagram leave now.
    fn may_send(&mut self, now: UnixMillis) -> bool {
        let size = self.datagram_size;
        self.pacer.refill(now, self.rate.pacing_rate(), size);
        self.pacer.can_send(size) && self.flight.bytes_in_flight() + size <= self.rate.cwnd()
    }

    /// One more data datagram for a batch under way, if the pacer and the window allow it:
    /// never a probe, a control datagram or the `Fin`.
    fn next_chunk(&mut self, now: UnixMillis) -> Option<BytesMut> {
        if self.state != State::Sending
            || self.probes > 0
            || self.start_pending()
            || !self.may_send(now)
        {
            return None;
        }
        self.take_chunk(now)
    }

    /// The next chunk due: a lost one first, then a new one within the receiver's window.
    fn take_chunk(&mut self, now: UnixMillis) -> Option<BytesMut> {
        if let Some(i) = self.chunks.take_retx() {
            self.stats.retransmissions += 1;
            return self.send_chunk(i, now);
        }
        if self.chunks.has_new(self.peer_window_end) {
            let i = self.chunks.take_new()?;
            return self.send_chunk(i, now);
        }
        None
    }

    fn send_probe(&mut self, now: UnixMillis) -> Option<BytesMut> {
        // The `Start` until it is acknowledged; then the oldest chunk not yet acknowledged,
        // else the next one even beyond the window (the receiver drops it but answers with its
        // window), else the `Fin`.
        if !self.start_acked {
            return self.send_start(now);
        }
        if let Some(i) = self.chunks.oldest_unacked() {
            self.stats.retransmissions += 1;
            return self.send_chunk(i, now);
        }
        if let Some(i) = self.chunks.take_new() {
            return self.send_chunk(i, now);
        }
        if self.fin_ready() {
            return self.send_fin(now);
        }
        None
    }

    fn send_fin(&mut self, now: UnixMillis) -> Option<BytesMut> {
        let room = self.room();
        self.fin_sent = true;
        self.fin_sent_at = Some(now);
        self.fin_due = false;
        self.last_sent = now;
        let hash = self.source.hash().unwrap_or([0; HASH_LEN]);
        let pn = self.flight.take_pn();
        let body = Body::Fin {
            file_size: self.file_size,
            hash,
        };
        self.keys
            .seal_numbered_mut(self.id, pn, body, self.pool.reserve(room))
    }

    fn send_chunk(&mut self, index: u64, now: UnixMillis) -> Option<BytesMut> {
        let room = self.room();
        let pn = self.flight.take_pn();
        let payload = self.chunks.send(index, pn);
        let data_len = payload.len() as u64;
        let body = Body::Data {
            offset: self.chunks.offset_of(index),
            payload,
        };
        let bytes = self
            .keys
            .seal_numbered_mut(self.id, pn, body, self.pool.reserve(room))?;
        let size = bytes.len() as u64;
        self.pacer.on_sent(size);
        let app_limited = !self.chunks.has_retx() && !self.chunks.has_new(self.peer_window_end);
        let delivery = self
            .rate
            .on_packet_sent(now, self.flight.bytes_in_flight(), app_limited);
        self.flight.on_sent(
            pn,
            SentPacket {
                chunk: index,
                size,
                data_len,
                time_sent: now,
                delivery,
                lost: false,
            },
        );
        self.last_sent = now;
        self.stats.datagrams_sent += 1;
        Some(bytes)
    }
}
