//! Blocks of memory cut into datagrams, kept once retired and taken again once every datagram
//! cut from them is gone.
//!
//! Why: a block that is handed out in pieces (`BytesMut::split`) cannot be written again while
//! any piece lives, yet the block retired last is usually still in use when the next one is
//! wanted (a sender seals a whole burst before the first datagram leaves; a receiving runtime
//! runs a few blocks ahead of the core). Keeping a few retired blocks and taking the oldest
//! free one spares a fresh allocation, and the page faults and zeroing that come with it, per
//! block. The sender's seal pool and the std runtime's receive blocks both work this way.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Retired blocks, oldest first.
#[derive(Debug)]
pub struct SpareBlocks {
    spare: VecDeque<BytesMut>,
    /// Most blocks kept once no free one was found.
    keep: usize,
}

impl SpareBlocks {
    /// Keep at most `keep` retired blocks.
    pub fn new(keep: usize) -> Self {
        Self {
            spare: VecDeque::new(),
            keep,
        }
    }

    /// Retire `used` (unless it never had memory) and hand back the oldest retired block
    /// whose pieces were all dropped, emptied and with room for `len` bytes; `None` when
    /// every retired block is still in use (the caller allocates a new one). Never allocates.
    pub fn swap(&mut self, used: BytesMut, len: usize) -> Option<BytesMut> {
        if used.capacity() > 0 {
            self.spare.push_back(used);
        }
        for _ in 0..self.spare.len() {
            let mut b = self.spare.pop_front()?;
            b.clear();
            // Takes the block's own allocation back only if nothing cut from it is alive.
            if b.try_reclaim(len) {
                return Some(b);
            }
            self.spare.push_back(b);
        }
        while self.spare.len() > self.keep {
            self.spare.pop_front();
        }
        None
    }

    /// Retired blocks held now.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    /// Whether no retired block is held.
    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_free_block_comes_back_and_a_block_in_use_never_does() {
        let mut s = SpareBlocks::new(2);
        let mut first = BytesMut::with_capacity(1000);
        first.resize(100, 1);
        let alive = first.split().freeze();
        assert!(s.swap(first, 1000).is_none(), "its piece is alive");
        let mut second = BytesMut::with_capacity(1000);
        second.resize(100, 2);
        drop(second.split());
        let back = s.swap(second, 1000).expect("the second block is free");
        assert!(back.is_empty() && back.capacity() >= 1000);
        assert_eq!(alive, vec![1u8; 100], "never written over");
        drop(alive);
        assert!(
            s.swap(BytesMut::new(), 1000).is_some(),
            "the first is free now"
        );
        assert!(s.is_empty());
    }

    #[test]
    fn at_most_keep_blocks_are_held() {
        let mut s = SpareBlocks::new(3);
        let mut alive = Vec::new();
        for _ in 0..10 {
            let mut b = BytesMut::with_capacity(64);
            b.resize(8, 0);
            alive.push(b.split());
            assert!(s.swap(b, 64).is_none());
        }
        assert_eq!(s.len(), 3);
    }
}
