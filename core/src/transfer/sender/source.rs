//! The file side of a sender: which bytes to ask the driver for next, the whole-file BLAKE3
//! hash computed as the bytes come (reads are sequential, so there is no second pass), and the
//! check of a receiver's resume offer against the file.
//!
//! # Checking an offer
//! A receiver that holds part of the file offers the CVs of its first blocks (see
//! `datagram::Offer`). Before sending anything, the source reads the offered range and hashes
//! it — which the whole-file hash needs anyway — comparing block by block; the first block
//! that differs ends the check. The verdict is where sending starts: the end of the blocks that
//! agree. The source then rewinds its reads to there (bytes read again are not hashed again).

use bytes::Bytes;

use super::super::HASH_LEN;
use super::super::datagram::Offer;
use blake3::hazmat::{Mode, merge_subtrees_non_root};

use super::super::tree::{BLOCK, Cv, FileHasher};

/// An offer being checked.
#[derive(Debug)]
struct Check {
    offer: Offer,
    /// Hashing blocks per offered block, as a power of two.
    level: u32,
    /// The offered block being read, merged as its hashing blocks come: `(level, cv)` pairs
    /// of decreasing level, like a binary counter (at most `level + 1` of them).
    group: Vec<(u32, Cv)>,
    /// Offered blocks found equal so far.
    matched: u64,
    /// Set once a block differed or every offered block agreed.
    verdict: Option<u64>,
}

/// Where reading the file stands.
#[derive(Debug)]
pub(super) struct Source {
    file_size: u64,
    /// Bytes per chunk; reads are whole multiples of it.
    payload: u64,
    read_len: u64,
    /// Offset of the next read.
    next: u64,
    outstanding: bool,
    hasher: FileHasher,
    hash: Option<[u8; HASH_LEN]>,
    check: Option<Check>,
}

/// The driver handed bytes that were not asked for (a bug, or a file that changed under us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unexpected;

/// An offer no honest receiver makes: blocks that are not whole hashing subtrees, or that
/// cover the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BadOffer;

impl Source {
    /// A source of `file_size` bytes read `read_size` bytes at a time (rounded to chunks).
    pub(super) fn new(file_size: u64, payload: u64, read_size: usize) -> Self {
        Self {
            file_size,
            payload,
            read_len: (read_size as u64 / payload).max(1) * payload,
            next: 0,
            outstanding: false,
            hasher: FileHasher::new(file_size),
            hash: (file_size == 0).then(|| *blake3::hash(&[]).as_bytes()),
            check: None,
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

    /// Check `offer` before sending: reads cover the offered range until
    /// [`Source::verdict`] says where to start.
    pub(super) fn check(&mut self, offer: Offer) -> Result<(), BadOffer> {
        let blocks = offer.block / BLOCK;
        let whole = offer.block >= BLOCK
            && offer.block.is_power_of_two()
            && offer.len() < self.file_size
            && !offer.is_empty();
        if !whole || self.next != 0 || self.outstanding {
            return Err(BadOffer);
        }
        self.check = Some(Check {
            level: blocks.trailing_zeros(),
            group: Vec::new(),
            matched: 0,
            verdict: None,
            offer,
        });
        Ok(())
    }

    /// Where sending starts, once the offer was checked: the end of the offered blocks that
    /// agree with the file. Taken once; the reads rewind to the chunk holding that offset.
    pub(super) fn take_verdict(&mut self) -> Option<u64> {
        let verdict = self.check.as_ref()?.verdict?;
        self.check = None;
        if !self.outstanding {
            self.next = verdict / self.payload * self.payload;
        }
        Some(verdict)
    }

    /// The next read to ask for, if none is outstanding and there is more to read (while
    /// checking an offer, only the offered range).
    pub(super) fn start_read(&mut self) -> Option<(u64, usize)> {
        let end = match &self.check {
            Some(c) if c.verdict.is_none() => c.offer.len(),
            Some(_) => return None,
            None => self.file_size,
        };
        if self.outstanding || self.next >= end {
            return None;
        }
        self.outstanding = true;
        let len = self.read_len.min(end - self.next);
        Some((self.next, len as usize))
    }

    /// Take the bytes of the outstanding read: hashed (where not hashed before), then cut into
    /// chunks for `chunk` — unless an offer is being checked, when they are only compared.
    pub(super) fn accept(
        &mut self,
        offset: u64,
        data: Bytes,
        mut chunk: impl FnMut(Bytes),
    ) -> Result<(), Unexpected> {
        let end = match &self.check {
            Some(c) if c.verdict.is_none() => c.offer.len(),
            _ => self.file_size,
        };
        let expected = self.read_len.min(end.saturating_sub(self.next));
        if !self.outstanding || offset != self.next || data.len() as u64 != expected {
            return Err(Unexpected);
        }
        self.outstanding = false;
        self.next += data.len() as u64;
        // Bytes read again after a rewind were hashed the first time.
        let skip = self
            .hasher
            .done()
            .saturating_sub(offset)
            .min(data.len() as u64) as usize;
        let check = &mut self.check;
        self.hasher.push_with(&data[skip..], |_, cv| {
            if let Some(c) = check.as_mut() {
                c.on_block(cv);
            }
        });
        if self.hasher.done() == self.file_size && self.hash.is_none() {
            self.hash = Some(self.hasher.finalize());
        }
        if self.check.is_some() {
            return Ok(());
        }
        let mut at = 0usize;
        while at < data.len() {
            let end = (at + self.payload as usize).min(data.len());
            chunk(data.slice(at..end));
            at = end;
        }
        Ok(())
    }
}

impl Check {
    /// The next hashing block's CV, in file order.
    fn on_block(&mut self, cv: Cv) {
        if self.verdict.is_some() {
            return;
        }
        let mut top = (0u32, cv);
        while let Some(&(level, left)) = self.group.last() {
            if level != top.0 {
                break;
            }
            self.group.pop();
            top = (
                level + 1,
                merge_subtrees_non_root(&left, &top.1, Mode::Hash),
            );
        }
        if top.0 < self.level {
            self.group.push(top);
            return;
        }
        let i = self.matched as usize;
        let agrees = self.offer.cvs.get(i) == Some(&top.1);
        self.group.clear();
        if agrees {
            self.matched += 1;
        }
        if !agrees || self.matched as usize == self.offer.cvs.len() {
            self.verdict = Some(self.matched * self.offer.block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tree::merge_blocks;
    use super::*;

    fn file(len: usize) -> Bytes {
        Bytes::from(
            (0..len as u32)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>(),
        )
    }

    fn block_cvs(data: &[u8]) -> Vec<Cv> {
        let mut cvs = Vec::new();
        FileHasher::new(data.len() as u64).push_with(data, |_, cv| cvs.push(cv));
        cvs
    }

    /// Drive a source through its reads; returns the chunks' offsets and the verdict.
    fn run(src: &mut Source, data: &Bytes) -> (Vec<u64>, Option<u64>) {
        let mut offsets = Vec::new();
        let mut verdict = None;
        while let Some((offset, len)) = src.start_read() {
            let mut at = offset;
            src.accept(
                offset,
                data.slice(offset as usize..offset as usize + len),
                |c| {
                    offsets.push(at);
                    at += c.len() as u64;
                },
            )
            .unwrap();
            if let Some(v) = src.take_verdict() {
                verdict = Some(v);
            }
        }
        (offsets, verdict)
    }

    #[test]
    fn an_offer_that_agrees_starts_after_it_and_the_hash_is_still_the_files() {
        let data = file(5 * BLOCK as usize + 1000);
        let cvs = block_cvs(&data);
        let offer = Offer {
            block: 2 * BLOCK,
            cvs: vec![
                merge_blocks(&cvs[0..2]).unwrap(),
                merge_blocks(&cvs[2..4]).unwrap(),
            ],
        };
        let mut src = Source::new(data.len() as u64, 1408, 256 << 10);
        src.check(offer).unwrap();
        let (offsets, verdict) = run(&mut src, &data);
        assert_eq!(verdict, Some(4 * BLOCK));
        assert_eq!(offsets.first(), Some(&(4 * BLOCK / 1408 * 1408)));
        assert_eq!(src.hash(), Some(*blake3::hash(&data).as_bytes()));
    }

    #[test]
    fn the_first_block_that_differs_ends_the_offer() {
        let data = file(4 * BLOCK as usize + 7);
        let mut cvs = block_cvs(&data);
        cvs[1][0] ^= 1; // the receiver's second block was damaged
        let offer = Offer {
            block: BLOCK,
            cvs: cvs[..3].to_vec(),
        };
        let mut src = Source::new(data.len() as u64, 1408, 256 << 10);
        src.check(offer).unwrap();
        let (offsets, verdict) = run(&mut src, &data);
        assert_eq!(verdict, Some(BLOCK));
        assert_eq!(offsets.first(), Some(&(BLOCK / 1408 * 1408)));
        assert_eq!(src.hash(), Some(*blake3::hash(&data).as_bytes()));
    }

    #[test]
    fn offers_no_receiver_makes_are_refused() {
        let mut src = Source::new(3 * BLOCK, 1408, 256 << 10);
        for offer in [
            Offer {
                block: BLOCK / 2,
                cvs: vec![[0; 32]],
            },
            Offer {
                block: 3 * BLOCK,
                cvs: vec![[0; 32]],
            },
            Offer {
                block: BLOCK,
                cvs: vec![[0; 32]; 3],
            },
            Offer {
                block: u64::MAX / 2 + 1,
                cvs: vec![[0; 32]; 64],
            },
            Offer::default(),
        ] {
            assert_eq!(src.check(offer), Err(BadOffer));
        }
    }
}
