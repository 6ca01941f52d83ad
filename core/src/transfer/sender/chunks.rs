//! The chunks a sender read but the receiver has not acknowledged yet, by chunk number
//! (file offset / payload size): which new chunk may go next, which must go again.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug)]
struct Chunk {
    data: Bytes,
    acked: bool,
    /// The packet number of its latest transmission.
    latest_pn: Option<u64>,
    /// Queued for retransmission.
    queued: bool,
}

/// Chunks `base..base + held.len()`, oldest first; everything below `base` was acknowledged.
#[derive(Debug)]
pub(super) struct Chunks {
    payload: u64,
    file_size: u64,
    base: u64,
    held: VecDeque<Chunk>,
    next_new: u64,
    retx: VecDeque<u64>,
    /// Bytes of the acknowledged chunks in `held`: kept as they change, because progress is
    /// asked for after every input and summing a 16 MiB window of 1452-byte chunks each time
    /// cost more CPU under loss than the whole AEAD.
    acked_held_bytes: u64,
}

impl Chunks {
    /// No chunk read yet, of a file of `file_size` bytes in chunks of `payload`.
    pub(super) fn new(file_size: u64, payload: u64) -> Self {
        Self::starting_at(file_size, payload, 0)
    }

    /// No chunk read yet, and every chunk before `first` already held by the receiver (a
    /// resumed transfer).
    pub(super) fn starting_at(file_size: u64, payload: u64, first: u64) -> Self {
        Self {
            payload,
            file_size,
            base: first,
            held: VecDeque::new(),
            next_new: first,
            retx: VecDeque::new(),
            acked_held_bytes: 0,
        }
    }

    fn get(&self, index: u64) -> Option<&Chunk> {
        index
            .checked_sub(self.base)
            .and_then(|i| self.held.get(i as usize))
    }

    fn get_mut(&mut self, index: u64) -> Option<&mut Chunk> {
        index
            .checked_sub(self.base)
            .and_then(|i| self.held.get_mut(i as usize))
    }

    /// Number of chunks of the whole file.
    pub(super) fn count(&self) -> u64 {
        self.file_size.div_ceil(self.payload)
    }

    /// File offset of chunk `index`.
    pub(super) fn offset_of(&self, index: u64) -> u64 {
        index * self.payload
    }

    /// Add the next chunk read from the file.
    pub(super) fn push(&mut self, data: Bytes) {
        self.held.push_back(Chunk {
            data,
            acked: false,
            latest_pn: None,
            queued: false,
        });
    }

    /// Bytes read but never sent.
    pub(super) fn unsent_bytes(&self, read_end: u64) -> u64 {
        read_end.saturating_sub(self.next_new * self.payload)
    }

    /// Bytes read and held (sent or not) because they are not acknowledged yet.
    pub(super) fn held_bytes(&self, read_end: u64) -> u64 {
        read_end.saturating_sub(self.base * self.payload)
    }

    /// File bytes acknowledged: everything below the first chunk held, plus acknowledged
    /// chunks above it (or the receiver's cumulative offset, if higher).
    pub(super) fn acked_bytes(&self, peer_cum: u64) -> u64 {
        let below = (self.base * self.payload).min(self.file_size);
        (below + self.acked_held_bytes).max(peer_cum)
    }

    /// Whether the next new chunk is read and fits below `window_end`.
    pub(super) fn has_new(&self, window_end: u64) -> bool {
        self.get(self.next_new)
            .is_some_and(|c| self.next_new * self.payload + c.data.len() as u64 <= window_end)
    }

    /// Whether the next new chunk is read but held back by the window.
    pub(super) fn window_blocked(&self, window_end: u64) -> bool {
        self.get(self.next_new).is_some() && !self.has_new(window_end)
    }

    /// Whether a new chunk is read (window or not).
    pub(super) fn has_unsent(&self) -> bool {
        self.get(self.next_new).is_some()
    }

    /// Whether every chunk of the file was sent at least once.
    pub(super) fn all_sent(&self) -> bool {
        self.next_new >= self.count()
    }

    /// Take the next new chunk to send.
    pub(super) fn take_new(&mut self) -> Option<u64> {
        self.has_unsent().then(|| {
            self.next_new += 1;
            self.next_new - 1
        })
    }

    /// Whether a retransmission is queued.
    pub(super) fn has_retx(&self) -> bool {
        !self.retx.is_empty()
    }

    /// Take the next chunk to send again that is still unacknowledged.
    pub(super) fn take_retx(&mut self) -> Option<u64> {
        while let Some(i) = self.retx.pop_front() {
            let Some(c) = self.get_mut(i) else { continue };
            c.queued = false;
            if !c.acked {
                return Some(i);
            }
        }
        None
    }

    /// The packet `pn` carrying chunk `index` was lost: queue the chunk again, unless it
    /// arrived meanwhile, a newer transmission of it is out there, or it is queued already.
    pub(super) fn on_lost(&mut self, index: u64, pn: u64) {
        let queue = self
            .get(index)
            .is_some_and(|c| !c.acked && c.latest_pn == Some(pn) && !c.queued);
        if queue {
            if let Some(c) = self.get_mut(index) {
                c.queued = true;
            }
            self.retx.push_back(index);
        }
    }

    /// The oldest chunk sent but not acknowledged (what a probe repeats).
    pub(super) fn oldest_unacked(&self) -> Option<u64> {
        (self.base..self.next_new).find(|&i| self.get(i).is_some_and(|c| !c.acked))
    }

    /// Chunk `index` was acknowledged (by packet number).
    pub(super) fn mark_acked(&mut self, index: u64) {
        if let Some(c) = self.get_mut(index)
            && !c.acked
        {
            c.acked = true;
            let len = c.data.len() as u64;
            self.acked_held_bytes += len;
        }
    }

    /// Every byte below `cum_offset` arrived, whichever transmission carried it: forget the
    /// acknowledged chunks at the front.
    pub(super) fn ack_below(&mut self, cum_offset: u64) {
        let cum_chunks = if cum_offset >= self.file_size {
            self.count()
        } else {
            cum_offset / self.payload
        };
        let end = cum_chunks.min(self.base + self.held.len() as u64);
        for i in self.base..end {
            self.mark_acked(i);
        }
        while self.held.front().is_some_and(|c| c.acked) {
            if let Some(c) = self.held.pop_front() {
                self.acked_held_bytes = self.acked_held_bytes.saturating_sub(c.data.len() as u64);
            }
            self.base += 1;
        }
        self.next_new = self.next_new.max(self.base);
    }

    /// Record that chunk `index` goes out as packet `pn`; returns its bytes.
    pub(super) fn send(&mut self, index: u64, pn: u64) -> Bytes {
        match self.get_mut(index) {
            Some(c) => {
                c.latest_pn = Some(pn);
                c.data.clone()
            }
            None => Bytes::new(),
        }
    }

    /// Forget everything (the transfer ended).
    pub(super) fn clear(&mut self) {
        self.held.clear();
        self.retx.clear();
        self.acked_held_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    /// What `acked_bytes` must equal: summed the slow way.
    fn summed(c: &Chunks, peer_cum: u64) -> u64 {
        let below = (c.base * c.payload).min(c.file_size);
        let above: u64 = c
            .held
            .iter()
            .filter(|c| c.acked)
            .map(|c| c.data.len() as u64)
            .sum();
        (below + above).max(peer_cum)
    }

    #[test]
    fn acked_bytes_kept_as_they_change_equal_the_sum_over_every_chunk() {
        let (payload, file_size) = (1000u64, 1_000_500u64);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut c = Chunks::new(file_size, payload);
        let mut read = 0u64;
        let mut cum = 0u64;
        for step in 0..20_000 {
            match rng.next_u32() % 4 {
                0 if read < file_size => {
                    let len = payload.min(file_size - read);
                    c.push(Bytes::from(vec![0u8; len as usize]));
                    read += len;
                }
                1 => {
                    if let Some(i) = c.take_new() {
                        c.send(i, step);
                    }
                }
                2 if c.next_new > c.base => {
                    // Acknowledge some chunk sent, twice now and then.
                    let i = c.base + u64::from(rng.next_u32()) % (c.next_new - c.base);
                    c.mark_acked(i);
                    if step % 7 == 0 {
                        c.mark_acked(i);
                    }
                }
                _ => {
                    let first_unacked = c.oldest_unacked().map_or(read, |i| i * payload);
                    cum = cum.max(first_unacked.min(read));
                    c.ack_below(cum);
                }
            }
            assert_eq!(c.acked_bytes(cum), summed(&c, cum), "step {step}");
        }
        c.clear();
        assert_eq!(c.acked_held_bytes, 0);
    }
}
