//! The whole-file BLAKE3 hash, computed block by block over the file's BLAKE3 tree.
//!
//! Why blocks: BLAKE3 is a tree hash. Hashed as aligned 1 MiB subtrees ([`BLOCK`]) whose
//! chaining values (CVs) are merged as the file goes, the result is exactly
//! `blake3::hash(file)`, and the CV of every block comes for free. Those CVs are what lets a
//! resumed download trust what it already holds: the receiver hashes its `.part` file into
//! block CVs, the sender hashes its file the same way, and only blocks whose CVs agree are
//! kept (see `resume`). Each block is hashed by one `update` over large runs, so BLAKE3 still
//! works many chunks at a time (SIMD).
//!
//! The BLAKE3 "hazmat" functions used here panic on misuse (a subtree longer than its
//! alignment allows), so every offset reaching them is a multiple of [`BLOCK`] by construction
//! and every length at most [`BLOCK`].

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// A BLAKE3 chaining value: the hash of a subtree of the file.
pub type Cv = ChainingValue;

/// Size of the subtrees the file is hashed in (a power of two, so every block is a subtree).
pub const BLOCK: u64 = 1 << 20;

/// The whole-file hash of a file of known size, fed its bytes in order.
#[derive(Debug, Clone)]
pub struct FileHasher {
    file_size: u64,
    /// A file of at most one block: its hash is the plain hash of its bytes.
    single: Option<Box<blake3::Hasher>>,
    /// The block being hashed (a subtree starting at `done - block_len`).
    block: Box<blake3::Hasher>,
    block_len: u64,
    /// CVs of completed subtrees, merged as BLAKE3's own hasher merges chunks.
    stack: Vec<Cv>,
    blocks_done: u64,
    /// Bytes pushed so far.
    done: u64,
}

impl FileHasher {
    /// A hasher for a file of `file_size` bytes.
    pub fn new(file_size: u64) -> Self {
        Self {
            file_size,
            single: (file_size <= BLOCK).then(|| Box::new(blake3::Hasher::new())),
            block: Box::new(blake3::Hasher::new()),
            block_len: 0,
            stack: Vec::new(),
            blocks_done: 0,
            done: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Add the next bytes of the file, in order; `on_block` gets the index and CV of every
    /// block they complete (never for a file of a single block, whose hash is not a merge).
    /// Bytes beyond the file's size are ignored.
    pub fn push_with(&mut self, mut data: &[u8], mut on_block: impl FnMut(u64, Cv)) {
        let left = self.file_size - self.done;
        if (data.len() as u64) > left {
            data = &data[..left as usize];
        }
        if let Some(h) = self.single.as_mut() {
            h.update(data);
            self.done += data.len() as u64;
            return;
        }
        while !data.is_empty() {
            let room = (BLOCK - self.block_len) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.update(now);
            self.block_len += now.len() as u64;
            self.done += now.len() as u64;
            data = rest;
            if self.block_len == BLOCK || self.done == self.file_size {
                let cv = self.block.finalize_non_root();
                let index = self.blocks_done;
                self.push_cv(cv);
                on_block(index, cv);
                *self.block = blake3::Hasher::new();
                if self.done < self.file_size {
                    self.block.set_input_offset(self.done);
                }
                self.block_len = 0;
            }
        }
    }

    /// Add the next bytes of the file, in order.
    pub fn push(&mut self, data: &[u8]) {
        self.push_with(data, |_, _| {});
    }

    /// Add the next whole block by its CV, computed elsewhere (the verified blocks of a
    /// resumed download). Refused (returns false) unless the hasher stands at a block
    /// boundary with a whole block still to come.
    pub fn push_block(&mut self, cv: Cv) -> bool {
        if self.single.is_some()
            || self.block_len != 0
            || self.done.saturating_add(BLOCK) > self.file_size
        {
            return false;
        }
        self.push_cv(cv);
        self.done += BLOCK;
        *self.block = blake3::Hasher::new();
        if self.done < self.file_size {
            self.block.set_input_offset(self.done);
        }
        true
    }

    fn push_cv(&mut self, cv: Cv) {
        // As BLAKE3's hasher does with chunks: before adding a subtree, merge the completed
        // ones down to one per set bit of the count so far; the last merges wait for
        // `finalize`, because the very last one must be the root.
        while self.stack.len() > self.blocks_done.count_ones() as usize {
            let (Some(right), Some(left)) = (self.stack.pop(), self.stack.pop()) else {
                break;
            };
            self.stack
                .push(merge_subtrees_non_root(&left, &right, Mode::Hash));
        }
        self.stack.push(cv);
        self.blocks_done += 1;
    }

    /// The file's BLAKE3 hash, once every byte was pushed (before that, not the file's).
    pub fn finalize(&self) -> [u8; 32] {
        if let Some(h) = &self.single {
            return *h.finalize().as_bytes();
        }
        let mut stack = self.stack.clone();
        let Some(mut right) = stack.pop() else {
            return *blake3::hash(&[]).as_bytes();
        };
        while let Some(left) = stack.pop() {
            if stack.is_empty() {
                return *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes();
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
        // One block only in a file of more than one block: not reachable for a whole file.
        right
    }
}

/// The CV of the subtree made of `blocks` (consecutive, aligned, their count a power of
/// two): what a resume offer compares, one CV per group of blocks.
pub fn merge_blocks(blocks: &[Cv]) -> Option<Cv> {
    if blocks.is_empty() || !blocks.len().is_power_of_two() {
        return None;
    }
    let mut level: Vec<Cv> = blocks.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| merge_subtrees_non_root(&p[0], &p[1], Mode::Hash))
            .collect();
    }
    level.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len as u32).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn equals_blake3_of_the_file_for_many_sizes_and_pieces() {
        let all = data(3 * BLOCK as usize + 5000);
        let b = BLOCK as usize;
        for len in [
            0usize,
            1,
            1024,
            b - 1,
            b,
            b + 1,
            2 * b,
            2 * b + 1000,
            3 * b,
            3 * b + 5000,
        ] {
            for piece in [1000usize, 65_536, 300_001] {
                let mut h = FileHasher::new(len as u64);
                for p in all[..len].chunks(piece) {
                    h.push(p);
                }
                assert_eq!(
                    h.finalize(),
                    *blake3::hash(&all[..len]).as_bytes(),
                    "len {len} piece {piece}"
                );
            }
        }
    }

    #[test]
    fn block_cvs_seed_a_hasher_to_the_same_result() {
        let all = data(5 * BLOCK as usize + 77);
        let mut full = FileHasher::new(all.len() as u64);
        let mut cvs = Vec::new();
        full.push_with(&all, |i, cv| cvs.push((i, cv)));
        assert_eq!(cvs.len(), 6, "five whole blocks and the short last one");
        assert!(cvs.iter().enumerate().all(|(n, (i, _))| n as u64 == *i));
        // A resumed receiver: three verified blocks by CV, then the rest as bytes.
        let mut resumed = FileHasher::new(all.len() as u64);
        for (_, cv) in &cvs[..3] {
            assert!(resumed.push_block(*cv));
        }
        resumed.push(&all[3 * BLOCK as usize..]);
        assert_eq!(resumed.finalize(), *blake3::hash(&all).as_bytes());
    }

    #[test]
    fn a_block_cv_is_refused_where_it_cannot_be_a_block() {
        let mut small = FileHasher::new(BLOCK);
        assert!(!small.push_block([0; 32]), "a single-block file has no CVs");
        let mut h = FileHasher::new(2 * BLOCK + 1);
        h.push(b"x");
        assert!(!h.push_block([0; 32]), "not at a block boundary");
        let mut h = FileHasher::new(BLOCK + 10);
        assert!(h.push_block([0; 32]));
        assert!(!h.push_block([0; 32]), "no whole block left");
    }

    #[test]
    fn merged_blocks_are_the_cv_of_the_larger_subtree() {
        let all = data(4 * BLOCK as usize + 1);
        let mut cvs = Vec::new();
        FileHasher::new(all.len() as u64).push_with(&all, |_, cv| cvs.push(cv));
        let mut two = blake3::Hasher::new();
        two.set_input_offset(2 * BLOCK);
        two.update(&all[2 * BLOCK as usize..4 * BLOCK as usize]);
        assert_eq!(merge_blocks(&cvs[2..4]), Some(two.finalize_non_root()));
        assert_eq!(merge_blocks(&cvs[..3]), None);
        assert_eq!(merge_blocks(&[]), None);
    }

    #[test]
    fn bytes_beyond_the_size_are_ignored() {
        let mut h = FileHasher::new(3);
        h.push(b"abcdef");
        assert_eq!(h.finalize(), *blake3::hash(b"abc").as_bytes());
        assert_eq!(h.done(), 3);
    }
}
