//! Private messages until they are delivered.
//!
//! Every private message is kept here — and in `inbox.txt` — until its recipient's
//! connection has carried it: a stored one sent at login, a live one sent at once. A message
//! leaves the inbox only when the connection that carried it ends with the message's last
//! byte written *and* acknowledged by the peer (see [`super::Input::Closed`]). A connection
//! cut in the middle of a delivery therefore loses nothing: what it may not have received is
//! delivered again at the next login (at least once, never lost).

use std::collections::BTreeMap;

use crate::store::{InboxRecord, render_inbox};
use crate::time::Zone;
use crate::types::UserName;

/// Names one private message while the server runs (not stored: the order of `inbox.txt`
/// gives them again at the next start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LetterId(pub u64);

/// Private messages not yet known to be delivered, in the order they were sent.
#[derive(Debug, Default)]
pub struct Inbox {
    waiting: BTreeMap<LetterId, InboxRecord>,
    next: u64,
}

impl Inbox {
    /// Restored from `inbox.txt`.
    pub fn new(records: Vec<InboxRecord>) -> Self {
        let mut inbox = Self::default();
        for r in records {
            inbox.store(r);
        }
        inbox
    }

    /// This inbox (freshly loaded) with ids above every id `old` gave out, so an id still
    /// held for `old`'s letters never names one of these.
    pub fn renumbered_after(self, old: &Inbox) -> Self {
        let mut inbox = Inbox {
            waiting: BTreeMap::new(),
            next: old.next,
        };
        for r in self.waiting.into_values() {
            inbox.store(r);
        }
        inbox
    }

    /// Keep a message until it is delivered.
    pub fn store(&mut self, record: InboxRecord) -> LetterId {
        let id = LetterId(self.next);
        self.next += 1;
        self.waiting.insert(id, record);
        id
    }

    /// The messages for `to` for which `deliverable` holds, in order.
    pub fn for_user(
        &self,
        to: &UserName,
        mut deliverable: impl FnMut(&InboxRecord) -> bool,
    ) -> Vec<LetterId> {
        self.waiting
            .iter()
            .filter(|(_, r)| &r.to == to && deliverable(r))
            .map(|(id, _)| *id)
            .collect()
    }

    /// One message, if still waiting.
    pub fn get(&self, id: LetterId) -> Option<&InboxRecord> {
        self.waiting.get(&id)
    }

    /// A message arrived: forget it. Returns whether it was still waiting.
    pub fn delivered(&mut self, id: LetterId) -> bool {
        self.waiting.remove(&id).is_some()
    }

    /// How many messages wait in all.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The whole `inbox.txt`.
    pub fn render(&self, zone: Zone) -> Vec<u8> {
        self.waiting
            .values()
            .flat_map(|r| render_inbox(r, zone))
            .collect()
    }
}
