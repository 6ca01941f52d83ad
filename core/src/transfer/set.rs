//! Several transfers on one UDP socket: what a client core embeds to send and receive files
//! at the same time (two presenters at once, sending while receiving).
//!
//! Datagrams are routed by the transfer id they carry in clear and authenticated by the
//! machine that owns the id; a datagram for no known transfer is counted as stray and
//! dropped. A receiver learns its sender's address from the first authentic datagram (the
//! server only told the presenter where the audience is, not the other way round) and follows
//! it if it changes, as QUIC does, because only authentic datagrams can move it.
//!
//! Driving the set is the same loop as driving one machine: after every input drain
//! [`TransferSet::poll_event`] and [`TransferSet::poll_transmit`], then wait for a datagram
//! or [`TransferSet::poll_timeout`]. Outputs of different transfers are interleaved round
//! robin so that one fast transfer cannot starve another.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;

use bytes::Bytes;

use super::datagram::peek_transfer_id;
use super::{AbortReason, Receiver, ReceiverEvent, Sender, SenderEvent, TransferId};
use crate::UnixMillis;

/// One transfer of the set: which way it goes.
#[derive(Debug)]
pub enum Role {
    /// We present: the machine sends. (Boxed: the machines are large and moved rarely.)
    Send(Box<Sender>),
    /// We are the audience: the machine receives.
    Receive(Box<Receiver>),
}

impl Role {
    fn is_finished(&self) -> bool {
        match self {
            Role::Send(s) => s.is_finished(),
            Role::Receive(r) => r.is_finished(),
        }
    }
}

/// An output of one transfer of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEvent {
    /// From a sender: read file bytes, or the outcome.
    Sender(SenderEvent),
    /// From a receiver: write file bytes, or the outcome.
    Receiver(ReceiverEvent),
}

/// A datagram to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransmitTo {
    /// The peer's address.
    pub to: SocketAddr,
    /// The datagram.
    pub contents: Bytes,
}

#[derive(Debug)]
struct Entry {
    role: Role,
    peer: Option<SocketAddr>,
}

/// All transfers of one client, keyed by transfer id.
#[derive(Debug, Default)]
pub struct TransferSet {
    entries: BTreeMap<TransferId, Entry>,
    cursor: Option<TransferId>,
    stray: u64,
}

impl TransferSet {
    /// No transfers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start presenting: `sender` sends to the audience at `peer` (from the server).
    pub fn add_sender(&mut self, sender: Sender, peer: SocketAddr) {
        self.entries.insert(
            sender.id(),
            Entry {
                role: Role::Send(Box::new(sender)),
                peer: Some(peer),
            },
        );
    }

    /// Expect a file: `receiver` learns its sender's address from the first authentic datagram.
    pub fn add_receiver(&mut self, receiver: Receiver) {
        self.entries.insert(
            receiver.id(),
            Entry {
                role: Role::Receive(Box::new(receiver)),
                peer: None,
            },
        );
    }

    /// The transfer with this id, if the set still holds it.
    pub fn get(&self, id: TransferId) -> Option<&Role> {
        self.entries.get(&id).map(|e| &e.role)
    }

    /// Ids of the transfers held.
    pub fn ids(&self) -> impl Iterator<Item = TransferId> + '_ {
        self.entries.keys().copied()
    }

    /// Datagrams that named no transfer of this set (or were not transfer datagrams at all).
    pub fn stray(&self) -> u64 {
        self.stray
    }

    /// Feed a datagram from `from`.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &Bytes, now: UnixMillis) {
        let Some(entry) = peek_transfer_id(bytes)
            .ok()
            .and_then(|id| self.entries.get_mut(&id))
        else {
            self.stray += 1;
            return;
        };
        let authentic = match &mut entry.role {
            Role::Send(s) => s.handle_datagram(bytes, now).is_ok(),
            Role::Receive(r) => r.handle_datagram(bytes, now).is_ok(),
        };
        if authentic && matches!(entry.role, Role::Receive(_)) {
            entry.peer = Some(from);
        }
    }

    /// File bytes a [`SenderEvent::Read`] of transfer `id` asked for.
    pub fn handle_file_data(&mut self, id: TransferId, offset: u64, data: Bytes, now: UnixMillis) {
        if let Some(Entry {
            role: Role::Send(s),
            ..
        }) = self.entries.get_mut(&id)
        {
            s.handle_file_data(offset, data, now);
        }
    }

    /// Abort transfer `id` (a user's cancel, a file error).
    pub fn abort(&mut self, id: TransferId, reason: AbortReason, now: UnixMillis) {
        match self.entries.get_mut(&id).map(|e| &mut e.role) {
            Some(Role::Send(s)) => s.abort(reason, now),
            Some(Role::Receive(r)) => r.abort(reason, now),
            None => {}
        }
    }

    /// Run the timers of every transfer, and forget transfers that are over and drained.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        for e in self.entries.values_mut() {
            match &mut e.role {
                Role::Send(s) => s.handle_timeout(now),
                Role::Receive(r) => r.handle_timeout(now),
            }
        }
    }

    /// Forget transfers that are over; call after draining their events and datagrams.
    /// Returns how many were forgotten.
    pub fn remove_finished(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.role.is_finished());
        before - self.entries.len()
    }

    /// The earliest timer of any transfer.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.entries
            .values()
            .filter_map(|e| match &e.role {
                Role::Send(s) => s.poll_timeout(),
                Role::Receive(r) => r.poll_timeout(),
            })
            .min()
    }

    /// The next file operation or outcome of any transfer.
    pub fn poll_event(&mut self) -> Option<(TransferId, SetEvent)> {
        self.entries
            .iter_mut()
            .find_map(|(&id, e)| match &mut e.role {
                Role::Send(s) => s.poll_event().map(|ev| (id, SetEvent::Sender(ev))),
                Role::Receive(r) => r.poll_event().map(|ev| (id, SetEvent::Receiver(ev))),
            })
    }

    /// The next datagram of any transfer, taking transfers in turn.
    ///
    /// Each call starts with the transfer after the one that sent last (by id, wrapping
    /// around), whether or not that one is still held: a transfer removed or added between
    /// two calls neither skips nor starves another. No allocation: the next id is found in
    /// the map itself.
    pub fn poll_transmit(&mut self, now: UnixMillis) -> Option<TransmitTo> {
        let mut next = self.after(self.cursor);
        for _ in 0..self.entries.len() {
            let id = next?;
            if let Some(e) = self.entries.get_mut(&id) {
                let out = match &mut e.role {
                    Role::Send(s) => s.poll_transmit(now),
                    Role::Receive(r) => r.poll_transmit(now),
                };
                if let Some(contents) = out {
                    self.cursor = Some(id);
                    // A receiver that never heard its sender has nowhere to answer: drop.
                    if let Some(to) = e.peer {
                        return Some(TransmitTo { to, contents });
                    }
                }
            }
            next = self.after(Some(id));
        }
        None
    }

    /// The first id after `id` (strictly), wrapping around to the first; the first if `None`.
    fn after(&self, id: Option<TransferId>) -> Option<TransferId> {
        let later = id.and_then(|c| {
            self.entries
                .range((Bound::Excluded(c), Bound::Unbounded))
                .next()
        });
        later
            .or_else(|| self.entries.iter().next())
            .map(|(&k, _)| k)
    }
}
