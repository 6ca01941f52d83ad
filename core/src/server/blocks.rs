//! Who blocked whom: a blocked user cannot reach the blocker and the blocker sees none of
//! their posts.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{BlockRecord, render_block};
use crate::types::UserName;

/// The block relation, indexed both ways: a post needs to know quickly whether anyone
/// blocks its author.
#[derive(Debug, Default)]
pub struct Blocks {
    by_blocker: BTreeMap<UserName, BTreeSet<UserName>>,
    by_blocked: BTreeMap<UserName, BTreeSet<UserName>>,
}

impl Blocks {
    /// Restored from `blocks.txt`.
    pub fn new(records: Vec<BlockRecord>) -> Self {
        let mut b = Self::default();
        for r in records {
            b.block(r.blocker, r.blocked);
        }
        b
    }

    /// Whether `blocker` blocks `blocked`.
    pub fn blocks(&self, blocker: &UserName, blocked: &UserName) -> bool {
        self.by_blocker
            .get(blocker)
            .is_some_and(|s| s.contains(blocked))
    }

    /// Add a block; false if it was there already.
    pub fn block(&mut self, blocker: UserName, blocked: UserName) -> bool {
        self.by_blocked
            .entry(blocked.clone())
            .or_default()
            .insert(blocker.clone());
        self.by_blocker.entry(blocker).or_default().insert(blocked)
    }

    /// Everyone who blocks `blocked`.
    pub fn blockers_of(&self, blocked: &UserName) -> impl Iterator<Item = &UserName> {
        self.by_blocked.get(blocked).into_iter().flatten()
    }

    /// Remove a block; false if there was none.
    pub fn unblock(&mut self, blocker: &UserName, blocked: &UserName) -> bool {
        let Some(set) = self.by_blocker.get_mut(blocker) else {
            return false;
        };
        let removed = set.remove(blocked);
        if set.is_empty() {
            self.by_blocker.remove(blocker);
        }
        if let Some(set) = self.by_blocked.get_mut(blocked) {
            set.remove(blocker);
            if set.is_empty() {
                self.by_blocked.remove(blocked);
            }
        }
        removed
    }

    /// The whole `blocks.txt`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (blocker, set) in &self.by_blocker {
            for blocked in set {
                out.push_str(&render_block(&BlockRecord {
                    blocker: blocker.clone(),
                    blocked: blocked.clone(),
                }));
            }
        }
        out
    }
}
