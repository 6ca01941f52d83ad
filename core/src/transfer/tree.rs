//! The whole-file BLAKE3 hash, assembled from the hashes of the datagram payloads.
//!
//! Why: hashing is the dominant CPU cost of a fast transfer (on this machine BLAKE3 runs at
//! about 3 GB/s, a loopback TCP copy at about 2 GB/s). Tagging every datagram with a keyed
//! hash of its payload *and* hashing the whole file would read every byte twice on each side.
//! BLAKE3 is a tree hash, so when every payload is an aligned, power-of-two-sized subtree of
//! the file ("leaf"), the chaining value (CV) of each payload is a node of the file's hash
//! tree: each side hashes each payload once, tags the datagram with a keyed hash of its
//! header and that CV, and merges the CVs into the standard BLAKE3 hash of the file. The
//! result is exactly `blake3::hash(file)`, so nothing about the file check is weakened.
//!
//! This is the "tree mode" of a transfer, used when the payload size is a power of two of at
//! least [`MIN_LEAF`] bytes (large datagrams); with MTU-sized datagrams it is not worth the
//! 30 % of payload it would cost, and payloads are tagged and the file hashed separately.
//!
//! The BLAKE3 "hazmat" functions used here panic on misuse, so every offset and length that
//! reaches them is checked first ([`leaf_cv`]).

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// A BLAKE3 chaining value (re-exported as `datagram::ChainingValue`).
pub type ChainingValueOf = ChainingValue;

/// Smallest leaf for which tree mode is used (two BLAKE3 chunks).
pub const MIN_LEAF: u64 = 2048;
/// Largest leaf: the largest power of two that fits a UDP datagram with our header.
pub const MAX_LEAF: u64 = 32 * 1024;

/// Whether payloads of `payload` bytes can be tree leaves.
pub fn is_leaf_size(payload: u64) -> bool {
    payload.is_power_of_two() && (MIN_LEAF..=MAX_LEAF).contains(&payload)
}

/// The leaf size tree mode would use for a payload capacity, if any.
pub fn leaf_size_for(capacity: u64) -> Option<u64> {
    if capacity < MIN_LEAF {
        return None;
    }
    let leaf = 1u64 << (63 - capacity.leading_zeros());
    Some(leaf.min(MAX_LEAF))
}

/// The chaining value of `payload` as the subtree at `offset` of a file, or `None` if it cannot
/// be one (misaligned, empty or too long): checked here because BLAKE3's hazmat functions
/// panic on such input and the offset comes from the network.
pub fn leaf_cv(leaf: u64, offset: u64, payload: &[u8]) -> Option<ChainingValue> {
    let len = payload.len() as u64;
    if !is_leaf_size(leaf) || offset & (leaf - 1) != 0 || len == 0 || len > leaf {
        return None;
    }
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(payload);
    Some(h.finalize_non_root())
}

/// Merges leaf CVs, fed in file order, into the file's BLAKE3 hash.
///
/// The same stack discipline as BLAKE3's own incremental hasher, one level up: a leaf is
/// merged into completed subtrees only when the next leaf arrives, because the very last
/// merge must be the root one.
#[derive(Debug, Clone)]
pub struct TreeHasher {
    file_size: u64,
    leaf: u64,
    stack: Vec<ChainingValue>,
    pending: Option<ChainingValue>,
    leaves: u64,
    /// A file of at most one leaf: its root is the plain hash of its bytes.
    single: Option<blake3::Hash>,
}

impl TreeHasher {
    /// A hasher for a file of `file_size` bytes cut into leaves of `leaf` bytes.
    pub fn new(file_size: u64, leaf: u64) -> Self {
        let single = (file_size == 0).then(|| blake3::hash(&[]));
        Self {
            file_size,
            leaf,
            stack: Vec::new(),
            pending: None,
            leaves: 0,
            single,
        }
    }

    /// Offset of the next leaf expected.
    pub fn next_offset(&self) -> u64 {
        (self.leaves + u64::from(self.pending.is_some())) * self.leaf
    }

    /// Whether the file is a single leaf (its hash then needs the bytes, not the CV).
    pub fn is_single_leaf(&self) -> bool {
        self.file_size <= self.leaf
    }

    /// Add the next leaf: its CV and, for a single-leaf file, its bytes.
    pub fn push(&mut self, cv: ChainingValue, bytes: &[u8]) {
        if self.is_single_leaf() {
            self.single = Some(blake3::hash(bytes));
            return;
        }
        if let Some(prev) = self.pending.replace(cv) {
            self.leaves += 1;
            let mut merged = prev;
            let mut total = self.leaves;
            while total & 1 == 0 {
                match self.stack.pop() {
                    Some(left) => merged = merge_subtrees_non_root(&left, &merged, Mode::Hash),
                    None => break,
                }
                total >>= 1;
            }
            self.stack.push(merged);
        }
    }

    /// The hash of the file, once every leaf was pushed.
    pub fn finalize(&self) -> blake3::Hash {
        if let Some(h) = self.single {
            return h;
        }
        let Some(mut right) = self.pending else {
            return blake3::hash(&[]);
        };
        let mut stack = self.stack.clone();
        while let Some(left) = stack.pop() {
            if stack.is_empty() {
                return merge_subtrees_root(&left, &right, Mode::Hash);
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
        // Only reachable if a multi-leaf file got a single leaf: not the file's hash.
        blake3::hash(&right)
    }
}

/// The whole-file hash, computed whichever way the transfer's mode allows.
#[derive(Debug, Clone)]
pub enum FileHasher {
    /// Plain mode: every byte is hashed once more, in file order.
    Stream(Box<blake3::Hasher>),
    /// Tree mode: leaf CVs (already computed for the datagram tags) are merged.
    Tree(TreeHasher),
}

impl FileHasher {
    /// A hasher for a file of `file_size` bytes, in tree mode if `leaf` is given.
    pub fn new(file_size: u64, leaf: Option<u64>) -> Self {
        match leaf {
            Some(leaf) => FileHasher::Tree(TreeHasher::new(file_size, leaf)),
            None => FileHasher::Stream(Box::new(blake3::Hasher::new())),
        }
    }

    /// Add the next piece of the file, in order; in tree mode a whole leaf and its CV.
    pub fn push(&mut self, data: &[u8], cv: Option<ChainingValue>) {
        match self {
            FileHasher::Stream(h) => {
                h.update(data);
            }
            FileHasher::Tree(t) => {
                let cv = cv.or_else(|| leaf_cv(t.leaf, t.next_offset(), data));
                if let Some(cv) = cv {
                    t.push(cv, data);
                }
            }
        }
    }

    /// The file's BLAKE3 hash.
    pub fn finalize(&self) -> [u8; 32] {
        match self {
            FileHasher::Stream(h) => *h.finalize().as_bytes(),
            FileHasher::Tree(t) => *t.finalize().as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_hash(data: &[u8], leaf: u64) -> blake3::Hash {
        let mut t = TreeHasher::new(data.len() as u64, leaf);
        for (i, piece) in data.chunks(leaf as usize).enumerate() {
            let cv = leaf_cv(leaf, i as u64 * leaf, piece).unwrap();
            t.push(cv, piece);
        }
        t.finalize()
    }

    #[test]
    fn equals_blake3_of_the_file_for_many_sizes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for leaf in [2048u64, 4096, 32768] {
            for len in [
                0usize, 1, 2047, 2048, 2049, 4096, 6000, 8192, 10_000, 65_536, 65_537, 123_457,
                300_000,
            ] {
                assert_eq!(
                    tree_hash(&data[..len], leaf),
                    blake3::hash(&data[..len]),
                    "leaf {leaf} len {len}"
                );
            }
        }
    }

    #[test]
    fn misaligned_or_oversized_leaves_are_refused_not_panicked_on() {
        assert!(leaf_cv(4096, 100, b"x").is_none());
        assert!(leaf_cv(4096, 4096, &[]).is_none());
        assert!(leaf_cv(4096, 0, &[0; 4097]).is_none());
        assert!(leaf_cv(3000, 0, b"x").is_none());
        assert!(leaf_cv(4096, u64::MAX - 4095, b"x").is_some());
    }

    #[test]
    fn leaf_size_is_the_largest_power_of_two_that_fits() {
        assert_eq!(leaf_size_for(1408), None);
        assert_eq!(leaf_size_for(2048), Some(2048));
        assert_eq!(leaf_size_for(65_463), Some(32_768));
        assert_eq!(leaf_size_for(9000), Some(8192));
    }
}
