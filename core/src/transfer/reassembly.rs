//! The receive buffer: every data payload, in order or not, is opened straight into its place
//! in a block of the file; once the bytes before a block's end are all there, the block goes to
//! the hasher and the driver as it is.
//!
//! Why blocks at their place in the file, and not one buffer per waiting payload: under loss
//! almost every payload waits (one hole holds back everything after it until the repair
//! comes), and a buffer of its own cost each of them an allocation, a map entry and a second
//! copy into the stage once the hole filled — the receiver's CPU grew by three quarters at 5 %
//! loss. Here a payload is copied once (into its slot, where it is decrypted in place),
//! whether it waits or not, and a block of about [`BLOCK_TARGET`] bytes is one hash update and
//! one write.
//!
//! # Memory
//! What is held is whole blocks, charged at their full size whatever they hold, so the charge
//! is the memory. Payloads are whole chunks of the size the `Hello` announced (the receiver
//! checks this before asking for a slot), a block is a whole number of chunks, and the window
//! bounds which blocks can exist. A block other than the one the in-order bytes are filling
//! is only created while the charge stays within the cap the caller gives; the in-order block
//! is always allowed (without it nothing could progress), so one receiver may pass its cap by
//! at most one block. Blocks already handed on are kept (at most [`SPARE_BLOCKS`], charged
//! like the others and the first to go when room is needed) and reused once the driver
//! dropped them, so a long download does not allocate and zero a fresh buffer for every block.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// About how many bytes a block holds: a whole number of chunks, at least this many.
pub(crate) const BLOCK_TARGET: u64 = 256 << 10;

/// Handed-on blocks kept for reuse, at most. Why 64 (16 MiB, the default window): at 5 % loss
/// on loopback a hole often holds back the whole window, and when the repair comes all of it is
/// handed on at once; with only 8 spares, 260-560 of a 256 MiB download's 1,020 blocks were
/// fresh zeroed allocations. Spares are charged, and kept only while the charge stays within
/// the memory cap, so receivers sharing the budget keep fewer.
const SPARE_BLOCKS: usize = 64;

/// Where [`Reassembly::slot`] says a payload goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    /// Open the payload into this slot (exactly its length), then call
    /// [`Reassembly::fill`].
    Slot(&'a mut [u8]),
    /// Its bytes are here already.
    Duplicate,
    /// Its block does not exist yet: authenticate the payload elsewhere, then
    /// [`Reassembly::insert`] it.
    NoBlock,
}

/// What [`Reassembly::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The payload is in its slot.
    Kept,
    /// Its bytes are here already.
    Duplicate,
    /// Its block would pass the memory cap: dropped (the sender repeats it).
    NoRoom,
}

/// A block of the file: `chunks_per_block` chunk slots and which of them hold their bytes.
#[derive(Debug)]
struct Block {
    buf: BytesMut,
    filled: Vec<u64>,
}

impl Block {
    fn is_filled(&self, slot: u64) -> bool {
        self.filled[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }
}

/// The blocks of a file between what was handed on and the window's end.
#[derive(Debug)]
pub(crate) struct Reassembly {
    file_size: u64,
    /// Bytes per chunk (0 until [`Reassembly::start`]: then nothing has a place).
    chunk: u64,
    chunks_per_block: u64,
    /// Offset of the next byte to hand on.
    written: u64,
    /// Every byte below this offset is here (handed on, or in the blocks).
    cum: u64,
    /// Index of the block `blocks[0]` stands for.
    first: u64,
    /// `None`: a block nothing arrived for yet.
    blocks: VecDeque<Option<Block>>,
    charged: u64,
    spare: Vec<Bytes>,
    /// Block buffers allocated (the rest were reused).
    fresh: u64,
}

impl Reassembly {
    /// A buffer for a file of `file_size` bytes that takes nothing until it is started.
    pub(crate) fn new(file_size: u64) -> Self {
        Self {
            file_size,
            chunk: 0,
            chunks_per_block: 1,
            written: 0,
            cum: 0,
            first: 0,
            blocks: VecDeque::new(),
            charged: 0,
            spare: Vec::new(),
            fresh: 0,
        }
    }

    /// Take chunks of `chunk` bytes (at least one), every byte below `from` being held
    /// already (0, or where a resume starts: it may lie inside a chunk).
    pub(crate) fn start(&mut self, chunk: u64, from: u64) {
        let chunk = chunk.max(1);
        self.clear();
        self.chunk = chunk;
        self.chunks_per_block = BLOCK_TARGET.div_ceil(chunk);
        self.written = from.min(self.file_size);
        self.cum = self.written;
        self.first = self.cum / self.block_len();
    }

    fn block_len(&self) -> u64 {
        self.chunk * self.chunks_per_block
    }

    /// Every byte below this offset is here.
    pub(crate) fn cum(&self) -> u64 {
        self.cum
    }

    /// Block buffers allocated so far (the rest were reused).
    pub(crate) fn fresh(&self) -> u64 {
        self.fresh
    }

    /// Memory charged for the blocks held now, spares included.
    pub(crate) fn charged(&self) -> u64 {
        self.charged
    }

    fn charge_of_block(&self) -> u64 {
        self.block_len() + self.chunks_per_block.div_ceil(64) * 8
    }

    /// Where the payload of the chunk at `offset` goes, if its block exists or a spare block
    /// the driver is done with can become it (memory already held and charged, so a forged
    /// datagram cannot make the receiver allocate through here). The caller has checked that
    /// it is a whole chunk at its place in the file (`len` bytes, only the file's last may be
    /// short) and that it ends past [`Reassembly::cum`] within the window.
    pub(crate) fn slot(&mut self, offset: u64, len: usize) -> Place<'_> {
        let Some((i, slot)) = self.locate(offset, len) else {
            return Place::NoBlock;
        };
        if i == usize::MAX {
            return Place::Duplicate;
        }
        if self.blocks.get(i).is_none_or(Option::is_none) {
            let Some(buf) = self.reuse_spare() else {
                return Place::NoBlock;
            };
            self.install(i, buf);
        }
        let start = (slot * self.chunk) as usize;
        match self.blocks.get_mut(i) {
            Some(Some(b)) if b.is_filled(slot) => Place::Duplicate,
            Some(Some(b)) => Place::Slot(&mut b.buf[start..start + len]),
            _ => Place::NoBlock,
        }
    }

    /// Make `buf` block `i` (nothing in it yet), charged.
    fn install(&mut self, i: usize, buf: BytesMut) {
        // A window of 16 MiB in blocks of about 256 KiB: a few dozen entries at most.
        while self.blocks.len() <= i {
            self.blocks.push_back(None);
        }
        self.blocks[i] = Some(Block {
            buf,
            filled: vec![0; self.chunks_per_block.div_ceil(64) as usize],
        });
        self.charged += self.charge_of_block();
    }

    /// The block index (in `blocks`; `usize::MAX` for one handed on already) and slot of a
    /// chunk, if it is one.
    fn locate(&self, offset: u64, len: usize) -> Option<(usize, u64)> {
        if self.chunk == 0 || !offset.is_multiple_of(self.chunk) || len as u64 > self.chunk {
            return None;
        }
        let index = offset / self.chunk;
        let i = (index / self.chunks_per_block)
            .checked_sub(self.first)
            .map_or(usize::MAX, |i| i as usize);
        Some((i, index % self.chunks_per_block))
    }

    /// Keep the authenticated payload `data` of the chunk at `offset`, whose block does not
    /// exist yet ([`Place::NoBlock`]): the block is made (the in-order one always, any other
    /// only if the charge stays within `cap`) and `data` copied into its slot. Why only after
    /// authentication: a forged datagram must not make the receiver allocate anything.
    pub(crate) fn insert(&mut self, offset: u64, data: &[u8], cap: u64) -> Insert {
        let Some((i, slot)) = self
            .locate(offset, data.len())
            .filter(|(i, _)| *i != usize::MAX)
        else {
            return Insert::Duplicate;
        };
        if self.blocks.get(i).is_none_or(Option::is_none) {
            let charge = self.charge_of_block();
            while i > 0 && self.charged.saturating_add(charge) > cap {
                if self.spare.pop().is_none() {
                    return Insert::NoRoom;
                }
                self.charged -= self.block_len();
            }
            let buf = match self.reuse_spare() {
                Some(buf) => buf,
                None => {
                    self.fresh += 1;
                    BytesMut::zeroed(self.block_len() as usize)
                }
            };
            self.install(i, buf);
        }
        let start = (slot * self.chunk) as usize;
        match self.blocks.get_mut(i).and_then(Option::as_mut) {
            Some(b) if b.is_filled(slot) => return Insert::Duplicate,
            Some(b) => b.buf[start..start + data.len()].copy_from_slice(data),
            None => return Insert::NoRoom,
        }
        self.fill(offset);
        Insert::Kept
    }

    /// A handed-on block the driver has dropped, uncharged, if there is one.
    fn reuse_spare(&mut self) -> Option<BytesMut> {
        let len = self.block_len() as usize;
        for k in 0..self.spare.len() {
            if self.spare[k].is_unique() {
                let b = self.spare.swap_remove(k);
                self.charged -= self.block_len();
                if let Ok(buf) = b.try_into_mut()
                    && buf.len() == len
                {
                    return Some(buf);
                }
                break;
            }
        }
        None
    }

    /// The payload at `offset` was opened into the slot [`Reassembly::slot`] gave for it.
    pub(crate) fn fill(&mut self, offset: u64) {
        let index = offset / self.chunk.max(1);
        let Some(i) = (index / self.chunks_per_block).checked_sub(self.first) else {
            return;
        };
        let slot = index % self.chunks_per_block;
        if let Some(Some(b)) = self.blocks.get_mut(i as usize) {
            b.filled[(slot / 64) as usize] |= 1 << (slot % 64);
        }
        self.advance();
    }

    /// Move `cum` over the chunks that are here.
    fn advance(&mut self) {
        if self.chunk == 0 {
            return; // not started: nothing has a place yet
        }
        while self.cum < self.file_size {
            let index = self.cum / self.chunk;
            let Some(i) = (index / self.chunks_per_block).checked_sub(self.first) else {
                return;
            };
            let slot = index % self.chunks_per_block;
            match self.blocks.get(i as usize) {
                Some(Some(b)) if b.is_filled(slot) => {
                    self.cum = ((index + 1) * self.chunk).min(self.file_size);
                }
                _ => return,
            }
        }
    }

    /// The next in-order bytes to hash and write: the front block once every byte up to its
    /// end (or the file's) is here. Call until `None`. The block is kept as a spare if the
    /// charge stays within `cap`.
    pub(crate) fn take_write(&mut self, cap: u64) -> Option<(u64, Bytes)> {
        let block_len = self.block_len();
        let block_start = self.first * block_len;
        let end = (block_start + block_len).min(self.file_size);
        if self.chunk == 0 || self.cum < end || self.written >= end {
            return None;
        }
        let block = self.blocks.pop_front().flatten()?;
        self.first += 1;
        self.charged -= self.charge_of_block();
        let whole = block.buf.freeze();
        let data = whole.slice((self.written - block_start) as usize..(end - block_start) as usize);
        if self.spare.len() < SPARE_BLOCKS && self.charged + block_len <= cap {
            self.spare.push(whole);
            self.charged += block_len;
        }
        let offset = self.written;
        self.written = end;
        Some((offset, data))
    }

    /// The transfer ends: every in-order byte not handed on yet (the start of the front
    /// block), so that a resume keeps it; then everything is forgotten.
    pub(crate) fn take_rest(&mut self) -> Option<(u64, Bytes)> {
        let rest = match self.blocks.pop_front().flatten() {
            Some(block) if self.chunk > 0 && self.cum > self.written => {
                // `take_write` hands on every whole block, so `cum` ends inside this one.
                let block_start = self.first * self.block_len();
                let end = self.cum.min(block_start + block.buf.len() as u64);
                let data = block
                    .buf
                    .freeze()
                    .slice((self.written - block_start) as usize..(end - block_start) as usize);
                Some((self.written, data))
            }
            _ => None,
        };
        self.written = self.cum;
        self.clear();
        rest
    }

    /// Forget everything (the transfer ended).
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
        self.spare.clear();
        self.charged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Chunks in any order, with repeats, some offered before their block may be made:
        /// what comes out is the file, in order, each byte once, and the charge stays within
        /// the cap plus the in-order block.
        #[test]
        fn any_arrival_order_writes_the_file_once_in_order(
            chunk in 500u64..3000,
            size in 1u64..(3 * BLOCK_TARGET),
            keys in proptest::collection::vec(any::<u64>(), 1..400),
            cap_blocks in 1u64..6,
        ) {
            let file: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            let mut r = Reassembly::new(size);
            r.start(chunk, 0);
            let cap = cap_blocks * r.charge_of_block();
            let n = size.div_ceil(chunk);
            let mut order: Vec<u64> = keys.iter().map(|k| k % n).collect();
            order.extend(0..n); // every chunk at least once, at the end in order
            let mut out: Vec<u8> = Vec::new();
            for i in order {
                let (at, end) = (i * chunk, ((i + 1) * chunk).min(size));
                let data = &file[at as usize..end as usize];
                if end <= r.cum() {
                    continue; // the receiver counts these as duplicates before asking
                }
                let _ = put(&mut r, at, data, cap);
                prop_assert!(r.charged() <= cap + r.charge_of_block());
                while let Some((offset, bytes)) = r.take_write(cap) {
                    prop_assert_eq!(offset, out.len() as u64);
                    out.extend_from_slice(&bytes);
                }
            }
            prop_assert_eq!(r.cum(), size);
            prop_assert!(out == file);
        }
    }

    fn put(r: &mut Reassembly, offset: u64, data: &[u8], cap: u64) -> bool {
        match r.slot(offset, data.len()) {
            Place::Slot(s) => {
                s.copy_from_slice(data);
                r.fill(offset);
                true
            }
            Place::NoBlock => r.insert(offset, data, cap) == Insert::Kept,
            Place::Duplicate => false,
        }
    }

    fn writes(r: &mut Reassembly) -> Vec<(u64, Bytes)> {
        std::iter::from_fn(|| r.take_write(u64::MAX)).collect()
    }

    #[test]
    fn chunks_in_any_order_come_out_as_the_file_in_whole_blocks() {
        let chunk = 1000u64;
        let size = 3 * BLOCK_TARGET + 123;
        let file: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = Reassembly::new(size);
        r.start(chunk, 0);
        let n = size.div_ceil(chunk);
        // Odd chunks first (all wait), then the even ones backwards.
        let order = (0..n)
            .filter(|i| i % 2 == 1)
            .chain((0..n).filter(|i| i % 2 == 0).rev());
        let mut out = Vec::new();
        for i in order {
            let end = ((i + 1) * chunk).min(size) as usize;
            assert!(put(
                &mut r,
                i * chunk,
                &file[(i * chunk) as usize..end],
                u64::MAX
            ));
            out.extend(writes(&mut r));
        }
        assert_eq!(r.cum(), size);
        let mut at = 0;
        for (offset, data) in &out {
            assert_eq!(*offset, at);
            assert_eq!(&data[..], &file[at as usize..at as usize + data.len()]);
            at += data.len() as u64;
        }
        assert_eq!(at, size);
        assert!(out.len() <= 4, "one write per block: {}", out.len());
        assert!(r.blocks.is_empty());
        assert!(
            r.charged() <= SPARE_BLOCKS as u64 * r.block_len(),
            "only spares are left"
        );
    }

    #[test]
    fn a_chunk_held_already_is_a_duplicate_and_its_slot_is_not_offered_again() {
        let mut r = Reassembly::new(10_000);
        r.start(100, 0);
        assert!(put(&mut r, 200, &[1; 100], u64::MAX));
        assert_eq!(r.slot(200, 100), Place::Duplicate);
        assert_eq!(r.insert(200, &[1; 100], u64::MAX), Insert::Duplicate);
        assert_eq!(r.cum(), 0);
        assert!(put(&mut r, 0, &[2; 100], u64::MAX));
        assert!(put(&mut r, 100, &[3; 100], u64::MAX));
        assert_eq!(r.cum(), 300);
    }

    #[test]
    fn blocks_past_the_in_order_one_stay_within_the_cap() {
        let chunk = 1000u64;
        let size = 100 * BLOCK_TARGET;
        let mut r = Reassembly::new(size);
        r.start(chunk, 0);
        let per_block = BLOCK_TARGET.div_ceil(chunk) * chunk;
        let cap = 3 * r.charge_of_block();
        // One chunk in each of many blocks, none of them in order.
        let held = (1..50)
            .filter(|b| put(&mut r, b * per_block, &[5; 1000], cap))
            .count();
        assert_eq!(held, 3);
        assert!(r.charged() <= cap);
        // The in-order block is always allowed, even past the cap.
        assert!(put(&mut r, 0, &[5; 1000], cap));
        assert_eq!(r.charged(), 4 * r.charge_of_block());
    }

    #[test]
    fn a_resume_inside_a_chunk_writes_from_where_it_starts() {
        let size = 5_000u64;
        let file: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut r = Reassembly::new(size);
        r.start(1000, 2_500);
        for i in 2..5u64 {
            let at = (i * 1000) as usize;
            assert!(put(&mut r, i * 1000, &file[at..at + 1000], u64::MAX));
        }
        let out = writes(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 2_500);
        assert_eq!(&out[0].1[..], &file[2_500..]);
    }

    #[test]
    fn handed_on_blocks_are_reused_once_the_driver_dropped_them() {
        let chunk = 1000u64;
        let blocks = 200;
        let mut r = Reassembly::new(blocks * BLOCK_TARGET);
        r.start(chunk, 0);
        let mut at = 0;
        // The driver keeps the last two writes a while (a queued write, one being written).
        let mut in_driver = std::collections::VecDeque::new();
        while at < blocks * BLOCK_TARGET {
            let len = chunk.min(blocks * BLOCK_TARGET - at) as usize;
            assert!(put(&mut r, at, &vec![7; len], u64::MAX));
            at += chunk;
            while let Some(w) = r.take_write(u64::MAX) {
                in_driver.push_back(w);
                if in_driver.len() > 2 {
                    in_driver.pop_front();
                }
            }
        }
        assert_eq!(r.cum(), blocks * BLOCK_TARGET);
        assert!(
            r.fresh <= 4,
            "{} fresh buffers for {blocks} blocks",
            r.fresh
        );
    }

    #[test]
    fn a_slot_asked_for_and_never_filled_costs_no_memory_beyond_the_spares() {
        // What a forged datagram does: it asks for a slot, then fails authentication.
        let chunk = 1000u64;
        let mut r = Reassembly::new(100 * BLOCK_TARGET);
        r.start(chunk, 0);
        let mut at = 0;
        // The driver still holds three written blocks, then drops them: three spares.
        let mut held = Vec::new();
        while held.len() < 3 {
            assert!(put(&mut r, at, &[1; 1000], u64::MAX));
            at += chunk;
            held.extend(std::iter::from_fn(|| r.take_write(u64::MAX)));
        }
        drop(held);
        assert_eq!(r.spare.len(), 3);
        let before = r.charged();
        let fresh = r.fresh;
        let per_block = BLOCK_TARGET.div_ceil(chunk) * chunk;
        for b in 5..60u64 {
            let _ = r.slot(b * per_block, 1000);
        }
        assert_eq!(r.fresh, fresh, "nothing allocated");
        assert!(r.charged() <= before + 3 * 8 * r.chunks_per_block.div_ceil(64));
        assert_eq!(
            r.slot(60 * per_block, 1000),
            Place::NoBlock,
            "spares used up"
        );
    }

    #[test]
    fn spares_are_kept_only_within_the_cap() {
        let chunk = 1000u64;
        let mut r = Reassembly::new(10 * BLOCK_TARGET);
        r.start(chunk, 0);
        let per_block = BLOCK_TARGET.div_ceil(chunk);
        // Four whole blocks in order, handed on while the driver still holds every write
        // (no spare can be reused), with a cap that has room for one block.
        let cap = r.charge_of_block() + 100;
        let mut out = Vec::new();
        for i in 0..4 * per_block {
            assert!(put(&mut r, i * chunk, &[3; 1000], u64::MAX));
            out.extend(std::iter::from_fn(|| r.take_write(cap)));
        }
        assert_eq!(out.len(), 4);
        assert!(r.spare.len() <= 1, "{} spares", r.spare.len());
        assert!(r.charged() <= cap);
    }

    #[test]
    fn nothing_has_a_place_before_the_start_or_off_a_chunk_boundary() {
        let mut r = Reassembly::new(10_000);
        assert_eq!(r.insert(0, &[0; 100], u64::MAX), Insert::Duplicate);
        r.fill(0);
        assert_eq!(r.take_write(u64::MAX), None);
        assert_eq!(r.take_rest(), None);
        r.start(100, 0);
        assert_eq!(r.insert(50, &[0; 100], u64::MAX), Insert::Duplicate);
        assert_eq!(r.insert(0, &[0; 101], u64::MAX), Insert::Duplicate);
        assert_eq!(r.slot(0, 100), Place::NoBlock);
        assert_eq!(r.charged(), 0);
    }
}
