//! Out-of-order data a receiver holds until the gap before it fills, bounded in bytes.
//!
//! Why bytes and not datagrams: what a held datagram costs is its payload plus a fixed
//! bookkeeping overhead (the map entry, the allocation). Counting only payloads let a sender
//! of tiny datagrams make a receiver hold far more memory than its window; charging every
//! segment [`SEGMENT_OVERHEAD`] on top of its bytes makes the bound what the memory really
//! is, whatever the datagram sizes.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use bytes::Bytes;

/// What one held segment costs besides its payload: the map entry (key, `Bytes` handle,
/// node slack) and the allocation's own header, rounded up.
pub(crate) const SEGMENT_OVERHEAD: u64 = 160;

/// What [`Reassembly::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The segment is held.
    Held,
    /// A segment at this offset is held already.
    Duplicate,
    /// Holding it would exceed the memory allowed: dropped (the sender repeats it).
    NoRoom,
}

/// Segments by file offset, with what they cost.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    segments: BTreeMap<u64, Bytes>,
    charged: u64,
}

impl Reassembly {
    /// The memory a segment of `len` bytes is charged.
    pub(crate) fn charge_of(len: usize) -> u64 {
        len as u64 + SEGMENT_OVERHEAD
    }

    /// Memory charged for everything held.
    pub(crate) fn charged(&self) -> u64 {
        self.charged
    }

    /// Hold `payload` at `offset` if the charge stays within `cap`.
    ///
    /// The payload must own its allocation, exactly its size (the receiver opens a waiting
    /// datagram into a buffer of its own): a slice of a larger shared block would pin the whole
    /// block, and the bound would not be the bytes held.
    pub(crate) fn insert(&mut self, offset: u64, payload: Bytes, cap: u64) -> Insert {
        let charge = Self::charge_of(payload.len());
        match self.segments.entry(offset) {
            Entry::Occupied(_) => Insert::Duplicate,
            Entry::Vacant(_) if self.charged.saturating_add(charge) > cap => Insert::NoRoom,
            Entry::Vacant(v) => {
                v.insert(payload);
                self.charged += charge;
                Insert::Held
            }
        }
    }

    /// Take the segment that starts exactly at `offset`, if held.
    pub(crate) fn take(&mut self, offset: u64) -> Option<Bytes> {
        let seg = self.segments.remove(&offset)?;
        self.charged -= Self::charge_of(seg.len());
        Some(seg)
    }

    /// Forget everything (the transfer ended).
    pub(crate) fn clear(&mut self) {
        self.segments.clear();
        self.charged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_segments_are_charged_their_overhead_and_refused_past_the_cap() {
        let mut r = Reassembly::default();
        let cap = 10 * Reassembly::charge_of(1);
        let x = || Bytes::from_static(b"x");
        for i in 0..10 {
            assert_eq!(r.insert(i * 2, x(), cap), Insert::Held);
        }
        assert_eq!(r.insert(100, x(), cap), Insert::NoRoom);
        assert_eq!(r.insert(0, x(), cap), Insert::Duplicate);
        assert_eq!(r.charged(), cap);
        assert_eq!(r.take(2), Some(x()));
        assert_eq!(r.charged(), cap - Reassembly::charge_of(1));
        assert_eq!(r.take(3), None);
        r.clear();
        assert_eq!(r.charged(), 0);
    }
}
