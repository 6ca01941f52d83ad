//! A seeded, Sans-IO network emulator for one direction of a path, after str0m's `netem`:
//! latency, jitter, random and burst (Gilbert–Elliott) loss, duplication, reordering, a
//! bottleneck rate with a tail-drop queue, and cuts (the link is down between two instants).
//!
//! Why here and not in a test folder: the core's transfer tests, the simulator (sim-tests) and
//! the benchmark all need the same lossy channel, and with a seed it replays exactly.
//!
//! Same shape as the machines: [`Netem::handle_input`] with `now`, [`Netem::poll_output`]
//! for datagrams due at `now`, [`Netem::poll_timeout`] for the next due instant.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::UnixMillis;

/// Burst loss as a two-state Markov chain (Gilbert–Elliott): a good state without extra loss
/// and a bad state that loses `loss_in_bad` of its datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    /// Per datagram, probability of going from good to bad.
    pub enter_bad: f64,
    /// Per datagram, probability of going from bad to good.
    pub leave_bad: f64,
    /// Loss probability while bad.
    pub loss_in_bad: f64,
}

/// What the emulated path does to datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct NetemConfig {
    /// One-way delay added to every datagram (ms).
    pub latency_ms: u64,
    /// Extra uniform random delay 0..=jitter (ms); reorders datagrams too.
    pub jitter_ms: u64,
    /// Probability that a datagram is lost at random.
    pub loss: f64,
    /// Burst loss on top of random loss.
    pub burst: Option<BurstLoss>,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay_ms`.
    pub reorder: f64,
    /// How long a reordered datagram is held back (ms).
    pub reorder_delay_ms: u64,
    /// Bottleneck rate in bytes per second (`None`: unlimited).
    pub rate: Option<u64>,
    /// Bytes the bottleneck queue holds before it drops arrivals (tail drop).
    pub queue_bytes: u64,
    /// Intervals `[from, until)` during which the link drops everything.
    pub cuts: Vec<(UnixMillis, UnixMillis)>,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for NetemConfig {
    fn default() -> Self {
        Self {
            latency_ms: 10,
            jitter_ms: 0,
            loss: 0.0,
            burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay_ms: 0,
            rate: None,
            queue_bytes: 256 << 10,
            cuts: Vec::new(),
            seed: 0,
        }
    }
}

/// What the emulator did, for tests to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetemStats {
    /// Datagrams handed in.
    pub input: u64,
    /// Datagrams handed out (duplicates included).
    pub delivered: u64,
    /// Lost at random or in a burst.
    pub lost: u64,
    /// Dropped because the bottleneck queue was full.
    pub queue_drops: u64,
    /// Dropped because the link was cut.
    pub cut_drops: u64,
    /// Extra copies made.
    pub duplicated: u64,
}

#[derive(Debug)]
struct InFlight {
    at: UnixMillis,
    seq: u64,
    /// One datagram, or several of `segment` bytes back to back (the last maybe shorter) that
    /// arrive together.
    datagram: Bytes,
    segment: usize,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of an emulated path.
#[derive(Debug)]
pub struct Netem {
    config: NetemConfig,
    rng: ChaCha8Rng,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    link_free_us: u64,
    bad: bool,
    stats: NetemStats,
}

impl Netem {
    /// An emulator with `config`, seeded by `config.seed`.
    pub fn new(config: NetemConfig) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            queue: BinaryHeap::new(),
            seq: 0,
            link_free_us: 0,
            bad: false,
            stats: NetemStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetemStats {
        self.stats
    }

    /// Change the configuration (e.g. cut or heal a link) from `now` on.
    pub fn config_mut(&mut self) -> &mut NetemConfig {
        &mut self.config
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// A datagram enters the path at `now`.
    pub fn handle_input(&mut self, datagram: Bytes, now: UnixMillis) {
        let len = datagram.len();
        self.handle_batch(&datagram, len, now);
    }

    /// A batch of datagrams enters the path at `now`: `segment_size` bytes each, back to
    /// back, the last maybe shorter (what a sender hands one UDP GSO send).
    ///
    /// Each datagram meets its own fate, drawn exactly as if it had come alone through
    /// [`Netem::handle_input`] (the same seed loses the same datagrams). What survives and
    /// arrives together stays together, as slices of `batch` (no copy):
    /// [`Netem::poll_batch`] hands such runs out whole, [`Netem::poll_output`] one datagram
    /// at a time.
    pub fn handle_batch(&mut self, batch: &Bytes, segment_size: usize, now: UnixMillis) {
        let seg = segment_size.max(1);
        // The run being gathered: arrival, sequence number, byte range of `batch`.
        let mut open: Option<(UnixMillis, u64, usize, usize)> = None;
        let mut at = 0;
        while at < batch.len() {
            let end = (at + seg).min(batch.len());
            let (first, second) = self.fate(end - at, now);
            match (first, open) {
                (Some(t), Some((o_at, _, _, o_end))) if t == o_at && o_end == at => {
                    if let Some(run) = open.as_mut() {
                        run.3 = end;
                    }
                }
                (Some(t), _) => {
                    self.close(batch, seg, open.take());
                    self.seq += 1;
                    open = Some((t, self.seq, at, end));
                }
                (None, _) => self.close(batch, seg, open.take()),
            }
            if let Some(t) = second {
                // A duplicate comes after its original: what follows starts a new run.
                self.close(batch, seg, open.take());
                self.seq += 1;
                self.queue.push(InFlight {
                    at: t,
                    seq: self.seq,
                    datagram: batch.slice(at..end),
                    segment: seg,
                });
            }
            at = end;
        }
        self.close(batch, seg, open);
    }

    /// Queue a gathered run of `batch`.
    fn close(&mut self, batch: &Bytes, seg: usize, run: Option<(UnixMillis, u64, usize, usize)>) {
        if let Some((at, seq, from, to)) = run {
            self.queue.push(InFlight {
                at,
                seq,
                datagram: batch.slice(from..to),
                segment: seg,
            });
        }
    }

    /// The fate of one datagram of `len` bytes entering at `now`: when it arrives (`None`:
    /// lost), and when its duplicate does, if it is duplicated.
    fn fate(&mut self, len: usize, now: UnixMillis) -> (Option<UnixMillis>, Option<UnixMillis>) {
        self.stats.input += 1;
        if self
            .config
            .cuts
            .iter()
            .any(|&(from, until)| now >= from && now < until)
        {
            self.stats.cut_drops += 1;
            return (None, None);
        }
        if let Some(b) = self.config.burst {
            let flip = if self.bad { b.leave_bad } else { b.enter_bad };
            if self.chance(flip) {
                self.bad = !self.bad;
            }
            if self.bad && self.chance(b.loss_in_bad) {
                self.stats.lost += 1;
                return (None, None);
            }
        }
        if self.chance(self.config.loss) {
            self.stats.lost += 1;
            return (None, None);
        }
        let now_us = now.0.saturating_mul(1000);
        let depart_us = match self.config.rate {
            Some(rate) => {
                let start = self.link_free_us.max(now_us);
                let backlog = (start - now_us).saturating_mul(rate) / 1_000_000;
                if backlog > self.config.queue_bytes {
                    self.stats.queue_drops += 1;
                    return (None, None);
                }
                let tx = (len as u64).saturating_mul(1_000_000).div_ceil(rate.max(1));
                self.link_free_us = start + tx;
                self.link_free_us
            }
            None => now_us,
        };
        let copies = if self.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        let mut arrivals = [None, None];
        for (copy, arrival) in arrivals.iter_mut().enumerate().take(copies) {
            let mut delay = self.config.latency_ms;
            if self.config.jitter_ms > 0 {
                delay += self.rng.next_u64() % (self.config.jitter_ms + 1);
            }
            if self.chance(self.config.reorder) {
                delay += self.config.reorder_delay_ms;
            }
            if copy == 1 {
                self.stats.duplicated += 1;
            }
            *arrival = Some(UnixMillis(depart_us.div_ceil(1000)).plus_millis(delay));
        }
        (arrivals[0], arrivals[1])
    }

    /// The next datagram that has arrived by `now`.
    pub fn poll_output(&mut self, now: UnixMillis) -> Option<Bytes> {
        let mut head = self.queue.peek_mut().filter(|f| f.at <= now)?;
        self.stats.delivered += 1;
        if head.datagram.len() > head.segment {
            let seg = head.segment;
            return Some(head.datagram.split_to(seg));
        }
        Some(PeekMut::pop(head).datagram)
    }

    /// The next run of datagrams that has arrived by `now`, as they entered (back to back,
    /// each of the returned size but the last), and that size.
    pub fn poll_batch(&mut self, now: UnixMillis) -> Option<(Bytes, usize)> {
        let head = self.queue.peek_mut().filter(|f| f.at <= now)?;
        let f = PeekMut::pop(head);
        let segments = f.datagram.len().div_ceil(f.segment.max(1));
        self.stats.delivered += segments as u64;
        let size = f.segment.min(f.datagram.len()).max(1);
        Some((f.datagram, size))
    }

    /// When the next datagram arrives.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.queue.peek().map(|f| f.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: NetemConfig, n: u64) -> (Netem, Vec<Bytes>) {
        let mut net = Netem::new(config);
        for i in 0..n {
            net.handle_input(Bytes::from(i.to_be_bytes().to_vec()), UnixMillis(i));
        }
        let mut out = Vec::new();
        while let Some(t) = net.poll_timeout() {
            while let Some(d) = net.poll_output(t) {
                out.push(d);
            }
        }
        (net, out)
    }

    /// `n` datagrams of `seg` bytes (the last `last` bytes), each carrying its index.
    fn batch(n: usize, seg: usize, last: usize) -> Bytes {
        let mut b = Vec::new();
        for i in 0..n {
            let len = if i + 1 == n { last } else { seg };
            b.extend((0..len).map(|_| i as u8));
        }
        Bytes::from(b)
    }

    fn drain(net: &mut Netem) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(t) = net.poll_timeout() {
            while let Some(d) = net.poll_output(t) {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn a_batch_meets_the_same_fate_as_its_datagrams_sent_one_by_one() {
        let c = NetemConfig {
            loss: 0.2,
            jitter_ms: 3,
            duplicate: 0.1,
            reorder: 0.05,
            reorder_delay_ms: 7,
            rate: Some(50_000_000),
            seed: 5,
            ..NetemConfig::default()
        };
        let (mut batched, mut single) = (Netem::new(c.clone()), Netem::new(c));
        for round in 0..50u64 {
            let b = batch(16, 100, 37);
            batched.handle_batch(&b, 100, UnixMillis(round));
            for d in b.chunks(100) {
                single.handle_input(Bytes::copy_from_slice(d), UnixMillis(round));
            }
        }
        assert_eq!(drain(&mut batched), drain(&mut single));
        assert_eq!(batched.stats(), single.stats());
        assert!(batched.stats().lost > 0 && batched.stats().duplicated > 0);
    }

    #[test]
    fn what_survives_of_a_batch_together_comes_out_as_runs_of_it_without_a_copy() {
        let mut net = Netem::new(NetemConfig {
            loss: 0.1,
            seed: 3,
            ..NetemConfig::default()
        });
        let b = batch(40, 1000, 1000);
        net.handle_batch(&b, 1000, UnixMillis(0));
        let lost = net.stats().lost as usize;
        assert!(lost > 0);
        let (mut datagrams, mut runs) = (Vec::new(), 0);
        while let Some((run, seg)) = net.poll_batch(UnixMillis(10)) {
            assert_eq!(seg, 1000);
            let at = run.as_ptr() as usize - b.as_ptr() as usize;
            assert!(
                at + run.len() <= b.len(),
                "a slice of the batch, not a copy"
            );
            runs += 1;
            datagrams.extend(run.chunks(seg).map(|d| d[0]));
        }
        assert_eq!(datagrams.len(), 40 - lost);
        assert!(
            datagrams.windows(2).all(|w| w[0] < w[1]),
            "in order: {datagrams:?}"
        );
        assert!(runs <= lost + 1, "{runs} runs for {lost} gaps");
        assert_eq!(net.stats().delivered as usize, 40 - lost);
    }

    #[test]
    fn same_seed_same_fate() {
        let c = NetemConfig {
            loss: 0.3,
            jitter_ms: 5,
            duplicate: 0.1,
            seed: 9,
            ..NetemConfig::default()
        };
        assert_eq!(run(c.clone(), 500).1, run(c, 500).1);
    }

    #[test]
    fn loss_rate_is_about_right() {
        let (net, out) = run(
            NetemConfig {
                loss: 0.2,
                seed: 1,
                ..NetemConfig::default()
            },
            10_000,
        );
        assert!(
            (1800..2200).contains(&net.stats().lost),
            "{:?}",
            net.stats()
        );
        assert_eq!(out.len() as u64, 10_000 - net.stats().lost);
    }

    #[test]
    fn a_cut_drops_everything_inside_it() {
        let c = NetemConfig {
            cuts: vec![(UnixMillis(100), UnixMillis(200))],
            ..NetemConfig::default()
        };
        let (net, out) = run(c, 300);
        assert_eq!(net.stats().cut_drops, 100);
        assert_eq!(out.len(), 200);
    }

    #[test]
    fn a_bottleneck_drops_what_its_queue_cannot_hold() {
        let c = NetemConfig {
            rate: Some(1000),
            queue_bytes: 80,
            ..NetemConfig::default()
        };
        let mut net = Netem::new(c);
        for _ in 0..100 {
            net.handle_input(Bytes::from_static(&[0; 8]), UnixMillis(0));
        }
        // 80 bytes of backlog is 10 datagrams, plus the one on the wire.
        assert_eq!(net.stats().queue_drops, 89);
    }
}
