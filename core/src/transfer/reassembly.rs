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

use super::datagram::ChainingValue;

/// What one held segment costs besides its payload: the map entry (key, `Bytes` handle,
/// optional chaining value, node slack) and the allocation's own header, rounded up.
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
    segments: BTreeMap<u64, (Bytes, Option<ChainingValue>)>,
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

    /// Hold a copy of `payload` at `offset` if the charge stays within `cap`.
    ///
    /// Copied, not kept as a slice: the driver may receive into large shared blocks, and a
    /// held slice would pin its whole block, so the bound would not be the bytes held.
    pub(crate) fn insert(
        &mut self,
        offset: u64,
        payload: &[u8],
        cv: Option<ChainingValue>,
        cap: u64,
    ) -> Insert {
        let charge = Self::charge_of(payload.len());
        match self.segments.entry(offset) {
            Entry::Occupied(_) => Insert::Duplicate,
            Entry::Vacant(_) if self.charged.saturating_add(charge) > cap => Insert::NoRoom,
            Entry::Vacant(v) => {
                v.insert((Bytes::copy_from_slice(payload), cv));
                self.charged += charge;
                Insert::Held
            }
        }
    }

    /// Take the segment that starts exactly at `offset`, if held.
    pub(crate) fn take(&mut self, offset: u64) -> Option<(Bytes, Option<ChainingValue>)> {
        let seg = self.segments.remove(&offset)?;
        self.charged -= Self::charge_of(seg.0.len());
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
        for i in 0..10 {
            assert_eq!(r.insert(i * 2, b"x", None, cap), Insert::Held);
        }
        assert_eq!(r.insert(100, b"x", None, cap), Insert::NoRoom);
        assert_eq!(r.insert(0, b"x", None, cap), Insert::Duplicate);
        assert_eq!(r.charged(), cap);
        assert_eq!(r.take(2).map(|s| s.0), Some(Bytes::from_static(b"x")));
        assert_eq!(r.charged(), cap - Reassembly::charge_of(1));
        assert_eq!(r.take(3), None);
        r.clear();
        assert_eq!(r.charged(), 0);
    }
}
