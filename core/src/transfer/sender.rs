//! The presenter's side of a transfer: reads the file through its driver, sends it paced and
//! selectively repeated, and learns from the receiver's SACKs what arrived.
//!
//! # Driving a sender
//! - After creating it, and after every input, drain [`Sender::poll_event`] and
//!   [`Sender::poll_transmit`] until both return `None`; then wait for a datagram or until
//!   [`Sender::poll_timeout`], and call [`Sender::handle_datagram`] or
//!   [`Sender::handle_timeout`]. A spurious `handle_timeout` is harmless.
//! - [`SenderEvent::Read`] asks for file bytes: read exactly `len` bytes at `offset` and
//!   answer with [`Sender::handle_file_data`] (or [`Sender::abort`] with
//!   [`AbortReason::LocalIo`] if that fails). Reads are sequential and one at a time, which is
//!   what lets the sender hash the file as it goes, without a second pass.
//! - [`SenderEvent::Complete`] / [`SenderEvent::Aborted`] end the transfer; afterwards
//!   `poll_transmit` may still return a final `Abort` datagram for the peer.
//!
//! # How it works
//! A `Hello` (repeated on the probe timeout) opens the transfer and measures a first RTT. Data
//! goes in payload-sized chunks; every transmission gets a fresh packet number, so an ACK says
//! unambiguously which transmission arrived (RTT samples are clean, and a lost retransmission
//! is detected like any other loss). A packet is declared lost when one sent three packet
//! numbers later is acknowledged, or 9/8 RTT after a later one was (RFC 9002 §6.1); both
//! thresholds grow when a "lost" packet turns out to have arrived (reordering, as RACK does),
//! and such a late packet still counts as delivered. Its chunk
//! is queued for retransmission unless a newer transmission of it is in flight or it was
//! acknowledged meanwhile. When nothing is acknowledged for a probe timeout, the oldest
//! unacknowledged chunk is sent again regardless of the window, with exponential backoff up
//! to [`TransferConfig::max_probe_timeout_ms`]. The chunks in flight are kept in memory until
//! acknowledged; the receiver's window bounds them. When the whole file was read and sent,
//! a `Fin` carries its BLAKE3 hash; a `Done` from the receiver completes the transfer.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::datagram::{self, Ack, Body, ChainingValue, Datagram, DatagramError, TagKey};
use super::pacer::Pacer;
use super::rate::{DeliveryState, Mode, RateController};
use super::rtt::RttEstimator;
use super::tree::{FileHasher, leaf_cv, leaf_size_for};
use super::{AbortReason, HASH_LEN, Rejected, TransferConfig, TransferId, TransferSecret};
use crate::{Clock, UnixMillis};

/// Packet reordering tolerated before a packet is declared lost, at first (RFC 9002
/// kPacketThreshold); doubled, up to [`MAX_PACKET_THRESHOLD`], each time a loss proves
/// spurious (the "lost" packet is acknowledged later), as RACK adapts its reordering window.
const PACKET_THRESHOLD: u64 = 3;
/// Most reordering tolerated, in packets.
const MAX_PACKET_THRESHOLD: u64 = 256;
/// Time threshold in eighths of an RTT, at first (RFC 9002 kTimeThreshold = 9/8) and at most.
const TIME_THRESHOLD_X8: u64 = 9;
const MAX_TIME_THRESHOLD_X8: u64 = 16;
/// How many RTTs a packet declared lost is remembered, to notice that it arrived after all.
const LOST_MEMORY_RTTS: u64 = 4;
/// Longest ACK delay the receiver is expected to add (ms), part of the probe timeout.
pub const MAX_ACK_DELAY_MS: u64 = 2;
/// Datagrams sent when the probe timer fires.
const PROBES_PER_TIMEOUT: u8 = 2;

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
    /// Of those, how many were acknowledged later: reordering, not loss.
    pub spurious_losses: u64,
    /// Bytes written to the wire, all kinds.
    pub wire_bytes: u64,
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
    Hello,
    Sending,
    Complete,
    Aborted,
}

#[derive(Debug)]
struct Chunk {
    data: Bytes,
    /// In tree mode, the payload's BLAKE3 chaining value (tags every transmission).
    cv: Option<ChainingValue>,
    acked: bool,
    latest_pn: Option<u64>,
    queued: bool,
}

#[derive(Debug, Clone, Copy)]
struct SentPacket {
    chunk: u64,
    size: u64,
    data_len: u64,
    time_sent: UnixMillis,
    delivery: DeliveryState,
    /// Declared lost (no longer counted in flight) but remembered for a few RTTs.
    lost: bool,
}

/// The sending machine of one transfer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Sender {
    id: TransferId,
    key: TagKey,
    config: TransferConfig,
    file_size: u64,
    payload: u64,
    state: State,
    clock: Clock,
    // Reading the file.
    read_len: u64,
    read_next: u64,
    read_outstanding: bool,
    leaf: Option<u64>,
    datagram_size: u64,
    hasher: FileHasher,
    file_hash: Option<[u8; HASH_LEN]>,
    // Chunks `base..base + chunks.len()` (index = offset / payload), oldest first.
    base: u64,
    chunks: VecDeque<Chunk>,
    next_new: u64,
    retx: VecDeque<u64>,
    // Packets in flight by packet number.
    sent: BTreeMap<u64, SentPacket>,
    next_pn: u64,
    largest_acked: Option<u64>,
    bytes_in_flight: u64,
    loss_time: Option<UnixMillis>,
    packet_threshold: u64,
    time_threshold_x8: u64,
    // The peer's view.
    peer_cum: u64,
    peer_window_end: u64,
    // Control datagrams.
    hello_sent_at: Option<UnixMillis>,
    hello_sends: u32,
    fin_sent: bool,
    fin_sent_at: Option<UnixMillis>,
    fin_due: bool,
    probes: u8,
    pto_count: u32,
    last_sent: UnixMillis,
    last_heard: UnixMillis,
    control: VecDeque<Bytes>,
    events: VecDeque<SenderEvent>,
    // Models.
    rtt: RttEstimator,
    rate: RateController,
    pacer: Pacer,
    stats: SenderStats,
}

impl Sender {
    /// A sender of a file of `file_size` bytes for transfer `id`, starting at `now`.
    ///
    /// The file name does not travel here: the server told the audience already.
    pub fn new(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        config: TransferConfig,
        now: UnixMillis,
    ) -> Self {
        let max_datagram = config
            .max_datagram
            .clamp(datagram::MIN_DATAGRAM, super::MAX_DATAGRAM);
        let config = TransferConfig {
            max_datagram,
            ..config
        };
        // Tree mode when the datagram can carry a power-of-two leaf of at least 2 KiB.
        let capacity = config.payload_size() as u64;
        let leaf = leaf_size_for(capacity);
        let payload = leaf.unwrap_or(capacity);
        let datagram_size =
            payload + (datagram::HEADER_LEN + datagram::DATA_BODY_LEN + datagram::TAG_LEN) as u64;
        let read_len = (config.read_size as u64 / payload).max(1) * payload;
        let file_hash = (file_size == 0).then(|| *blake3::hash(&[]).as_bytes());
        Self {
            id,
            key: TagKey::derive(secret),
            file_size,
            payload,
            state: State::Hello,
            clock: Clock::new(now),
            read_len,
            read_next: 0,
            read_outstanding: false,
            leaf,
            datagram_size,
            hasher: FileHasher::new(file_size, leaf),
            file_hash,
            base: 0,
            chunks: VecDeque::new(),
            next_new: 0,
            retx: VecDeque::new(),
            sent: BTreeMap::new(),
            next_pn: 0,
            largest_acked: None,
            bytes_in_flight: 0,
            loss_time: None,
            packet_threshold: PACKET_THRESHOLD,
            time_threshold_x8: TIME_THRESHOLD_X8,
            peer_cum: 0,
            peer_window_end: 0,
            hello_sent_at: None,
            hello_sends: 0,
            fin_sent: false,
            fin_sent_at: None,
            fin_due: false,
            probes: 0,
            pto_count: 0,
            last_sent: now,
            last_heard: now,
            control: VecDeque::new(),
            events: VecDeque::new(),
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

    /// Whether the transfer ended (completed or aborted); the machine can be dropped once
    /// `poll_transmit` returns `None`.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Complete | State::Aborted)
    }

    /// Counters and the current model, for progress display.
    pub fn stats(&self) -> SenderStats {
        SenderStats {
            bytes_acked: self.acked_bytes(),
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

    fn acked_bytes(&self) -> u64 {
        // Bytes below the first chunk still held, plus acknowledged chunks above it.
        let below = (self.base * self.payload).min(self.file_size);
        let above: u64 = self
            .chunks
            .iter()
            .filter(|c| c.acked)
            .map(|c| c.data.len() as u64)
            .sum();
        (below + above).max(self.peer_cum)
    }

    fn chunk_count(&self) -> u64 {
        self.file_size.div_ceil(self.payload)
    }

    fn chunk(&self, index: u64) -> Option<&Chunk> {
        index
            .checked_sub(self.base)
            .and_then(|i| self.chunks.get(i as usize))
    }

    fn chunk_mut(&mut self, index: u64) -> Option<&mut Chunk> {
        index
            .checked_sub(self.base)
            .and_then(|i| self.chunks.get_mut(i as usize))
    }

    /// Give up: tell the peer (best effort) and report `reason`.
    pub fn abort(&mut self, reason: AbortReason, now: UnixMillis) {
        self.clock.advance(now);
        if self.is_finished() {
            return;
        }
        self.control
            .push_back(datagram::encode_abort(self.id, reason.to_peer(), &self.key));
        self.finish(State::Aborted, SenderEvent::Aborted(reason));
    }

    fn finish(&mut self, state: State, event: SenderEvent) {
        self.state = state;
        self.events.push_back(event);
        self.chunks.clear();
        self.retx.clear();
        self.sent.clear();
        self.bytes_in_flight = 0;
    }

    /// The file bytes a [`SenderEvent::Read`] asked for.
    ///
    /// Data that was not asked for, or of the wrong length, is a driver bug or a file that
    /// changed under us: the transfer aborts with [`AbortReason::LocalIo`].
    pub fn handle_file_data(&mut self, offset: u64, data: Bytes, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.is_finished() {
            return;
        }
        let expected = self.read_len.min(self.file_size - self.read_next);
        if !self.read_outstanding || offset != self.read_next || data.len() as u64 != expected {
            self.abort(AbortReason::LocalIo, now);
            return;
        }
        self.read_outstanding = false;
        let mut at = 0usize;
        while at < data.len() {
            let end = (at + self.payload as usize).min(data.len());
            let piece = data.slice(at..end);
            let cv = self
                .leaf
                .and_then(|leaf| leaf_cv(leaf, offset + at as u64, &piece));
            self.hasher.push(&piece, cv);
            self.chunks.push_back(Chunk {
                data: piece,
                cv,
                acked: false,
                latest_pn: None,
                queued: false,
            });
            at = end;
        }
        self.read_next += data.len() as u64;
        if self.read_next == self.file_size {
            self.file_hash = Some(self.hasher.finalize());
        }
    }

    fn maybe_request_read(&mut self) {
        if self.read_outstanding || self.read_next >= self.file_size || self.state != State::Sending
        {
            return;
        }
        // Keep a read's worth of unsent data ready, and never hold more than the receiver's
        // window plus that: memory stays bounded whatever the file size.
        let unsent = self.read_next.saturating_sub(self.next_new * self.payload);
        let held = self.read_next.saturating_sub(self.base * self.payload);
        // The receiver's advertised window, but never more than our own configured window:
        // a peer cannot make us hold the whole file in memory.
        let window = self
            .peer_window_end
            .saturating_sub(self.peer_cum)
            .min(self.config.receive_window)
            .max(self.config.receive_window.min(1 << 20));
        if unsent >= self.read_len || held >= window.saturating_add(self.read_len) {
            return;
        }
        let len = self.read_len.min(self.file_size - self.read_next);
        self.read_outstanding = true;
        self.events.push_back(SenderEvent::Read {
            offset: self.read_next,
            len: len as usize,
        });
    }

    /// The next file request or outcome, if any.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.maybe_request_read();
        self.events.pop_front()
    }

    /// Feed a datagram that arrived for this transfer.
    ///
    /// Returns `Err` (and counts it) if it is not an authentic datagram of this transfer;
    /// a caller routing by source address should only trust the address on `Ok`.
    pub fn handle_datagram(&mut self, bytes: &Bytes, now: UnixMillis) -> Result<(), DatagramError> {
        let now = self.clock.advance(now);
        let d = match datagram::decode(bytes, &self.key) {
            Ok(d) if d.id == self.id => d,
            Ok(_) => {
                self.stats.rejected.bad += 1;
                return Err(DatagramError::BadTag);
            }
            Err(e) => {
                self.stats.rejected.bad += 1;
                return Err(e);
            }
        };
        if self.is_finished() {
            self.stats.rejected.stale += 1;
            return Ok(());
        }
        self.last_heard = now;
        match d.body {
            Body::Ack(ack) => self.on_ack(ack, now),
            Body::Done { file_size }
                if file_size == self.file_size && self.file_hash.is_some() && self.fin_sent =>
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
            Body::Hello { .. } | Body::Data { .. } | Body::Fin { .. } => {
                self.stats.rejected.stale += 1
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, ack: Ack, now: UnixMillis) {
        if self.state == State::Hello {
            self.state = State::Sending;
            // Only an unrepeated `Hello` gives an unambiguous RTT sample (Karn).
            match self.hello_sent_at {
                Some(t) if self.hello_sends == 1 => {
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
        let mut largest_newly_acked: Option<(u64, UnixMillis)> = None;
        for &(first, last) in &ack.ranges {
            let pns: Vec<u64> = self.sent.range(first..=last).map(|(&pn, _)| pn).collect();
            for pn in pns {
                let Some(p) = self.sent.remove(&pn) else {
                    continue;
                };
                progressed = true;
                if p.lost {
                    // It arrived after all: the path reorders more than we tolerated.
                    self.stats.spurious_losses += 1;
                    self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
                    self.time_threshold_x8 =
                        (self.time_threshold_x8 + 1).min(MAX_TIME_THRESHOLD_X8);
                } else {
                    self.bytes_in_flight = self.bytes_in_flight.saturating_sub(p.size);
                }
                self.rate
                    .on_packet_acked(p.delivery, p.time_sent, p.data_len, now);
                if let Some(c) = self.chunk_mut(p.chunk) {
                    c.acked = true;
                }
                if largest_newly_acked.is_none_or(|(l, _)| pn > l) {
                    largest_newly_acked = Some((pn, p.time_sent));
                }
            }
        }
        match largest_newly_acked {
            Some((pn, sent)) if self.largest_acked.is_none_or(|l| pn > l) => {
                self.largest_acked = Some(pn);
                self.rtt
                    .update(now.millis_since(sent), u64::from(ack.ack_delay_ms));
            }
            _ => {}
        }
        // Chunks below the cumulative offset arrived, whichever transmission carried them.
        let cum_chunks = if self.peer_cum >= self.file_size {
            self.chunk_count()
        } else {
            self.peer_cum / self.payload
        };
        let cum_chunks = cum_chunks.min(self.base + self.chunks.len() as u64);
        for i in self.base..cum_chunks {
            if let Some(c) = self.chunk_mut(i) {
                c.acked = true;
            }
        }
        // Drop acknowledged chunks from the front: they are no longer needed.
        while self.chunks.front().is_some_and(|c| c.acked) {
            self.chunks.pop_front();
            self.base += 1;
        }
        self.next_new = self.next_new.max(self.base);

        self.detect_lost(now);
        if progressed {
            self.pto_count = 0;
        }
        let rtt = self
            .rtt
            .has_sample()
            .then(|| (self.rtt.min(), self.rtt.smoothed()));
        self.rate.on_ack_processed(now, rtt, self.bytes_in_flight);

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
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let base = self.rtt.smoothed().max(self.rtt.latest());
        let loss_delay = (base * self.time_threshold_x8 / 8).max(super::rtt::GRANULARITY_MS);
        let forget_after = base.max(1) * LOST_MEMORY_RTTS;
        let mut lost = Vec::new();
        let mut forget = Vec::new();
        for (&pn, p) in self.sent.range(..largest) {
            if p.lost {
                if now.millis_since(p.time_sent) > forget_after {
                    forget.push(pn);
                }
            } else if largest - pn >= self.packet_threshold
                || p.time_sent.plus_millis(loss_delay) <= now
            {
                lost.push(pn);
            } else {
                let t = p.time_sent.plus_millis(loss_delay);
                self.loss_time = Some(self.loss_time.map_or(t, |l| l.min(t)));
            }
        }
        for pn in forget {
            self.sent.remove(&pn);
        }
        for pn in lost {
            let Some(p) = self.sent.get_mut(&pn) else {
                continue;
            };
            p.lost = true;
            let (size, chunk) = (p.size, p.chunk);
            self.stats.lost += 1;
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(size);
            self.rate.on_packet_lost(size);
            // Retransmit unless it arrived meanwhile or a newer transmission is out there.
            let retransmit = self
                .chunk(chunk)
                .is_some_and(|c| !c.acked && c.latest_pn == Some(pn) && !c.queued);
            if retransmit {
                if let Some(c) = self.chunk_mut(chunk) {
                    c.queued = true;
                }
                self.retx.push_back(chunk);
            }
        }
    }

    fn pto_deadline(&self) -> Option<UnixMillis> {
        if self.is_finished() {
            return None;
        }
        let outstanding = self.state == State::Hello
            || self.bytes_in_flight > 0
            || self.fin_sent
            || self.window_blocked();
        if !outstanding {
            return None;
        }
        let base = self.rtt.pto_base(MAX_ACK_DELAY_MS);
        let backed_off = base.saturating_mul(1u64 << self.pto_count.min(16));
        let timeout = backed_off.min(self.config.max_probe_timeout_ms.max(base));
        Some(self.last_sent.plus_millis(timeout))
    }

    fn window_blocked(&self) -> bool {
        self.next_new < self.base + self.chunks.len() as u64
            && self.next_new * self.payload + self.payload.min(self.file_size)
                > self.peer_window_end
    }

    /// Timers: idle timeout, loss detection, probe timeout. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.is_finished() {
            return;
        }
        if now.millis_since(self.last_heard) >= self.config.idle_timeout_ms {
            self.abort(AbortReason::PeerSilent, now);
            return;
        }
        if self.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now);
        }
        if self.pto_deadline().is_some_and(|t| t <= now) {
            self.pto_count = self.pto_count.saturating_add(1);
            self.probes = PROBES_PER_TIMEOUT;
            // The probe timer restarts from the probes, not from the last data packet.
            self.last_sent = now;
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        if self.is_finished() {
            return None;
        }
        let mut t = self.last_heard.plus_millis(self.config.idle_timeout_ms);
        if let Some(l) = self.loss_time {
            t = t.min(l);
        }
        if let Some(p) = self.pto_deadline() {
            t = t.min(p);
        }
        if self.probes == 0 && self.has_paced_data() {
            let size = self.datagram_size;
            if self.bytes_in_flight + size <= self.rate.cwnd() && !self.pacer.can_send(size) {
                t = t.min(self.pacer.next_send_time(size, self.rate.pacing_rate()));
            }
        }
        Some(t)
    }

    fn has_new_data(&self) -> bool {
        self.chunk(self.next_new).is_some_and(|c| {
            self.next_new * self.payload + c.data.len() as u64 <= self.peer_window_end
        })
    }

    fn has_paced_data(&self) -> bool {
        self.state == State::Sending
            && (!self.retx.is_empty()
                || self.has_new_data()
                || (self.fin_ready() && (!self.fin_sent || self.fin_due)))
    }

    fn fin_ready(&self) -> bool {
        self.file_hash.is_some() && self.next_new >= self.chunk_count()
    }

    /// The next datagram to send to the peer, if one may leave at `now`.
    pub fn poll_transmit(&mut self, now: UnixMillis) -> Option<Bytes> {
        let now = self.clock.advance(now);
        if let Some(c) = self.control.pop_front() {
            self.stats.wire_bytes += c.len() as u64;
            return Some(c);
        }
        match self.state {
            State::Complete | State::Aborted => None,
            State::Hello => {
                if self.hello_sent_at.is_some() && self.probes == 0 {
                    return None;
                }
                self.probes = self.probes.saturating_sub(1);
                self.hello_sent_at = Some(now);
                self.hello_sends += 1;
                self.last_sent = now;
                let body = Body::Hello {
                    file_size: self.file_size,
                    payload_size: self.payload as u32,
                };
                Some(self.encode(body))
            }
            State::Sending => {
                if self.probes > 0 {
                    self.probes -= 1;
                    return self.send_probe(now);
                }
                let size = self.datagram_size;
                self.pacer.refill(now, self.rate.pacing_rate(), size);
                if !self.pacer.can_send(size) || self.bytes_in_flight + size > self.rate.cwnd() {
                    return None;
                }
                while let Some(i) = self.retx.pop_front() {
                    let Some(c) = self.chunk_mut(i) else { continue };
                    c.queued = false;
                    if c.acked {
                        continue;
                    }
                    self.stats.retransmissions += 1;
                    return Some(self.send_chunk(i, now));
                }
                if self.has_new_data() {
                    let i = self.next_new;
                    self.next_new += 1;
                    return Some(self.send_chunk(i, now));
                }
                if self.fin_ready() && (!self.fin_sent || self.fin_due) {
                    return Some(self.send_fin(now));
                }
                None
            }
        }
    }

    fn send_probe(&mut self, now: UnixMillis) -> Option<Bytes> {
        // The oldest chunk not yet acknowledged, else the next one even beyond the window
        // (the receiver drops it but answers with its window), else the `Fin`.
        let oldest = (self.base..self.next_new).find(|&i| self.chunk(i).is_some_and(|c| !c.acked));
        if let Some(i) = oldest {
            self.stats.retransmissions += 1;
            return Some(self.send_chunk(i, now));
        }
        if self.chunk(self.next_new).is_some() {
            let i = self.next_new;
            self.next_new += 1;
            return Some(self.send_chunk(i, now));
        }
        if self.fin_ready() {
            return Some(self.send_fin(now));
        }
        None
    }

    fn send_fin(&mut self, now: UnixMillis) -> Bytes {
        self.fin_sent = true;
        self.fin_sent_at = Some(now);
        self.fin_due = false;
        self.last_sent = now;
        let hash = self.file_hash.unwrap_or([0; HASH_LEN]);
        self.encode(Body::Fin {
            file_size: self.file_size,
            hash,
        })
    }

    fn send_chunk(&mut self, index: u64, now: UnixMillis) -> Bytes {
        let pn = self.next_pn;
        self.next_pn += 1;
        let (payload, cv) = match self.chunk_mut(index) {
            Some(c) => {
                c.latest_pn = Some(pn);
                (c.data.clone(), c.cv)
            }
            None => (Bytes::new(), None),
        };
        let data_len = payload.len() as u64;
        let body = Body::Data {
            pn,
            offset: index * self.payload,
            payload,
        };
        let bytes = datagram::encode_with(&Datagram { id: self.id, body }, &self.key, cv.as_ref());
        self.stats.wire_bytes += bytes.len() as u64;
        let size = bytes.len() as u64;
        self.pacer.on_sent(size);
        let app_limited = self.retx.is_empty() && !self.has_new_data();
        let delivery = self
            .rate
            .on_packet_sent(now, self.bytes_in_flight, app_limited);
        self.bytes_in_flight += size;
        self.sent.insert(
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
        bytes
    }

    fn encode(&mut self, body: Body) -> Bytes {
        let bytes = datagram::encode(&Datagram { id: self.id, body }, &self.key);
        self.stats.wire_bytes += bytes.len() as u64;
        bytes
    }
}
