//! What the server core asks its driver to do.

use bytes::Bytes;

use crate::store::Persist;

/// A connection, as the server core names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One thing to do, in order.
///
/// Order matters in one way only: a [`Output::Persist`] must be durable before any
/// [`Output::Send`] or [`Output::Close`] that comes after it. A driver may therefore batch:
/// apply every persist record of a batch with one fsync per file, then send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this to the data folder, durably.
    Persist(Persist),
    /// Send these bytes on this connection.
    Send {
        /// To whom.
        conn: ConnId,
        /// Whole lines of the text protocol.
        bytes: Bytes,
    },
    /// Close this connection once everything sent before has been written.
    Close {
        /// Which.
        conn: ConnId,
    },
    /// A line for the operator's console.
    Log(String),
}
