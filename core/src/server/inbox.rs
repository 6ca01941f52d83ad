//! Private messages waiting for offline recipients.

use crate::store::{InboxRecord, render_inbox};
use crate::time::Zone;
use crate::types::UserName;

/// Stored private messages, in the order they were sent.
#[derive(Debug, Default)]
pub struct Inbox {
    waiting: Vec<InboxRecord>,
}

impl Inbox {
    /// Restored from `inbox.txt`.
    pub fn new(records: Vec<InboxRecord>) -> Self {
        Self { waiting: records }
    }

    /// Keep a message for later.
    pub fn store(&mut self, record: InboxRecord) {
        self.waiting.push(record);
    }

    /// Take `to`'s messages for which `deliverable` holds, in order; the rest stay.
    pub fn take_for(
        &mut self,
        to: &UserName,
        mut deliverable: impl FnMut(&InboxRecord) -> bool,
    ) -> Vec<InboxRecord> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|r| &r.to == to && deliverable(r));
        self.waiting = kept;
        taken
    }

    /// How many messages wait in all.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The whole `inbox.txt`.
    pub fn render(&self, zone: Zone) -> Vec<u8> {
        self.waiting
            .iter()
            .flat_map(|r| render_inbox(r, zone))
            .collect()
    }
}
