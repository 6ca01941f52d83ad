//! Where a sender seals its datagrams: blocks of memory cut into datagrams, used again once
//! every datagram cut from them is gone.
//!
//! Why: sealing into one block and splitting each datagram off costs one allocation per block
//! instead of one per datagram; a fast sender still went through a fresh megabyte (and its
//! page faults) every megabyte it sent, because the runtime sends a whole burst of batches
//! only after the core has sealed them all, so the block in use is never free when it fills
//! up. A few retired blocks are kept and the oldest one free again is taken instead.

use bytes::BytesMut;

use super::super::spare::SpareBlocks;

/// Bytes per block: many full batches (64 000 bytes) each.
const BLOCK: usize = 1 << 20;
/// Retired blocks kept for reuse. Why 4: the pacer lets about 5 ms of the rate go in one
/// burst (3.5 MB at 700 MB/s), all sealed before the first is sent; more would only hold
/// memory (each transfer keeps at most this many megabytes).
const SPARE: usize = 4;

/// The sealing blocks of one sender.
#[derive(Debug)]
pub(super) struct SealPool {
    current: BytesMut,
    spare: SpareBlocks,
    fresh: u64,
}

impl Default for SealPool {
    fn default() -> Self {
        Self {
            current: BytesMut::new(),
            spare: SpareBlocks::new(SPARE),
            fresh: 0,
        }
    }
}

impl SealPool {
    /// The block to seal the next `len` bytes into, back to back: the current one if it has
    /// room, else the oldest retired block whose datagrams were all dropped, else a new one.
    pub(super) fn reserve(&mut self, len: usize) -> &mut BytesMut {
        if self.current.capacity() - self.current.len() >= len {
            return &mut self.current;
        }
        let retired = std::mem::take(&mut self.current);
        if let Some(b) = self.spare.swap(retired, len) {
            self.current = b;
            return &mut self.current;
        }
        self.fresh += 1;
        self.current = BytesMut::with_capacity(BLOCK.max(len));
        &mut self.current
    }

    /// Blocks allocated so far (the rest of the time a block was used again).
    #[cfg(test)]
    pub(super) fn fresh_blocks(&self) -> u64 {
        self.fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seal `n` bytes into the pool, as a datagram does.
    fn cut(pool: &mut SealPool, n: usize) -> BytesMut {
        let b = pool.reserve(n);
        b.resize(b.len() + n, 7);
        b.split()
    }

    #[test]
    fn blocks_come_back_once_their_datagrams_are_dropped() {
        let mut pool = SealPool::default();
        // Bursts of 3 MB sealed before any is sent, then all sent (dropped): 100 bursts.
        for _ in 0..100 {
            let burst: Vec<_> = (0..50).map(|_| cut(&mut pool, 60_000)).collect();
            drop(burst);
        }
        assert!(
            pool.fresh_blocks() <= 1 + SPARE as u64,
            "{} blocks for 300 MB",
            pool.fresh_blocks()
        );
    }

    #[test]
    fn a_block_with_a_datagram_still_alive_is_never_written_over() {
        let mut pool = SealPool::default();
        let kept = cut(&mut pool, 100).freeze();
        for _ in 0..1_000 {
            drop(cut(&mut pool, 60_000));
        }
        assert_eq!(kept, vec![7u8; 100]);
        assert!(pool.spare.len() <= SPARE);
    }
}
