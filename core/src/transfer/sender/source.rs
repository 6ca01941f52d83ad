//! The file side of a sender: which bytes to ask the driver for next, and the whole-file
//! BLAKE3 hash, computed as the bytes come (reads are sequential, so there is no second pass).

use bytes::Bytes;

use super::super::HASH_LEN;
use super::super::datagram::ChainingValue;
use super::super::tree::{FileHasher, leaf_cv};

/// Where reading the file stands.
#[derive(Debug)]
pub(super) struct Source {
    file_size: u64,
    /// Bytes per chunk; reads are whole multiples of it.
    payload: u64,
    /// Tree mode: payloads are leaves of the file's hash tree of this size.
    leaf: Option<u64>,
    read_len: u64,
    /// Offset of the next read.
    next: u64,
    outstanding: bool,
    hasher: FileHasher,
    hash: Option<[u8; HASH_LEN]>,
}

/// The driver handed bytes that were not asked for (a bug, or a file that changed under us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unexpected;

impl Source {
    /// A source of `file_size` bytes read `read_size` bytes at a time (rounded to chunks).
    pub(super) fn new(file_size: u64, payload: u64, leaf: Option<u64>, read_size: usize) -> Self {
        Self {
            file_size,
            payload,
            leaf,
            read_len: (read_size as u64 / payload).max(1) * payload,
            next: 0,
            outstanding: false,
            hasher: FileHasher::new(file_size, leaf),
            hash: (file_size == 0).then(|| *blake3::hash(&[]).as_bytes()),
        }
    }

    /// Offset just past the last byte read.
    pub(super) fn read_end(&self) -> u64 {
        self.next
    }

    /// The size of one read.
    pub(super) fn read_len(&self) -> u64 {
        self.read_len
    }

    /// The whole-file hash, once every byte was read.
    pub(super) fn hash(&self) -> Option<[u8; HASH_LEN]> {
        self.hash
    }

    /// The next read to ask for, if none is outstanding and the file is not read to its end.
    pub(super) fn start_read(&mut self) -> Option<(u64, usize)> {
        if self.outstanding || self.next >= self.file_size {
            return None;
        }
        self.outstanding = true;
        let len = self.read_len.min(self.file_size - self.next);
        Some((self.next, len as usize))
    }

    /// Take the bytes of the outstanding read: cut into chunks (each handed to `chunk` with
    /// its chaining value in tree mode) and hashed.
    pub(super) fn accept(
        &mut self,
        offset: u64,
        data: Bytes,
        mut chunk: impl FnMut(Bytes, Option<ChainingValue>),
    ) -> Result<(), Unexpected> {
        let expected = self.read_len.min(self.file_size - self.next);
        if !self.outstanding || offset != self.next || data.len() as u64 != expected {
            return Err(Unexpected);
        }
        self.outstanding = false;
        if self.leaf.is_none() {
            // Plain mode: hash the whole read at once, where BLAKE3 runs many chunks in
            // parallel (SIMD), not datagram by datagram.
            self.hasher.push(&data, None);
        }
        let mut at = 0usize;
        while at < data.len() {
            let end = (at + self.payload as usize).min(data.len());
            let piece = data.slice(at..end);
            let cv = self
                .leaf
                .and_then(|leaf| leaf_cv(leaf, offset + at as u64, &piece));
            if self.leaf.is_some() {
                self.hasher.push(&piece, cv);
            }
            chunk(piece, cv);
            at = end;
        }
        self.next += data.len() as u64;
        if self.next == self.file_size {
            self.hash = Some(self.hasher.finalize());
        }
        Ok(())
    }
}
