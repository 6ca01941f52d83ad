//! Reliable, fast, authenticated file transfer over UDP (issues 3 and 8), without any I/O.
//!
//! A presenter's client runs a [`Sender`], the audience's client a [`Receiver`]; both are
//! Sans-IO state machines in the quinn-proto / str0m mould:
//!
//! - network input: `handle_datagram(from, bytes, now)`;
//! - timer input: `handle_timeout(now)` (a spurious call is harmless);
//! - file input (sender only): [`Sender::handle_file_data`], answering a
//!   [`SenderEvent::Read`] request; a driver's failure: `abort(reason, now)`;
//! - output: `poll_event()` (file operations and outcomes), then `poll_transmit(now)`
//!   (datagrams and where they go), then `poll_timeout()` (when to call `handle_timeout`).
//!
//! After every input a driver drains `poll_event` and `poll_transmit` until both return
//! `None`, then sleeps until `poll_timeout` or the next datagram. The driver does the I/O: it
//! reads the file ranges the sender asks for, writes what the receiver emits into the part
//! file, names it on [`ReceiverEvent::Complete`] and deletes it on [`ReceiverEvent::Aborted`].
//!
//! Both peers learn each other's address from the server's handshake and answer only there
//! (a receiver follows a sender that moved only once it answered a challenge from its new
//! address). Several transfers share one UDP socket: every datagram starts with its
//! [`TransferId`], which [`datagram::peek_transfer_id`] reads without a key, and ends with a
//! tag keyed by the per-transfer [`TransferSecret`]. [`TransferSet`] routes, takes the
//! transfers in turn and shares the receivers' memory budget.
//!
//! The pieces, one module per concept: [`datagram`] (wire format and, in one place, the
//! per-datagram authentication: rendered and tagged into a caller's buffer, checked before
//! parsing), `sack` (range sets), `rtt` (RFC 6298/9002 estimator), `rate` (BBR-style
//! delivery-rate controller), `pacer` (token bucket), `tree` (the file hash from payload
//! hashes), `timer` (the timer table both machines use), [`sender`] (with its file
//! `source`, `chunks` window and packets in `flight`), [`receiver`] (with `reassembly`,
//! out-of-order data bounded in bytes), [`set`] (routing), [`names`] (safe file names, the
//! names a download gets) and [`netem`] (a seeded lossy channel for tests, simulations and
//! the benchmark).

pub mod datagram;
pub mod names;
pub mod netem;
pub(crate) mod pacer;
pub(crate) mod rate;
pub(crate) mod reassembly;
pub mod receiver;
pub(crate) mod rtt;
pub(crate) mod sack;
pub mod sender;
pub mod set;
pub(crate) mod timer;
pub(crate) mod tree;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

pub use datagram::DatagramError;
pub use names::{
    NameError, base_name, candidate, is_part_name, part_name, saved_name, unique_name,
};
pub use receiver::{Receiver, ReceiverEvent, ReceiverStats};
pub use sender::{Sender, SenderEvent, SenderStats};
pub(crate) use set::Role;
pub use set::{SetEvent, TransferSet};

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
/// Datagram tags are keyed by a key derived from it, so a datagram from another transfer, an
/// old run or a third party is rejected before any of its bytes reach a file.
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
    /// Largest datagram written on the wire, tag included. Clamped to
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
    /// Most uploads a client runs at once; an `UPD` beyond it is refused before the server is
    /// asked. 16: each holds an open source file and its data in flight.
    pub max_outgoing: usize,
    /// RTT assumed before the first measurement (ms).
    pub initial_rtt_ms: u64,
    /// Longest probe timeout after backoff (ms): keeps probing often enough that a healed
    /// cut is noticed quickly.
    pub max_probe_timeout_ms: u64,
    /// Optional cap on the sending rate, bytes per second.
    pub max_rate: Option<u64>,
    /// How many bytes the sender asks its driver for at a time.
    pub read_size: usize,
    /// How long a receiver stays to confirm completion to a sender whose confirmation got
    /// lost (ms).
    pub linger_ms: u64,
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
            c => PeerReason::Other(c),
        }
    }
}

impl AbortReason {
    /// What we tell the peer when we abort for this reason.
    pub fn to_peer(self) -> PeerReason {
        match self {
            AbortReason::PeerSilent => PeerReason::TimedOut,
            AbortReason::PeerAborted(r) => r,
            AbortReason::Cancelled => PeerReason::Cancelled,
            AbortReason::HashMismatch => PeerReason::HashMismatch,
            AbortReason::SizeMismatch => PeerReason::SizeMismatch,
            AbortReason::LocalIo => PeerReason::LocalIo,
            AbortReason::ProtocolViolation => PeerReason::ProtocolViolation,
            AbortReason::Busy => PeerReason::Busy,
            AbortReason::Refused => PeerReason::Refused,
        }
    }
}

/// Counters of datagrams that were not acted on, shared by both machines.
///
/// A datagram that fails authentication or parsing is counted and dropped; it never changes
/// state, so a forged datagram can cost a hash computation but nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Unparseable, wrong version or wrong tag.
    pub bad: u64,
    /// Authentic but meaningless here (wrong direction, after the end, duplicates of the end).
    pub stale: u64,
}
