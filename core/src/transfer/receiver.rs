//! The audience's side of a transfer: waits for its user's decision, agrees the session keys,
//! offers what a partial file already holds, accepts authentic data within its window, hands
//! the driver in-order writes for the `.part` file, acknowledges selectively, and declares
//! success only after the whole-file BLAKE3 hash matches the presenter's.
//!
//! # Driving a receiver
//! - Inputs: [`Receiver::handle_datagram`] for every datagram of this transfer (with the
//!   address it came from), [`Receiver::handle_timeout`] when [`Receiver::poll_timeout`] is due
//!   (a spurious call is harmless); the audience's decision, [`Receiver::accept`],
//!   [`Receiver::accept_resuming`] or [`Receiver::abort`] (declined, cancelled, or the driver
//!   cannot create or write the file); [`Receiver::handle_part_data`] or
//!   [`Receiver::part_unreadable`] answering a [`ReceiverEvent::ReadPart`].
//! - Outputs, after every input: drain [`Receiver::poll_event`], then
//!   [`Receiver::poll_transmit`], until both return `None`; then wait for a datagram or
//!   [`Receiver::poll_timeout`].
//! - [`ReceiverEvent::ReadPart`]: read `len` bytes at `offset` of the partial file being
//!   resumed and hand them to [`Receiver::handle_part_data`]. Reads are sequential.
//! - [`ReceiverEvent::Write`]: write `data` at `offset` of the `.part` file. Writes come in
//!   file order (from where a resume starts), so a buffered sequential writer suffices; they
//!   come a block of about 256 KiB at a time (see `reassembly`), and whatever is in order is
//!   written before an `Aborted`, so a resume keeps it.
//! - [`ReceiverEvent::Complete`]: every write before it is the whole, verified file: flush and
//!   give the `.part` file its final name (without overwriting anything).
//! - [`ReceiverEvent::Aborted`]: the transfer is over without the file; the client core decides
//!   whether the `.part` is kept for resuming. The machine stays a little longer (until
//!   [`Receiver::is_finished`]) to repeat its `Abort` to a sender that missed it.
//!
//! # The handshake
//! A new receiver waits for its user's decision for at most
//! [`TransferConfig::decision_timeout_ms`] (then it declines with
//! [`AbortReason::NoAnswer`]); meanwhile it answers the sender's `Hello`s with `Hold`, which
//! keeps the sender waiting. Once accepted — and, for a resume, once its partial file is
//! hashed into block CVs (`Hold` again meanwhile) — it answers the `Hello` with a `Welcome`:
//! its X25519 public key and its resume offer. Both sides then derive the session keys (see
//! `keys`); the sender's `Start` says where the file starts (0, or the end of the offered
//! blocks that agree with the sender's file) and data follows.
//!
//! # Who the peer is
//! The server named the presenter's address in its announcement; every answer goes there,
//! including an `Abort` sent before anything arrived (a file that cannot be created, too many
//! transfers at once, a decline). Authentic data from another address is accepted, but moves
//! the answers there only if it carries a packet number higher than any seen (or is the
//! `Hello`) and the sender then answers a `Challenge` from that address (a NAT that rebinds,
//! or maps the port anew): one replayed datagram cannot redirect the acknowledgements.
//!
//! # Memory
//! Every payload is opened straight into its place in a block of the file (see
//! `reassembly`), in order or not, and waits there until the gap before it fills; whole
//! blocks then go to the hasher and the driver without another copy. The receiver advertises
//! a window (`cum + receive_window`) and drops anything beyond it; blocks are charged their
//! whole size against a memory cap shared by all receivers of a [`super::TransferSet`], and
//! a datagram whose block would pass it is dropped *unacknowledged*, so the sender repeats
//! it. Payloads must be whole, aligned chunks of the size the `Hello` announced (at least
//! [`MIN_PAYLOAD`] bytes), so a sender of tiny datagrams breaks the protocol instead of
//! filling the memory.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::datagram::{self, Ack, Body, DatagramError, Header, HoldReason, Kind, Offer};
use super::keys::{EphemeralKey, KeyPair, Protection, Side, Transcript, TransferKeys};
use super::reassembly::{Insert, Place, Reassembly};
use super::sack::RangeSet;
use super::timer::{Timer, TimerTable};
use super::tree::{BLOCK, Cv, FileHasher, merge_blocks};
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
    (datagram::MIN_DATAGRAM - datagram::DATA_HEADER_LEN - datagram::TAG_LEN) as u64;

/// After the end, stragglers from the sender are answered (with `Done` or `Abort`) at most
/// this often (ms): enough for a sender that missed the answer, never a flood. The same
/// bound holds for the `Hold`s and `Welcome`s that answer repeated `Hello`s.
const ANSWER_EVERY_MS: u64 = 10;

/// How long a challenge to a new sender address waits for its answer (ms).
const CHALLENGE_TIMEOUT_MS: u64 = 1_000;

/// Bytes of the partial file asked for at a time while checking it.
const PART_READ: u64 = BLOCK;

/// What the receiver tells its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Read `len` bytes at `offset` of the partial file being resumed, for
    /// [`Receiver::handle_part_data`].
    ReadPart {
        /// Where in the file.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
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
    /// The transfer is over without a file.
    Aborted(AbortReason),
}

/// Counters an audience can show and tests can check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Size of the file.
    pub file_size: u64,
    /// Bytes received in order (written, or held until their block is whole), those kept
    /// from a resume included.
    pub bytes_received: u64,
    /// Bytes of a partial file kept from an earlier transfer (verified with the sender).
    pub resumed_from: u64,
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
    /// Memory charged for the receive buffer: the blocks of the file being filled (in-order
    /// bytes not written yet, data waiting for a gap to fill) and spare blocks for reuse.
    pub buffered: u64,
    /// The most memory ever charged at once: the receiver's high-water mark.
    pub peak_buffered: u64,
    /// Receive-buffer blocks allocated; every other block reused one handed on before.
    pub blocks_allocated: u64,
    /// Challenges sent to a new sender address.
    pub challenges: u64,
    /// Times the answers moved to a new, verified sender address.
    pub migrations: u64,
    /// Datagrams ignored.
    pub rejected: Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The audience has not decided yet.
    Deciding,
    /// Taken: the audience's client is getting the file ready (looking for a part it kept,
    /// creating one). The presenter is held as it is while the audience decides, but told
    /// that nobody is being asked.
    Preparing,
    /// Accepted; hashing the partial file to offer it.
    Checking,
    /// Ready; the sender's `Hello` has not arrived yet.
    AwaitingHello,
    /// `Welcome` sent; waiting for the sender's `Start`.
    AwaitingStart,
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

/// What the sender's `Hello` announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hello {
    public: [u8; 32],
    payload: u64,
}

/// The partial file being hashed into block CVs.
#[derive(Debug)]
struct PartCheck {
    /// Bytes to check: whole blocks, fewer than the file.
    len: u64,
    next: u64,
    outstanding: bool,
    hasher: FileHasher,
}

/// The receiving machine of one transfer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Receiver {
    id: TransferId,
    secret: TransferSecret,
    ephemeral: EphemeralKey,
    keys: TransferKeys,
    config: TransferConfig,
    file_size: u64,
    state: State,
    clock: Clock,
    timers: TimerTable,
    // The peer.
    peer: SocketAddr,
    hello: Option<Hello>,
    challenge: Option<Challenge>,
    next_token: u64,
    last_heard: UnixMillis,
    /// Whether anything authentic came from the peer at all: a peer never heard is
    /// probably unreachable (a firewall, a NAT), not just gone quiet.
    heard_any: bool,
    last_answer: Option<UnixMillis>,
    /// Why we gave up, to repeat it.
    abort_reason: Option<AbortReason>,
    /// The sender said where the data starts (`Start`): until then a kept part is only being
    /// checked, and none of it counts as received.
    started: bool,
    // Resuming.
    check: Option<PartCheck>,
    /// The hashing-block CVs of the partial file, and what we offered from them.
    part_cvs: Vec<Cv>,
    offer: Offer,
    // The file.
    /// Payload size announced by the `Hello` (0 before it).
    payload: u64,
    hasher: FileHasher,
    expected_hash: Option<[u8; HASH_LEN]>,
    /// Where every payload is opened, and what is in order (`held.cum()`).
    held: Reassembly,
    memory_cap: u64,
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
    pool: BytesMut,
    /// Where datagrams that are only checked (not kept) are opened.
    scratch: BytesMut,
    stats: ReceiverStats,
}

/// What becomes of an authentic data payload, decided from its place alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not a whole chunk at its place in the file: the sender breaks the protocol.
    Misfit,
    /// Every byte of it is in order already.
    Duplicate,
    /// Past the advertised window.
    BeyondWindow,
    /// Kept, in its slot.
    Keep,
    /// Its block would pass the memory cap.
    NoRoom,
}

impl Receiver {
    /// A receiver for transfer `id` of a file the server announced as `file_size` bytes, from
    /// the presenter's client at `peer` (as the server named it), with `ephemeral` as its half
    /// of the key exchange. It waits for the audience's decision ([`Receiver::accept`]).
    ///
    /// If the sender's `Hello` announces another size the transfer aborts: the audience
    /// agreed to receive what the server described, nothing else.
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
            .clamp(datagram::MIN_DATAGRAM, MAX_DATAGRAM);
        let own_payload = datagram::payload_capacity(max_datagram) as u64;
        // Acknowledge about every 64 KiB, at least every second and at most every eighth packet.
        let ack_every = (65_536 / own_payload).clamp(2, 8) as u32;
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, now.plus_millis(config.idle_timeout_ms));
        timers.set(Timer::Decision, now.plus_millis(config.decision_timeout_ms));
        Self {
            id,
            secret: secret.clone(),
            ephemeral,
            keys: TransferKeys::new(secret, id, Side::Receiver),
            file_size,
            state: State::Deciding,
            clock: Clock::new(now),
            timers,
            peer,
            hello: None,
            challenge: None,
            next_token: config.seed ^ id.0.rotate_left(17),
            last_heard: now,
            heard_any: false,
            last_answer: None,
            abort_reason: None,
            started: false,
            check: None,
            part_cvs: Vec::new(),
            offer: Offer::default(),
            payload: 0,
            hasher: FileHasher::new(file_size),
            expected_hash: None,
            held: Reassembly::new(file_size),
            memory_cap: config.receive_memory,
            pns: RangeSet::new(),
            largest_pn: None,
            largest_pn_time: now,
            ack_every,
            unacked: 0,
            ack_now: false,
            max_ranges: datagram::ack_range_capacity(max_datagram),
            control: VecDeque::new(),
            events: VecDeque::new(),
            pool: BytesMut::new(),
            scratch: BytesMut::new(),
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
    /// receives as many files as it takes, a file it cannot save, or a decline by policy.
    #[allow(clippy::too_many_arguments)]
    pub fn refuse(
        id: TransferId,
        secret: &TransferSecret,
        file_size: u64,
        peer: SocketAddr,
        reason: AbortReason,
        config: TransferConfig,
        ephemeral: EphemeralKey,
        now: UnixMillis,
    ) -> Self {
        let mut r = Self::new(id, secret, file_size, peer, config, ephemeral, now);
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

    /// Whether a kept part is being checked (hashed, or compared by the sender) before data
    /// comes.
    pub fn is_checking(&self) -> bool {
        matches!(self.state, State::Checking | State::AwaitingStart) && !self.offer.is_empty()
            || self.state == State::Checking
    }

    /// Whether anything authentic ever came from the presenter: if not, when it gives up,
    /// the presenter's datagrams probably cannot reach it (a firewall, a NAT).
    pub fn has_heard_from_peer(&self) -> bool {
        self.heard_any
    }

    /// Whether the data began (the sender said where it starts): before that, a kept part is
    /// still as it was kept, whatever the outcome, and may be kept again as it is.
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Whether the file is not accepted yet: the audience decides, or its client gets the file
    /// ready ([`Receiver::take`]).
    pub fn is_deciding(&self) -> bool {
        matches!(self.state, State::Deciding | State::Preparing)
    }

    /// Whether the outcome is known (verified or given up), lingering or not.
    fn is_over(&self) -> bool {
        matches!(
            self.state,
            State::Lingering | State::Closing | State::Complete | State::Aborted
        )
    }

    /// Counters, for progress display.
    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            bytes_received: self.held.cum(),
            buffered: self.held.charged(),
            blocks_allocated: self.held.fresh(),
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
        self.held
            .cum()
            .saturating_add(self.config.receive_window)
            .min(self.file_size)
    }

    /// The audience takes the file; its client now gets it ready and then calls
    /// [`Receiver::accept`] or [`Receiver::accept_resuming`]. Meanwhile the presenter hears
    /// [`HoldReason::CheckingPart`], not that the audience is being asked. The decision's time
    /// limit still runs: a driver that never answers does not hold the presenter for ever.
    pub fn take(&mut self, now: UnixMillis) {
        self.clock.advance(now);
        if self.state == State::Deciding {
            self.state = State::Preparing;
        }
    }

    /// The audience accepts the file, from its first byte.
    pub fn accept(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        if !self.is_deciding() {
            return;
        }
        self.timers.stop(Timer::Decision);
        self.ready(now);
    }

    /// The audience accepts the file and holds its first `held` bytes from an interrupted
    /// transfer: they are read back ([`ReceiverEvent::ReadPart`]), hashed, and offered to the
    /// sender, which keeps what agrees with its file. Less than a block is not worth it: then
    /// this is [`Receiver::accept`].
    pub fn accept_resuming(&mut self, held: u64, now: UnixMillis) {
        let now = self.clock.advance(now);
        if !self.is_deciding() {
            return;
        }
        self.timers.stop(Timer::Decision);
        // Whole blocks only, and never the whole file: the last bytes always travel, so the
        // file's hash is always a merge (see `tree`).
        let len = held.min(self.file_size.saturating_sub(1)) / BLOCK * BLOCK;
        if len == 0 {
            self.ready(now);
            return;
        }
        self.state = State::Checking;
        self.check = Some(PartCheck {
            len,
            next: 0,
            outstanding: false,
            hasher: FileHasher::new(self.file_size),
        });
    }

    /// Bytes of the partial file a [`ReceiverEvent::ReadPart`] asked for. Anything else than
    /// what was asked for ends the check with nothing to offer.
    pub fn handle_part_data(&mut self, offset: u64, data: &[u8], now: UnixMillis) {
        let now = self.clock.advance(now);
        let Some(check) = self.check.as_mut() else {
            return;
        };
        let expected = PART_READ.min(check.len - check.next);
        if !check.outstanding || offset != check.next || data.len() as u64 != expected {
            self.part_unreadable(now);
            return;
        }
        check.outstanding = false;
        check.next += data.len() as u64;
        let cvs = &mut self.part_cvs;
        check.hasher.push_with(data, |_, cv| cvs.push(cv));
        if check.next == check.len {
            self.check = None;
            self.offer = build_offer(
                &self.part_cvs,
                datagram::offer_capacity(self.config.max_datagram),
            );
            self.ready(now);
        }
    }

    /// The partial file could not be read: nothing is offered, the file comes whole.
    pub fn part_unreadable(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.state != State::Checking {
            return;
        }
        self.check = None;
        self.part_cvs.clear();
        self.ready(now);
    }

    /// Ready for the `Hello`: answer it if it came already.
    fn ready(&mut self, now: UnixMillis) {
        self.state = State::AwaitingHello;
        if self.hello.is_some() {
            self.send_welcome(now);
        }
    }

    fn send_welcome(&mut self, now: UnixMillis) {
        let Some(hello) = self.hello else { return };
        if !self.keys.has_session() {
            let transcript = Transcript {
                sender_public: hello.public,
                receiver_public: self.ephemeral.public(),
                file_size: self.file_size,
                payload_size: hello.payload as u32,
            };
            match KeyPair::session(
                &self.ephemeral,
                &hello.public,
                &self.secret,
                self.id,
                &transcript,
                Side::Receiver,
                self.config.protection,
            ) {
                Ok(k) => self.keys.set_session(k),
                Err(_) => {
                    self.abort(AbortReason::ProtocolViolation, now);
                    return;
                }
            }
        }
        // Twice the first time: it is tiny, and a lost one costs the sender an initial probe
        // timeout (see the sender's `HANDSHAKE_COPIES`).
        let copies = if self.state == State::AwaitingStart {
            1
        } else {
            2
        };
        self.state = State::AwaitingStart;
        self.last_answer = Some(now);
        for _ in 0..copies {
            let body = Body::Welcome {
                public: self.ephemeral.public(),
                offer: self.offer.clone(),
            };
            self.queue(self.peer, body);
        }
    }

    /// Seal `body` and queue it for `to`.
    fn queue(&mut self, to: SocketAddr, body: Body) {
        if let Some(contents) = self.keys.seal(self.id, body, &mut self.pool) {
            self.control.push_back(Transmit { to, contents });
        }
    }

    /// Give up: tell the peer (at once, and again to its stragglers) and emit
    /// [`ReceiverEvent::Aborted`]. Also how the audience declines
    /// ([`AbortReason::Declined`]).
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
        self.hand_on_rest();
        self.send_abort(reason);
        self.end(State::Closing, ReceiverEvent::Aborted(reason), now);
    }

    fn send_abort(&mut self, reason: AbortReason) {
        self.abort_reason = Some(reason);
        self.queue(
            self.peer,
            Body::Abort {
                reason: reason.to_peer(),
            },
        );
    }

    fn end(&mut self, state: State, event: ReceiverEvent, now: UnixMillis) {
        self.state = state;
        self.events.push_back(event);
        self.held.clear();
        self.check = None;
        self.part_cvs = Vec::new();
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
        bytes: &[u8],
        now: UnixMillis,
    ) -> Result<(), DatagramError> {
        let now = self.clock.advance(now);
        let header = match datagram::peek(bytes) {
            Ok(h) if h.id == self.id => h,
            Ok(_) => return self.reject(DatagramError::Unauthentic),
            Err(e) => return self.reject(e),
        };
        if header.kind == Kind::Data && self.state == State::Receiving {
            return self.handle_data(from, header, bytes, now);
        }
        let d = match self.keys.open(bytes, &mut self.scratch) {
            Ok(d) => d,
            Err(e) => return self.reject(e),
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
            _ => {}
        }
        self.heard(now);
        match d.body {
            Body::Hello {
                public,
                file_size,
                payload_size,
                protection,
            } => self.on_hello(
                from,
                file_size,
                Hello {
                    public,
                    payload: u64::from(payload_size),
                },
                protection,
                now,
            ),
            Body::Start { offset } => self.on_start(offset, now),
            // Nothing was offered, so the file starts at 0: data whose `Start` was lost or
            // overtaken says so as well as the `Start` would.
            Body::Data { offset, payload }
                if self.state == State::AwaitingStart && self.offer.is_empty() =>
            {
                self.on_start(0, now);
                self.on_data(from, d.pn, offset, payload, now);
            }
            Body::Data { .. } => {
                // Data before the sender said where a resume starts: it cannot be placed yet
                // (it is repeated).
                self.stats.rejected.stale += 1;
            }
            Body::Fin { file_size, hash } => {
                if self.state != State::Receiving {
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
                self.hand_on_rest();
                self.end(
                    State::Aborted,
                    ReceiverEvent::Aborted(AbortReason::PeerAborted(reason)),
                    now,
                );
            }
            Body::Response { token } => self.on_response(from, token),
            // The sender checks our offer: it is alive.
            Body::Hold { .. } => {}
            Body::Ack(_) | Body::Done { .. } | Body::Challenge { .. } | Body::Welcome { .. } => {
                self.stats.rejected.stale += 1
            }
        }
        Ok(())
    }

    fn reject(&mut self, e: DatagramError) -> Result<(), DatagramError> {
        self.stats.rejected.count(e);
        Err(e)
    }

    /// Something authentic arrived from the sender.
    fn heard(&mut self, now: UnixMillis) {
        self.last_heard = now;
        self.heard_any = true;
        self.timers
            .set(Timer::Idle, now.plus_millis(self.config.idle_timeout_ms));
    }

    fn on_hello(
        &mut self,
        from: SocketAddr,
        file_size: u64,
        hello: Hello,
        protection: Protection,
        now: UnixMillis,
    ) {
        let max_payload = datagram::payload_capacity(MAX_DATAGRAM) as u64;
        if file_size != self.file_size {
            self.abort(AbortReason::SizeMismatch, now);
            return;
        }
        // Only the protection we are configured with: nobody on the path, nor the server,
        // can talk a client out of encrypting.
        if !(MIN_PAYLOAD..=max_payload).contains(&hello.payload)
            || protection != self.config.protection
            || self.hello.is_some_and(|h| h != hello)
        {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        if self.hello.is_none() {
            self.hello = Some(hello);
            self.payload = hello.payload;
        }
        // The presenter's datagrams come from elsewhere than the server said (a NAT that maps
        // its port anew): without an answer there, its `Hello` would never be answered. Ask it
        // to prove itself from there.
        if from != self.peer {
            self.challenge_address(from, now);
        }
        let due = self
            .last_answer
            .is_none_or(|t| now.millis_since(t) >= ANSWER_EVERY_MS);
        match self.state {
            State::Deciding | State::Preparing | State::Checking if due => {
                self.last_answer = Some(now);
                self.hold();
            }
            State::AwaitingHello => self.send_welcome(now),
            // Our `Welcome` got lost: again.
            State::AwaitingStart if due => self.send_welcome(now),
            _ => self.stats.rejected.stale += 1,
        }
    }

    fn on_start(&mut self, offset: u64, now: UnixMillis) {
        match self.state {
            State::AwaitingStart => {}
            // Our first ACK got lost: the next one goes at once.
            State::Receiving if offset == self.stats.resumed_from => {
                self.ack_now = true;
                return;
            }
            State::Receiving => {
                self.abort(AbortReason::ProtocolViolation, now);
                return;
            }
            _ => {
                self.stats.rejected.stale += 1;
                return;
            }
        }
        // Only from the start, or from the end of offered blocks the sender found equal.
        let resumable = !self.offer.is_empty()
            && offset.is_multiple_of(self.offer.block)
            && offset <= self.offer.len();
        if offset != 0 && !resumable {
            self.abort(AbortReason::ProtocolViolation, now);
            return;
        }
        for cv in &self.part_cvs[..(offset / BLOCK) as usize] {
            self.hasher.push_block(*cv);
        }
        self.part_cvs = Vec::new();
        self.offer = Offer::default();
        self.held.start(self.payload, offset);
        self.stats.resumed_from = offset;
        self.started = true;
        self.state = State::Receiving;
        self.ack_now = true;
    }

    /// An authentic datagram after the outcome: the sender missed our `Done` or `Abort`.
    fn on_straggler(&mut self, body: &Body, now: UnixMillis) {
        self.last_heard = now;
        self.timers
            .set(Timer::Idle, now.plus_millis(LINGER_QUIET_MS));
        // An `Abort` while lingering: it gave up (a cancel) after we had kept the file. Tell
        // it so, below, for as long as it asks: our answer may be lost as well as its `Abort`.
        if let Body::Abort { .. } = body
            && self.state == State::Closing
        {
            // It gave up too: nothing left to tell it.
            self.state = State::Aborted;
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

    /// A data datagram while receiving: opened straight into its slot in the receive buffer
    /// when it is kept, into scratch space when it is only checked (a duplicate, beyond the
    /// window, no room, or a misfit that ends the transfer once it proves authentic).
    fn handle_data(
        &mut self,
        from: SocketAddr,
        header: Header,
        bytes: &[u8],
        now: UnixMillis,
    ) -> Result<(), DatagramError> {
        let Some(keys) = self.keys.for_kind(Kind::Data) else {
            return self.reject(DatagramError::NoKey);
        };
        let len = bytes.len() - datagram::DATA_HEADER_LEN - datagram::TAG_LEN;
        let offset = header.offset;
        let mut fate = self.fate(offset, len as u64);
        if fate == Fate::Keep {
            match self.held.slot(offset, len) {
                Place::Slot(slot) => {
                    if let Err(e) = datagram::open_data_into(&header, bytes, keys, slot) {
                        return self.reject(e);
                    }
                    self.heard(now);
                    self.held.fill(offset);
                    self.kept(from, header.pn, now);
                    return Ok(());
                }
                Place::Duplicate => fate = Fate::Duplicate,
                // The first payload of its block: opened into scratch below, then copied.
                Place::NoBlock => {}
            }
        }
        self.scratch.clear();
        if let Err(e) = datagram::open_into(bytes, keys, &mut self.scratch) {
            return self.reject(e);
        }
        self.heard(now);
        if fate == Fate::Keep {
            let payload = std::mem::take(&mut self.scratch);
            fate = self.keep(from, header.pn, offset, &payload, now);
            self.scratch = payload;
        }
        self.settle(from, header.pn, fate, now);
        Ok(())
    }

    /// Keep an authenticated payload whose block may not exist yet: [`Fate::Keep`] when it
    /// was kept (and counted), else what became of it.
    fn keep(
        &mut self,
        from: SocketAddr,
        pn: u64,
        offset: u64,
        payload: &[u8],
        now: UnixMillis,
    ) -> Fate {
        match self.held.insert(offset, payload, self.memory_cap) {
            Insert::Kept => {
                self.kept(from, pn, now);
                Fate::Keep
            }
            Insert::Duplicate => Fate::Duplicate,
            Insert::NoRoom => Fate::NoRoom,
        }
    }

    /// What becomes of a payload of `len` bytes at `offset`, before any slot is asked for.
    fn fate(&self, offset: u64, len: u64) -> Fate {
        let end = offset.saturating_add(len);
        if !self.fits(offset, len) {
            Fate::Misfit
        } else if end <= self.held.cum() {
            Fate::Duplicate
        } else if end > self.window_end() {
            Fate::BeyondWindow
        } else {
            Fate::Keep
        }
    }

    /// The payload of packet `pn` is in its slot: count it, and hand on what is now in order.
    fn kept(&mut self, from: SocketAddr, pn: u64, now: UnixMillis) {
        self.note_packet(from, pn, now);
        self.stats.peak_buffered = self.stats.peak_buffered.max(self.held.charged());
        while let Some((offset, data)) = self.held.take_write(self.memory_cap) {
            self.hand_on(offset, data);
        }
        self.after_data(now);
    }

    /// An authentic payload that was not kept (a kept one was counted by `kept`).
    fn settle(&mut self, from: SocketAddr, pn: u64, fate: Fate, now: UnixMillis) {
        match fate {
            Fate::Keep => return,
            Fate::Misfit => {
                self.abort(AbortReason::ProtocolViolation, now);
                return;
            }
            Fate::Duplicate => {
                self.note_packet(from, pn, now);
                self.stats.duplicates += 1;
                self.ack_now = true;
            }
            Fate::BeyondWindow => {
                self.note_packet(from, pn, now);
                self.stats.beyond_window += 1;
                self.ack_now = true;
            }
            // Not acknowledged: the sender must repeat it.
            Fate::NoRoom => self.stats.over_memory += 1,
        }
        self.after_data(now);
    }

    /// Whether `len` bytes at `offset` are a whole chunk of the announced size at its place
    /// (only the last may be short), within the file.
    fn fits(&self, offset: u64, len: u64) -> bool {
        let within = offset
            .checked_add(len)
            .is_some_and(|e| e <= self.file_size && len > 0);
        within
            && offset.is_multiple_of(self.payload)
            && (len == self.payload || offset + len == self.file_size)
    }

    /// Acknowledgement bookkeeping for data packet `pn` from `from`.
    fn note_packet(&mut self, from: SocketAddr, pn: u64, now: UnixMillis) {
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
    }

    fn after_data(&mut self, now: UnixMillis) {
        self.unacked += 1;
        if self.unacked >= self.ack_every {
            self.ack_now = true;
        } else if self.timers.get(Timer::AckDelay).is_none() {
            self.timers
                .set(Timer::AckDelay, now.plus_millis(MAX_ACK_DELAY_MS));
        }
        self.try_finish(now);
    }

    /// An opened data payload (one that overtook the `Start` it implies).
    fn on_data(&mut self, from: SocketAddr, pn: u64, offset: u64, payload: Bytes, now: UnixMillis) {
        let mut fate = self.fate(offset, payload.len() as u64);
        if fate == Fate::Keep {
            fate = self.keep(from, pn, offset, &payload, now);
        }
        self.settle(from, pn, fate, now);
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
        self.queue(to, Body::Challenge { token });
    }

    fn on_response(&mut self, from: SocketAddr, token: u64) {
        match self.challenge {
            Some(c) if c.to == from && c.token == token => {
                self.peer = from;
                self.challenge = None;
                self.timers.stop(Timer::PathValidation);
                self.stats.migrations += 1;
                self.ack_now = true;
                // What we said before went to the old address: say it again here.
                let now = self.clock.now();
                match self.state {
                    State::AwaitingStart => self.send_welcome(now),
                    State::Deciding | State::Preparing | State::Checking => self.hold(),
                    _ => {}
                }
            }
            _ => self.stats.rejected.stale += 1,
        }
    }

    /// Ask the presenter to wait, saying why: the audience is asked, or its client gets the
    /// file ready (a part to find, create or check).
    fn hold(&mut self) {
        let reason = match self.state {
            State::Deciding => HoldReason::Asking,
            _ => HoldReason::CheckingPart,
        };
        self.queue(self.peer, Body::Hold { reason });
    }

    /// Hash in-order bytes and tell the driver to write them.
    fn hand_on(&mut self, offset: u64, data: Bytes) {
        self.hasher.push(&data);
        self.events.push_back(ReceiverEvent::Write { offset, data });
    }

    /// The transfer ends without the file: write what is in order, for a resume.
    fn hand_on_rest(&mut self) {
        if let Some((offset, data)) = self.held.take_rest() {
            self.hand_on(offset, data);
        }
    }

    fn try_finish(&mut self, now: UnixMillis) {
        let Some(expected) = self.expected_hash else {
            return;
        };
        if self.held.cum() < self.file_size || self.state != State::Receiving {
            return;
        }
        let hash = self.hasher.finalize();
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
        self.queue(
            self.peer,
            Body::Done {
                file_size: self.file_size,
            },
        );
    }

    /// Timers: delayed ACK, idle timeout, the audience's decision, an unanswered challenge,
    /// the end of lingering. Harmless when nothing is due.
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
            _ => {
                if self.timers.expire(Timer::Decision, now) {
                    // Taken, but its own client never got the file ready: a local fault.
                    let reason = match self.state {
                        State::Preparing => AbortReason::LocalIo,
                        _ => AbortReason::NoAnswer,
                    };
                    self.abort(reason, now);
                    return;
                }
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
        if let Some(check) = self.check.as_mut()
            && !check.outstanding
            && check.next < check.len
        {
            check.outstanding = true;
            let len = PART_READ.min(check.len - check.next) as usize;
            self.events.push_back(ReceiverEvent::ReadPart {
                offset: check.next,
                len,
            });
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
            cum_offset: self.held.cum(),
            window_end: self.window_end(),
            ranges: self.pns.iter_desc().take(self.max_ranges).collect(),
        };
        self.stats.acks_sent += 1;
        let contents = self.keys.seal(self.id, Body::Ack(ack), &mut self.pool)?;
        Some(Transmit {
            to: self.peer,
            contents,
        })
    }
}

/// The offer made of a partial file's hashing-block CVs: the smallest power-of-two group of
/// blocks for which at most `capacity` groups cover them, each group's CV merged.
fn build_offer(cvs: &[Cv], capacity: usize) -> Offer {
    let capacity = capacity.max(1);
    let mut per = 1usize;
    while cvs.len() / per > capacity {
        per *= 2;
    }
    let groups = cvs.len() / per;
    if groups == 0 {
        return Offer::default();
    }
    Offer {
        block: BLOCK * per as u64,
        cvs: (0..groups)
            .filter_map(|g| merge_blocks(&cvs[g * per..(g + 1) * per]))
            .collect(),
    }
}
