//! The connections the server holds: each one's dialogue state, input, output and timers, in
//! a table indexed by [`ConnId::slot`] so that fanning an event out to thousands touches each
//! connection in constant time.

use std::net::SocketAddr;

use super::flow::Flow;
use super::link::Link;
use super::listing::Listing;
use super::liveness::Liveness;
use super::output::ConnId;
use super::timers::Armed;
use super::uploads::Introductions;
use crate::proto::framing::LineFramer;
use crate::time::UnixMillis;
use crate::types::UserName;

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a user name.
    AwaitUser,
    /// Waiting for the password of an existing account.
    AwaitPassword(UserName),
    /// Waiting for the password of a new account.
    AwaitNewPassword(UserName),
    /// A password is being checked or hashed off the core's thread; the connection's further
    /// input waits.
    Hashing,
    /// Logged in.
    LoggedIn(UserName),
    /// The server has closed it; further input is ignored until the driver reports the end.
    Closed,
}

impl Phase {
    /// Before login (and not closed): counted against the per-address limit.
    pub fn is_pre_login(&self) -> bool {
        !matches!(self, Phase::LoggedIn(_) | Phase::Closed)
    }
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub framer: LineFramer,
    /// In clear, or through TLS after `STARTTLS`.
    pub link: Link,
    pub phase: Phase,
    pub udp_port: Option<u16>,
    /// Until login succeeds: when the connection is closed if it has not.
    pub login_deadline: Option<UnixMillis>,
    pub flow: Flow,
    /// A long reply or the catch-up being produced as the output drains.
    pub listing: Option<Listing>,
    /// The driver was told to stop reading.
    pub paused: bool,
    /// A request taken but delayed by the rate limit, to run at `wake_at`.
    pub delayed: Option<Vec<u8>>,
    pub wake_at: Option<UnixMillis>,
    /// In the queue of connections with requests to handle.
    pub ready: bool,
    /// Counted as not logged in by the admission rules.
    pub pending_admission: bool,
    /// The write timeout came; the driver was asked for writes it has not reported yet.
    pub checking: bool,
    pub armed: Armed,
    /// When the peer was last heard from, and the keepalive ping in flight.
    pub liveness: Liveness,
    /// Uploads this connection presents, waiting for its report of their outcome.
    pub uploads: Introductions,
}

/// The table of connections.
#[derive(Debug, Default)]
pub struct Conns {
    slots: Vec<Slot>,
    free: Vec<usize>,
    len: usize,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

impl Conns {
    /// A fresh id for a connection about to be inserted.
    pub fn next_id(&mut self) -> ConnId {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        ConnId::new(slot, self.slots[slot].generation)
    }

    /// Put `conn` in the slot its id names (from [`Conns::next_id`]).
    pub fn insert(&mut self, conn: Conn) {
        if let Some(slot) = self.slots.get_mut(conn.id.slot()) {
            slot.conn = Some(conn);
            self.len += 1;
        }
    }

    /// The connection `id`, if it is still open.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots
            .get(id.slot())
            .filter(|s| s.generation == id.generation())
            .and_then(|s| s.conn.as_ref())
    }

    /// The connection `id`, mutably.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.slot())
            .filter(|s| s.generation == id.generation())
            .and_then(|s| s.conn.as_mut())
    }

    /// Forget `id`; its slot is reused with the next generation.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let slot = self
            .slots
            .get_mut(id.slot())
            .filter(|s| s.generation == id.generation())?;
        let conn = slot.conn.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot());
        self.len -= 1;
        Some(conn)
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().filter_map(|s| s.conn.as_ref())
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.len
    }
}
