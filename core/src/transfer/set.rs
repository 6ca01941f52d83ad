//! Several transfers on one UDP socket: what a client core embeds to send and receive files
//! at the same time (two presenters at once, sending while receiving).
//!
//! # Driving the set
//! The same loop as one machine: inputs are [`TransferSet::handle_datagram`],
//! [`TransferSet::handle_file_data`], [`TransferSet::abort`] and
//! [`TransferSet::handle_timeout`]; after every input drain [`TransferSet::poll_event`], then
//! [`TransferSet::poll_transmit`], then call [`TransferSet::remove_finished`], and wait for a
//! datagram or [`TransferSet::poll_timeout`].
//!
//! # Rules
//! - Datagrams are routed by the transfer id they carry in clear and authenticated by the
//!   machine that owns the id; a datagram for no known transfer is counted as stray and
//!   dropped.
//! - Outputs of different transfers are taken in turn, one batch each (see
//!   [`TransferSet::poll_transmit`]), starting after the transfer that sent last, so that no transfer starves another, however transfers come
//!   and go.
//! - A `Hello` for a transfer not known yet (the presenter's first datagram overtook the
//!   server's word to us) is kept, a few and briefly ([`TransferConfig::early_hellos`]), and
//!   handed to the receiver added for it.
//! - The receivers share one memory budget for out-of-order data
//!   ([`TransferConfig::receive_memory`]): each datagram for a receiver may use what the
//!   others leave.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;

use bytes::Bytes;

use super::datagram::{Kind, MAX_HELLO_LEN, peek, peek_transfer_id};
use super::{
    AbortReason, Batch, Receiver, ReceiverEvent, Sender, SenderEvent, TransferConfig, TransferId,
};
use crate::UnixMillis;

/// One transfer of the set: which way it goes.
#[derive(Debug)]
pub(crate) enum Role {
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

/// All transfers of one client, keyed by transfer id.
#[derive(Debug)]
pub struct TransferSet {
    entries: BTreeMap<TransferId, Role>,
    /// The transfer that sent last: the next poll starts after it, held or not.
    cursor: Option<TransferId>,
    stray: u64,
    receive_memory: u64,
    /// `Hello`s for transfers not known yet, oldest first, copied out of the receive buffer
    /// (so none pins a receive block): transfer, sender, datagram, arrival.
    early: VecDeque<(TransferId, SocketAddr, Bytes, UnixMillis)>,
    early_max: usize,
    early_ms: u64,
    /// [`TransferConfig::max_rate`]: the cap on all uploads together, shared equally by the
    /// senders still running.
    max_rate: Option<u64>,
}

impl Default for TransferSet {
    fn default() -> Self {
        Self::new(&TransferConfig::default())
    }
}

impl TransferSet {
    /// No transfers; the receivers will share `config.receive_memory`.
    pub fn new(config: &TransferConfig) -> Self {
        Self {
            entries: BTreeMap::new(),
            cursor: None,
            stray: 0,
            receive_memory: config.receive_memory,
            early: VecDeque::new(),
            early_max: config.early_hellos,
            early_ms: config.early_hello_ms,
            max_rate: config.max_rate,
        }
    }

    /// Give every running sender its equal share of the rate cap, so that uploads together
    /// stay within it (a person caps the uplink, not each file).
    fn share_rate(&mut self) {
        let Some(total) = self.max_rate else {
            return;
        };
        let running = self
            .entries
            .values()
            .filter(|e| matches!(e, Role::Send(s) if !s.is_finished()))
            .count() as u64;
        let share = (total / running.max(1)).max(1);
        for e in self.entries.values_mut() {
            if let Role::Send(s) = e {
                s.set_rate_cap(share);
            }
        }
    }

    /// Start presenting with `sender` (which knows the audience's address).
    pub fn add_sender(&mut self, sender: Sender) {
        self.entries
            .insert(sender.id(), Role::Send(Box::new(sender)));
        self.share_rate();
    }

    /// Expect a file with `receiver` (which knows the presenter's address); the `Hello`s
    /// that came for it before are handed to it now, as of when they arrived.
    pub fn add_receiver(&mut self, mut receiver: Receiver) {
        let id = receiver.id();
        let mut kept = VecDeque::with_capacity(self.early.len());
        for (for_id, from, bytes, at) in self.early.drain(..) {
            if for_id == id {
                // Counted by the machine if it is not authentic.
                let _ = receiver.handle_datagram(from, &bytes, at);
            } else {
                kept.push_back((for_id, from, bytes, at));
            }
        }
        self.early = kept;
        self.entries.insert(id, Role::Receive(Box::new(receiver)));
    }

    /// Keep a `Hello` for a transfer not known yet (see [`TransferConfig::early_hellos`]).
    fn keep_early(&mut self, id: TransferId, from: SocketAddr, bytes: &[u8], now: UnixMillis) {
        let ms = self.early_ms;
        self.early
            .retain(|&(_, _, _, at)| now.millis_since(at) < ms);
        let hello = peek(bytes).is_ok_and(|h| h.kind == Kind::Hello);
        if !hello || bytes.len() > MAX_HELLO_LEN || self.early_max == 0 {
            return;
        }
        while self.early.len() >= self.early_max {
            self.early.pop_front();
        }
        self.early
            .push_back((id, from, Bytes::copy_from_slice(bytes), now));
    }

    /// `Hello`s kept for transfers not known yet.
    pub fn early_hellos(&self) -> usize {
        self.early.len()
    }

    /// The transfer with this id, if the set still holds it.
    pub(crate) fn get(&self, id: TransferId) -> Option<&Role> {
        self.entries.get(&id)
    }

    /// Bytes transfer `id` has in order, if this set receives it: what its acknowledgements
    /// say arrived (the `.part` file lags behind by up to a block). For tests that watch
    /// progress round trip by round trip.
    #[cfg(test)]
    pub(crate) fn received_in_order(&self, id: TransferId) -> Option<u64> {
        match self.entries.get(&id)? {
            Role::Receive(r) => Some(r.stats().bytes_received),
            Role::Send(_) => None,
        }
    }

    /// Ids of the transfers held (running, or lingering after their outcome).
    pub fn ids(&self) -> impl Iterator<Item = TransferId> + '_ {
        self.entries.keys().copied()
    }

    /// Whether a receiver still confirms a verified file to its sender (see
    /// [`Receiver::is_lingering`]): a client that leaves now may leave its presenter unsure.
    pub fn is_lingering(&self) -> bool {
        self.entries
            .values()
            .any(|r| matches!(r, Role::Receive(r) if r.is_lingering()))
    }

    /// How many receivers the set holds.
    pub fn receivers(&self) -> usize {
        self.entries
            .values()
            .filter(|r| matches!(r, Role::Receive(_)))
            .count()
    }

    /// Memory charged by all receivers for out-of-order data.
    pub fn memory_charged(&self) -> u64 {
        self.entries
            .values()
            .map(|r| match r {
                Role::Receive(r) => r.memory_charged(),
                Role::Send(_) => 0,
            })
            .sum()
    }

    /// Datagrams that named no transfer of this set (or were not transfer datagrams at all).
    pub fn stray(&self) -> u64 {
        self.stray
    }

    /// Feed a datagram from `from`.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &Bytes, now: UnixMillis) {
        let Ok(id) = peek_transfer_id(bytes) else {
            self.stray += 1;
            return;
        };
        let others = match self.entries.get(&id) {
            None => {
                self.stray += 1;
                self.keep_early(id, from, bytes, now);
                return;
            }
            Some(Role::Send(_)) => 0,
            Some(Role::Receive(r)) => self.memory_charged() - r.memory_charged(),
        };
        let cap = self.receive_memory.saturating_sub(others);
        // Rejections are counted by the machine; the set has nothing more to do with them.
        let _ = match self.entries.get_mut(&id) {
            Some(Role::Send(s)) => s.handle_datagram(from, bytes, now),
            Some(Role::Receive(r)) => {
                r.set_memory_cap(cap);
                r.handle_datagram(from, bytes, now)
            }
            None => Ok(()),
        };
    }

    /// File bytes a [`SenderEvent::Read`] of transfer `id` asked for.
    pub fn handle_file_data(&mut self, id: TransferId, offset: u64, data: Bytes, now: UnixMillis) {
        if let Some(Role::Send(s)) = self.entries.get_mut(&id) {
            s.handle_file_data(offset, data, now);
        }
    }

    /// The audience takes download `id`; its client gets the file ready (see
    /// [`Receiver::take`]).
    pub fn take(&mut self, id: TransferId, now: UnixMillis) {
        if let Some(Role::Receive(r)) = self.entries.get_mut(&id) {
            r.take(now);
        }
    }

    /// The audience accepts download `id` (see [`Receiver::accept`]).
    pub fn accept(&mut self, id: TransferId, now: UnixMillis) {
        if let Some(Role::Receive(r)) = self.entries.get_mut(&id) {
            r.accept(now);
        }
    }

    /// The audience accepts download `id` and holds its first `held` bytes already (see
    /// [`Receiver::accept_resuming`]).
    pub fn accept_resuming(&mut self, id: TransferId, held: u64, now: UnixMillis) {
        if let Some(Role::Receive(r)) = self.entries.get_mut(&id) {
            r.accept_resuming(held, now);
        }
    }

    /// Bytes of download `id`'s partial file a [`ReceiverEvent::ReadPart`] asked for.
    pub fn handle_part_data(&mut self, id: TransferId, offset: u64, data: &[u8], now: UnixMillis) {
        if let Some(Role::Receive(r)) = self.entries.get_mut(&id) {
            r.handle_part_data(offset, data, now);
        }
    }

    /// Download `id`'s partial file could not be read.
    pub fn part_unreadable(&mut self, id: TransferId, now: UnixMillis) {
        if let Some(Role::Receive(r)) = self.entries.get_mut(&id) {
            r.part_unreadable(now);
        }
    }

    /// Abort transfer `id` (a user's cancel or decline, a file error).
    pub fn abort(&mut self, id: TransferId, reason: AbortReason, now: UnixMillis) {
        match self.entries.get_mut(&id) {
            Some(Role::Send(s)) => s.abort(reason, now),
            Some(Role::Receive(r)) => r.abort(reason, now),
            None => {}
        }
    }

    /// Run the timers of every transfer.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        for e in self.entries.values_mut() {
            match e {
                Role::Send(s) => s.handle_timeout(now),
                Role::Receive(r) => r.handle_timeout(now),
            }
        }
    }

    /// Forget transfers that are over; call after draining their events and datagrams.
    /// Returns how many were forgotten.
    pub fn remove_finished(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.is_finished());
        let removed = before - self.entries.len();
        if removed > 0 {
            self.share_rate();
        }
        removed
    }

    /// The earliest timer of any transfer.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.entries
            .values()
            .filter_map(|e| match e {
                Role::Send(s) => s.poll_timeout(),
                Role::Receive(r) => r.poll_timeout(),
            })
            .min()
    }

    /// The next file operation or outcome of any transfer.
    pub fn poll_event(&mut self) -> Option<(TransferId, SetEvent)> {
        self.entries.iter_mut().find_map(|(&id, e)| match e {
            Role::Send(s) => s.poll_event().map(|ev| (id, SetEvent::Sender(ev))),
            Role::Receive(r) => r.poll_event().map(|ev| (id, SetEvent::Receiver(ev))),
        })
    }

    /// The next datagrams of any transfer, as one [`Batch`] of at most `max_segments`
    /// datagrams (what one send of the runtime's socket carries: 1 without UDP GSO), taking
    /// transfers in turn.
    ///
    /// Each call starts with the transfer after the one that sent last (by id, wrapping
    /// around), whether or not that one is still held: a transfer removed or added between
    /// two calls neither skips nor starves another. A batch comes from one transfer, so it
    /// never mixes destinations. No allocation: the next id is found in the map itself.
    pub fn poll_transmit(&mut self, now: UnixMillis, max_segments: usize) -> Option<Batch> {
        let mut next = self.after(self.cursor);
        for _ in 0..self.entries.len() {
            let id = next?;
            let out = match self.entries.get_mut(&id) {
                Some(Role::Send(s)) => s.poll_batch(now, max_segments),
                Some(Role::Receive(r)) => r.poll_transmit(now).map(Batch::from),
                None => None,
            };
            if out.is_some() {
                self.cursor = Some(id);
                return out;
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
