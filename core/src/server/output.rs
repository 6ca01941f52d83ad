//! What the server core asks its driver to do.

use std::sync::Arc;

use bytes::Bytes;

use super::passwords::HashJob;
use crate::store::Persist;

/// A connection, as the server core names it: a slot in the core's table and the generation
/// of that slot, so a driver can keep its own per-connection state in a plain vector indexed
/// by [`ConnId::slot`] and still tell a reused slot from the connection that had it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    slot: u32,
    generation: u32,
}

impl ConnId {
    pub(crate) fn new(slot: usize, generation: u32) -> Self {
        Self {
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            generation,
        }
    }

    /// The slot: small, dense and reused after the connection is gone.
    pub fn slot(self) -> usize {
        self.slot as usize
    }

    /// How many connections had this slot before this one.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}.{}", self.slot, self.generation)
    }
}

/// Who receives a fanned-out event: a shared list of connections, less a few (the author,
/// users who block the author, connections whose listing is in progress).
///
/// The list is shared (`Arc`) and reused from one event to the next while the set of online
/// users stays the same, so fanning a post out to 10,000 users allocates nothing per user,
/// neither in the core nor in the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    members: Arc<[ConnId]>,
    except: Vec<ConnId>,
}

impl Audience {
    pub(crate) fn new(members: Arc<[ConnId]>, except: Vec<ConnId>) -> Self {
        Self { members, except }
    }

    /// Every connection that receives the event.
    pub fn iter(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members
            .iter()
            .copied()
            .filter(move |c| !self.except.contains(c))
    }

    /// Whether `conn` receives the event.
    pub fn contains(&self, conn: ConnId) -> bool {
        !self.except.contains(&conn) && self.members.contains(&conn)
    }
}

/// One thing to do, in order.
///
/// Order matters in one way: every [`Output::Persist`] must be durable before any output that
/// comes after it is carried out. The core hands out a batch's persist records first, one
/// after the other, so a driver applies them together (one fsync per file: group commit) when
/// the first output of another kind comes, then carries out the rest in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this to the data folder, durably.
    Persist(Persist),
    /// Send these bytes on this connection: whole lines of the text protocol in clear, TLS
    /// records on a connection upgraded with `STARTTLS` (the core seals them; the driver
    /// writes them as they are). Report what was written with [`super::Input::Wrote`].
    Send {
        /// To whom.
        conn: ConnId,
        /// The bytes for the wire.
        bytes: Bytes,
    },
    /// Send the same bytes on every connection of the audience (a fanned-out event). Only
    /// connections in clear are in an audience: each encrypted one gets its own
    /// [`Output::Send`] of the event's records.
    Broadcast {
        /// To whom.
        audience: Audience,
        /// Whole lines of the text protocol, shared by all.
        bytes: Bytes,
    },
    /// Stop reading from this connection: the core holds enough of its input, or cannot take
    /// its requests now (its output is backed up, it waits for a password hash, it is slowed
    /// down). TCP then holds the peer back.
    PauseReading {
        /// Which.
        conn: ConnId,
    },
    /// Read from this connection again.
    ResumeReading {
        /// Which.
        conn: ConnId,
    },
    /// Close this connection once everything sent before has been written.
    Close {
        /// Which.
        conn: ConnId,
    },
    /// Close this connection now, dropping whatever is still queued for it: its peer stopped
    /// taking bytes (see [`super::ServerConfig::write_timeout_millis`]).
    Cut {
        /// Which.
        conn: ConnId,
    },
    /// Report at once what was written on this connection and not reported yet
    /// ([`super::Input::Wrote`]), and the next write as soon as it happens: its output looks
    /// stuck, and it is cut off if nothing is reported within a quarter of the write timeout.
    CheckProgress {
        /// Which.
        conn: ConnId,
    },
    /// Hash or check a password off the core's thread and hand the result back with
    /// [`super::Input::Hashed`]; [`HashJob::run`] does the work.
    Hash(HashJob),
    /// Lines for the operator's console (one or more, separated by `\n`, no final newline).
    Log(String),
}

impl Output {
    /// The connections and bytes of a `Send` or `Broadcast`, for observers and tests.
    pub fn sends(&self) -> Vec<(ConnId, &Bytes)> {
        match self {
            Output::Send { conn, bytes } => vec![(*conn, bytes)],
            Output::Broadcast { audience, bytes } => audience.iter().map(|c| (c, bytes)).collect(),
            _ => Vec::new(),
        }
    }
}
