//! A set of `u64` ranges: the packet numbers a receiver has seen, as it reports them in SACKs.
//!
//! Kept as a map from range start to range end (half-open) so that inserting the next packet
//! number in order is an O(log n) extension of the last range, and a SACK is the highest few
//! ranges. The receiver bounds the set by forgetting its lowest ranges: by then they have
//! been reported in many ACKs.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `[start, end)`; returns whether anything new was added.
    pub fn insert(&mut self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        let (mut start, mut end) = (start, end);
        // Merge with a range that starts at or before `start` and reaches it.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= end {
                return false;
            }
            if e >= start {
                start = s;
                self.ranges.remove(&s);
            }
        }
        // Swallow ranges that start inside `[start, end]`.
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            self.ranges.remove(&s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
        true
    }

    /// Add one value; returns whether it was new.
    pub fn insert_one(&mut self, v: u64) -> bool {
        // The common case, the next packet in order: extend the highest range in place.
        if let Some(mut last) = self.ranges.last_entry()
            && *last.get() == v
            && v < u64::MAX
        {
            *last.get_mut() = v + 1;
            return true;
        }
        self.insert(v, v.saturating_add(1))
    }

    /// Whether `v` is in the set.
    #[cfg(test)]
    pub fn contains(&self, v: u64) -> bool {
        self.ranges
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &e)| v < e)
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Ranges as inclusive `(first, last)`, highest first: the order SACKs carry them in.
    pub fn iter_desc(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().rev().map(|(&s, &e)| (s, e - 1))
    }

    /// Forget the lowest ranges until at most `keep` remain.
    pub fn truncate_low(&mut self, keep: usize) {
        while self.ranges.len() > keep {
            self.ranges.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_values_make_one_range() {
        let mut s = RangeSet::new();
        for v in 0..100 {
            assert!(s.insert_one(v));
        }
        assert_eq!(s.len(), 1);
        assert!(!s.insert_one(50));
        assert_eq!(s.iter_desc().collect::<Vec<_>>(), vec![(0, 99)]);
    }

    #[test]
    fn gaps_make_ranges_highest_first() {
        let mut s = RangeSet::new();
        for v in [1, 2, 5, 6, 9] {
            s.insert_one(v);
        }
        assert_eq!(
            s.iter_desc().collect::<Vec<_>>(),
            vec![(9, 9), (5, 6), (1, 2)]
        );
        s.insert(3, 5);
        assert_eq!(s.iter_desc().collect::<Vec<_>>(), vec![(9, 9), (1, 6)]);
        s.truncate_low(1);
        assert_eq!(s.iter_desc().collect::<Vec<_>>(), vec![(9, 9)]);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(values in proptest::collection::vec(0u64..200, 0..200)) {
            let mut s = RangeSet::new();
            let mut model = std::collections::BTreeSet::new();
            for v in values {
                prop_assert_eq!(s.insert_one(v), model.insert(v));
            }
            for v in 0..200 {
                prop_assert_eq!(s.contains(v), model.contains(&v));
            }
            let ranges: Vec<_> = s.iter_desc().collect();
            for w in ranges.windows(2) {
                prop_assert!(w[1].1 + 1 < w[0].0, "ranges must be disjoint and non-adjacent");
            }
        }
    }
}
