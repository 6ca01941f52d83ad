//! Reliable, fast, end-to-end encrypted file transfer over UDP (issues 3, 8, 11 and 12),
//! without any I/O.
//!
//! A presenter's client runs a [`Sender`], the audience's client a [`Receiver`]; both are
//! Sans-IO state machines in the quinn-proto / str0m mould:
//!
//! - network input: `handle_datagram(from, bytes, now)`;
//! - timer input: `handle_timeout(now)` (a spurious call is harmless);
//! - file input: [`Sender::handle_file_data`] answering a [`SenderEvent::Read`],
//!   [`Receiver::handle_part_data`] answering a [`ReceiverEvent::ReadPart`]; a driver's
//!   failure or the user's cancel: `abort(reason, now)`;
//! - the audience's decision (receiver only): [`Receiver::accept`],
//!   [`Receiver::accept_resuming`], or `abort` with [`AbortReason::Declined`];
//! - output: `poll_event()` (file operations and outcomes), then `poll_transmit(now)`
//!   (datagrams and where they go; [`Sender::poll_batch`] seals several for one send of the
//!   socket into one [`Batch`]), then `poll_timeout()` (when to call `handle_timeout`).
//!
//! After every input a driver drains `poll_event` and `poll_transmit` until both return
//! `None`, then sleeps until `poll_timeout` or the next datagram. The driver does the I/O: it
//! reads the file ranges the sender asks for, writes what the receiver emits into the part
//! file, and names it on [`ReceiverEvent::Complete`]; what becomes of the part file after
//! [`ReceiverEvent::Aborted`] (kept for resuming, or deleted) the client core decides.
//!
//! Both peers learn each other's address from the server's handshake and answer only there
//! (a receiver follows a sender that moved only once it answered a challenge from its new
//! address). Several transfers share one UDP socket: every datagram starts with its
//! [`TransferId`], which [`datagram::peek_transfer_id`] reads without a key, and is sealed
//! with AES-256-GCM: the handshake under keys from the per-transfer [`TransferSecret`], the
//! file under keys from an X25519 exchange that the server cannot learn (see [`keys`]).
//! [`TransferSet`] routes, takes the transfers in turn and shares the receivers' memory
//! budget.
//!
//! The pieces, one module per concept: [`keys`] (the key exchange, and in one place the
//! sealing and opening of every datagram, in place over the caller's buffer), [`datagram`]
//! (wire format), `sack` (range sets), `rtt` (RFC 6298/9002 estimator), `rate` (BBR-style
//! delivery-rate controller), `pacer` (token bucket), [`tree`] (the file hash block by
//! block, whose CVs make resuming safe), `timer` (the timer table both machines use),
//! [`sender`] (with its file `source`, `chunks` window and packets in `flight`), [`receiver`]
//! (with `reassembly`, out-of-order data bounded in bytes), [`set`] (routing), [`names`]
//! (safe file names, the names a download gets) and [`netem`] (a seeded lossy channel for
//! tests, simulations and the benchmark).

pub mod datagram;
pub mod keys;
pub mod names;
pub mod netem;
pub(crate) mod pacer;
pub(crate) mod rate;
pub(crate) mod reassembly;
pub mod receiver;
pub mod resume;
pub(crate) mod rtt;
pub(crate) mod sack;
pub mod sender;
pub mod set;
pub mod spare;
pub(crate) mod timer;
pub mod tree;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

pub use datagram::{DatagramError, HoldReason};
pub use keys::{EphemeralKey, Protection};
pub use names::{
    NameError, base_name, candidate, is_part_name, is_part_of, part_name, saved_name, unique_name,
};
pub use receiver::{Receiver, ReceiverEvent, ReceiverStats};
pub use sender::{Sender, SenderEvent, SenderStats};
pub(crate) use set::Role;
pub use set::{SetEvent, TransferSet};
/// About how many bytes each [`ReceiverEvent::Write`] carries (a whole number of chunks, at
/// least this many): a driver that gathers writes should write once it holds this much, so the
/// receiver gets its block back for reuse.
pub const WRITE_BLOCK_BYTES: u64 = reassembly::BLOCK_TARGET;

/// Identifies one transfer on a socket shared by several; issued by the server.
///
/// Carried in clear at the start of every datagram so that a client can route a datagram to
/// its machine before authenticating it with that transfer's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The random per-transfer secret the server hands to both peers.
///
/// It keys the handshake and salts the session keys (see [`keys`]), so a datagram from another
/// transfer, an old run or a third party is rejected before any of its bytes reach a file.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferSecret(pub [u8; 32]);

impl fmt::Debug for TransferSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself: debug output ends up in logs.
        f.write_str("TransferSecret(..)")
    }
}

/// A datagram to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's address.
    pub to: SocketAddr,
    /// The datagram.
    pub contents: Bytes,
}

/// Datagrams for one peer, sealed back to back in one buffer: what one send carries, with UDP
/// GSO (quinn-udp's `Transmit { contents, segment_size, .. }`) where the socket has it.
///
/// Every datagram but the last is `segment_size` bytes; the last may be shorter. A batch of
/// one datagram has `segment_size == contents.len()`. Why the core builds batches rather
/// than the runtime gathering single datagrams: the sender seals them into one contiguous
/// buffer as it goes, so a runtime hands that buffer to the kernel as it is, without copying
/// every datagram a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The peer's address (the same for every datagram of the batch).
    pub to: SocketAddr,
    /// The datagrams, back to back.
    pub contents: Bytes,
    /// Size of each datagram but the last (never 0).
    pub segment_size: usize,
}

impl Batch {
    /// A batch of one datagram.
    pub fn single(to: SocketAddr, datagram: Bytes) -> Self {
        Self {
            to,
            segment_size: datagram.len().max(1),
            contents: datagram,
        }
    }

    /// How many datagrams it carries.
    pub fn segments(&self) -> usize {
        self.contents.len().div_ceil(self.segment_size.max(1))
    }

    /// Each datagram in order, as a slice of the batch's buffer (no copy).
    pub fn datagrams(&self) -> impl Iterator<Item = Bytes> + '_ {
        let seg = self.segment_size.max(1);
        (0..self.contents.len())
            .step_by(seg)
            .map(move |at| self.contents.slice(at..(at + seg).min(self.contents.len())))
    }
}

impl From<Transmit> for Batch {
    fn from(t: Transmit) -> Self {
        Batch::single(t.to, t.contents)
    }
}

/// Most bytes one batch carries, all its datagrams together: what one UDP GSO send may carry
/// (the kernel builds one super-packet of at most 64 KiB, headers included).
pub const MAX_BATCH_BYTES: usize = 64_000;

/// Size of the whole-file BLAKE3 hash carried in the `Fin` datagram.
pub const HASH_LEN: usize = 32;

/// The largest datagram that fits a 1500-byte MTU under IPv6 (1500 - 40 - 8) and so IPv4 too.
pub const MTU_DATAGRAM: usize = 1452;

/// The largest UDP datagram an IPv4 socket can send (65535 - 20 - 8); for loopback.
pub const MAX_DATAGRAM: usize = 65_507;

/// Knobs of a transfer; both peers should use the same datagram size.
///
/// Defaults suit the Internet (a 1500-byte MTU, a 10-second cut timeout); a loopback benchmark
/// raises [`TransferConfig::max_datagram`] because per-datagram costs dominate there.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Largest datagram written on the wire, header and tag included. Clamped to
    /// `[datagram::MIN_DATAGRAM, MAX_DATAGRAM]`.
    pub max_datagram: usize,
    /// Give up when nothing authentic has been heard from the peer for this long (ms).
    pub idle_timeout_ms: u64,
    /// Bytes the receiver lets the sender send beyond its first missing byte (flow control).
    /// 16 MiB: many round trips of a fast path, so a loss is repaired before the window fills.
    pub receive_window: u64,
    /// Most memory one client's downloads together hold for data that arrived out of order,
    /// in bytes charged with their bookkeeping overhead. 32 MiB: two full windows, which
    /// keeps a client's receiving memory well under 64 MiB whatever its senders do; past it,
    /// out-of-order data is dropped and repeated later (in-order data is never held).
    pub receive_memory: u64,
    /// Most downloads a client runs at once; more are refused, and their presenters told
    /// why. 16: each holds an open `.part` file and a share of `receive_memory`.
    pub max_incoming: usize,
    /// Most uploads a client runs at once; an `UPD` beyond it waits its turn in the client
    /// (`client::upload_queue`) before the server is asked. 16: each holds an open source file
    /// and its data in flight.
    pub max_outgoing: usize,
    /// RTT assumed before the first measurement (ms).
    pub initial_rtt_ms: u64,
    /// Longest probe timeout after backoff (ms): keeps probing often enough that a healed
    /// cut is noticed quickly.
    pub max_probe_timeout_ms: u64,
    /// Optional cap on the sending rate, bytes per second, of all this client's uploads
    /// together (shared equally by those running; [`TransferSet`] hands out the shares), so
    /// that a person can leave room on a slow uplink whatever the number of uploads.
    pub max_rate: Option<u64>,
    /// How many bytes the sender asks its driver for at a time.
    pub read_size: usize,
    /// How long a receiver stays to confirm completion to a sender whose confirmation got
    /// lost (ms).
    pub linger_ms: u64,
    /// How long the audience may take to accept or decline a file before it is declined for
    /// it (ms); a presenter waits that long beyond its idle timeout for the answer. Two
    /// minutes: time to read the question and answer it, short enough that a presenter
    /// whose audience walked away learns so.
    pub decision_timeout_ms: u64,
    /// How the file's datagrams are protected. Always [`Protection::Encrypted`] except in
    /// the benchmark that measures what encryption costs; a receiver refuses a sender that
    /// does not use its own.
    pub protection: Protection,
    /// How long a part file kept for resuming stays (ms): a client starting in the folder
    /// removes older ones. A week: long enough to try again after a weekend, short enough
    /// that forgotten parts do not pile up.
    pub resume_max_age_ms: u64,
    /// How many `Hello`s for transfers this client does not know yet it keeps, to hand to
    /// their receiver when the server's word about the transfer arrives. Why: the server
    /// tells both clients at once, and the presenter's first datagrams can overtake the
    /// server's message to the audience; dropped, they cost the presenter a whole initial
    /// probe timeout (about 600 ms before any RTT is known). 8: a few uploads starting
    /// together; strangers filling it cost nothing (each kept copy is at most
    /// [`datagram::MAX_HELLO_LEN`] bytes, the oldest goes first).
    pub early_hellos: usize,
    /// How long such an early `Hello` is kept (ms). 2 seconds: far longer than the server's
    /// two messages can drift apart, far shorter than the presenter's patience.
    pub early_hello_ms: u64,
    /// Kernel buffer a runtime asks for on the client's UDP socket (`SO_RCVBUF`/`SO_SNDBUF`).
    /// 8 MiB: a burst of a fast transfer overflows the usual default (208 KiB) and every
    /// overflow is a loss to repair.
    pub socket_buffer_bytes: usize,
    /// Most inputs a runtime queues for the client core (each a run of datagrams of at most
    /// 64 KiB, a server read or a line). Why a bound: the UDP reader is faster than the core
    /// (which decrypts, hashes and writes), so an unbounded queue grows with whatever a peer
    /// sends and pins a fresh receive block every few messages; bounded, the reader waits,
    /// the kernel's buffer ([`TransferConfig::socket_buffer_bytes`]) takes the rest (what
    /// overflows it is a loss the transfers repair), and receive blocks are reused. 64: about
    /// two receive blocks, several milliseconds of the fastest transfer.
    pub input_backlog: usize,
    /// Most datagrams a sender seals into one [`Batch`] (one send of the runtime), further
    /// bounded by what the socket says one send may carry and by [`MAX_BATCH_BYTES`]. Why:
    /// at 1452-byte datagrams the cost of a datagram is mostly its syscall; 64 (the Linux
    /// kernel's `UDP_MAX_SEGMENTS`, and quinn-udp's cap) lets 44 full datagrams share one
    /// `sendmsg`. The pacer and the congestion window still decide how many may leave now,
    /// so a batch is never a burst the pacing would not have sent anyway.
    pub batch_segments: usize,
    /// Seed for the few random choices (the rate controller's probing phase).
    pub seed: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            max_datagram: MTU_DATAGRAM,
            idle_timeout_ms: 10_000,
            receive_window: 16 << 20,
            receive_memory: 32 << 20,
            max_incoming: 16,
            max_outgoing: 16,
            initial_rtt_ms: 200,
            max_probe_timeout_ms: 1_000,
            max_rate: None,
            read_size: 256 << 10,
            linger_ms: 2_000,
            decision_timeout_ms: 120_000,
            protection: Protection::Encrypted,
            resume_max_age_ms: 7 * 24 * 3600 * 1000,
            early_hellos: 8,
            early_hello_ms: 2_000,
            socket_buffer_bytes: 8 << 20,
            input_backlog: 64,
            batch_segments: 64,
            seed: 0,
        }
    }
}

impl TransferConfig {
    /// Payload bytes per data datagram under this configuration.
    pub fn payload_size(&self) -> usize {
        datagram::payload_capacity(self.max_datagram)
    }
}

/// Why a transfer ended without the file: what each side prints and sends to its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    /// Nothing authentic arrived from the peer within the idle timeout.
    #[error("the peer went silent (network cut or peer gone); gave up after the idle timeout")]
    PeerSilent,
    /// The peer told us it gave up.
    #[error("the peer aborted the transfer: {0}")]
    PeerAborted(PeerReason),
    /// The server said the peer's user went offline: its client is gone (a client that
    /// stops on purpose ends its transfers first), so there is no use waiting for it.
    #[error("the peer went offline (its client stopped)")]
    PeerLeft,
    /// The local user or application cancelled.
    #[error("the transfer was cancelled")]
    Cancelled,
    /// Every byte arrived but the whole-file hash differs from the presenter's.
    #[error("the received file does not match the presenter's hash; it was discarded")]
    HashMismatch,
    /// The sender announced a different size than the server did.
    #[error("the presenter announced a different file size than expected")]
    SizeMismatch,
    /// Reading or writing the local file failed (the driver says so).
    #[error("local file error")]
    LocalIo,
    /// The peer broke the protocol (e.g. data beyond the end of the file).
    #[error("the peer broke the transfer protocol")]
    ProtocolViolation,
    /// This client already runs as many transfers as it takes at once.
    #[error("too many transfers at once")]
    Busy,
    /// The offered file cannot be saved here (e.g. its name is not a safe file name).
    #[error("the file was refused")]
    Refused,
    /// The audience declined the file (asked, or by its policy).
    #[error("the file was declined")]
    Declined,
    /// The audience did not decide in time ([`TransferConfig::decision_timeout_ms`]).
    #[error("no answer came in time")]
    NoAnswer,
    /// The file is larger than the audience's client takes (its `--max-upload`): declined
    /// without asking, and the presenter is told so rather than just "declined".
    #[error("the file is larger than this client takes")]
    TooLarge,
}

/// The reason code carried in an `Abort` datagram: the peer's view, coarse on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerReason {
    /// The peer cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The peer's hash check failed.
    #[error("hash mismatch")]
    HashMismatch,
    /// The sizes disagree.
    #[error("size mismatch")]
    SizeMismatch,
    /// The peer could not read or write its file.
    #[error("the peer's disk failed")]
    LocalIo,
    /// The peer saw a protocol violation.
    #[error("protocol violation")]
    ProtocolViolation,
    /// The peer timed out on us.
    #[error("the peer timed out")]
    TimedOut,
    /// The peer runs as many transfers as it takes at once.
    #[error("the peer is busy with too many transfers")]
    Busy,
    /// The peer refused the file.
    #[error("the peer refused the file")]
    Refused,
    /// The audience declined the file.
    #[error("the audience declined the file")]
    Declined,
    /// The audience did not answer in time.
    #[error("the audience did not answer in time")]
    NoAnswer,
    /// The file is larger than the audience's client takes.
    #[error("the file is larger than the audience takes")]
    TooLarge,
    /// A code this version does not know.
    #[error("unknown reason {0}")]
    Other(u8),
}

impl PeerReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            PeerReason::Cancelled => 1,
            PeerReason::HashMismatch => 2,
            PeerReason::SizeMismatch => 3,
            PeerReason::LocalIo => 4,
            PeerReason::ProtocolViolation => 5,
            PeerReason::TimedOut => 6,
            PeerReason::Busy => 7,
            PeerReason::Refused => 8,
            PeerReason::Declined => 9,
            PeerReason::NoAnswer => 10,
            PeerReason::TooLarge => 11,
            PeerReason::Other(c) => c,
        }
    }

    /// The reason for a wire code; unknown codes are kept, not rejected.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => PeerReason::Cancelled,
            2 => PeerReason::HashMismatch,
            3 => PeerReason::SizeMismatch,
            4 => PeerReason::LocalIo,
            5 => PeerReason::ProtocolViolation,
            6 => PeerReason::TimedOut,
            7 => PeerReason::Busy,
            8 => PeerReason::Refused,
            9 => PeerReason::Declined,
            10 => PeerReason::NoAnswer,
            11 => PeerReason::TooLarge,
            c => PeerReason::Other(c),
        }
    }
}

impl AbortReason {
    /// What we tell the peer when we abort for this reason.
    pub fn to_peer(self) -> PeerReason {
        match self {
            AbortReason::PeerSilent | AbortReason::PeerLeft => PeerReason::TimedOut,
            AbortReason::PeerAborted(r) => r,
            AbortReason::Cancelled => PeerReason::Cancelled,
            AbortReason::HashMismatch => PeerReason::HashMismatch,
            AbortReason::SizeMismatch => PeerReason::SizeMismatch,
            AbortReason::LocalIo => PeerReason::LocalIo,
            AbortReason::ProtocolViolation => PeerReason::ProtocolViolation,
            AbortReason::Busy => PeerReason::Busy,
            AbortReason::Refused => PeerReason::Refused,
            AbortReason::Declined => PeerReason::Declined,
            AbortReason::NoAnswer => PeerReason::NoAnswer,
            AbortReason::TooLarge => PeerReason::TooLarge,
        }
    }
}

/// Counters of datagrams that were not acted on, shared by both machines.
///
/// A datagram that fails authentication or parsing is counted and dropped; it never changes
/// state, so a forged datagram can cost a decryption but nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Unparseable, or of a version or kind this build does not speak.
    pub bad: u64,
    /// Failed authentication: tampered with, corrupted, forged, or another transfer's.
    pub unauthentic: u64,
    /// Authentic (or not yet openable) but meaningless here: wrong direction, before the keys,
    /// after the end, duplicates of the end.
    pub stale: u64,
}

impl Rejected {
    /// Count a datagram refused for `e`.
    pub(crate) fn count(&mut self, e: DatagramError) {
        match e {
            DatagramError::Unauthentic => self.unauthentic += 1,
            DatagramError::NoKey => self.stale += 1,
            DatagramError::TooShort
            | DatagramError::BadMagic
            | DatagramError::UnsupportedVersion(_)
            | DatagramError::UnknownKind(_)
            | DatagramError::Malformed => self.bad += 1,
        }
    }

    /// Every datagram refused, whatever the reason.
    pub fn total(&self) -> u64 {
        self.bad + self.unauthentic + self.stale
    }
}
