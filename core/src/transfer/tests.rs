//! Transfers between a sender and a receiver over seeded lossy channels, in virtual time.
//!
//! Each test reads like a line of the specification: the file arrives byte-identical, or both
//! sides abort cleanly (and the `.part` file is gone). Time jumps to the next wake-up of any
//! machine or channel, so a ten-second timeout costs nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use bytes::BytesMut;

use super::datagram::{self, Body, Datagram, DatagramError};
use super::keys::{KeyPair, Side, Transcript, TransferKeys};
use super::netem::{BurstLoss, Netem, NetemConfig};
use super::*;
use crate::UnixMillis;

pub(super) const START: UnixMillis = UnixMillis(1_800_000_000_000);
/// Datagrams a [`Pair`]'s sender may batch into one send unless a test says otherwise: every
/// transfer test runs with batches, as the runtimes do.
pub(super) const PAIR_GSO_SEGMENTS: usize = 16;

/// Counters of the batches a sender emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchCounts {
    /// Batches.
    pub(super) batches: u64,
    /// Datagrams in them.
    pub(super) datagrams: u64,
    /// Batches of more than one datagram.
    pub(super) multi: u64,
    /// Datagrams in the largest batch.
    pub(super) largest: usize,
}

impl BatchCounts {
    fn count(&mut self, b: &Batch) {
        let n = b.segments();
        self.batches += 1;
        self.datagrams += n as u64;
        self.multi += u64::from(n > 1);
        self.largest = self.largest.max(n);
    }
}

/// What every batch must be: at most `max` datagrams and [`MAX_BATCH_BYTES`], each a
/// datagram of transfer `id` that parses, all `segment_size` bytes but the last (which may be
/// shorter).
pub(super) fn check_batch(b: &Batch, max: usize, id: TransferId) {
    let n = b.segments();
    assert!(
        n >= 1 && n <= max,
        "{n} datagrams in a batch of at most {max}"
    );
    assert!(
        n == 1 || b.contents.len() <= MAX_BATCH_BYTES,
        "a batch of {} bytes",
        b.contents.len()
    );
    for (i, d) in b.datagrams().enumerate() {
        if i + 1 < n {
            assert_eq!(d.len(), b.segment_size, "datagram {i} of {n}");
        } else {
            assert!(
                d.len() <= b.segment_size,
                "the last datagram is the longest"
            );
        }
        assert_eq!(
            datagram::peek_transfer_id(&d),
            Ok(id),
            "datagram {i} of {n}"
        );
    }
}
pub(super) const SECRET: TransferSecret = TransferSecret([42; 32]);
pub(super) const ID: TransferId = TransferId(0x5eed);
/// Where the sender's client listens, as the server tells the receiver.
pub(super) const SENDER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5001);
/// Where the receiver's client listens, as the server tells the sender.
pub(super) const RECEIVER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5002);

/// The random bytes of the pair's sender's and receiver's X25519 secrets.
pub(super) const SENDER_KEY: [u8; 32] = [1; 32];
pub(super) const RECEIVER_KEY: [u8; 32] = [2; 32];

/// One side of a transfer played by a test: it knows that side's secret key and the transfer
/// secret, so it seals and opens datagrams exactly as that side would — a tap on the wire
/// that holds the keys, or a hostile peer forging authentic datagrams.
pub(super) struct Forger {
    id: TransferId,
    secret: TransferSecret,
    side: Side,
    key: EphemeralKey,
    keys: TransferKeys,
    pool: BytesMut,
    next_pn: u64,
}

impl Forger {
    /// The sender of transfer `id` (with the pair's sender key).
    pub(super) fn sender(id: TransferId) -> Self {
        Self::new(id, Side::Sender, SENDER_KEY)
    }

    /// The receiver of transfer `id` (with the pair's receiver key).
    pub(super) fn receiver(id: TransferId) -> Self {
        Self::new(id, Side::Receiver, RECEIVER_KEY)
    }

    /// A sender of transfer `id` with a key of its own.
    pub(super) fn new_with_key(id: TransferId, key: [u8; 32]) -> Self {
        Self::new(id, Side::Sender, key)
    }

    pub(super) fn new(id: TransferId, side: Side, key: [u8; 32]) -> Self {
        Self::with_secret(id, &SECRET, side, key)
    }

    /// A side of transfer `id`, whose secret is `secret`, with secret key `key`.
    pub(super) fn with_secret(
        id: TransferId,
        secret: &TransferSecret,
        side: Side,
        key: [u8; 32],
    ) -> Self {
        Self {
            id,
            secret: secret.clone(),
            side,
            key: EphemeralKey::from_bytes(key),
            keys: TransferKeys::new(secret, id, side),
            pool: BytesMut::new(),
            next_pn: 1 << 40,
        }
    }

    /// Its public key.
    pub(super) fn public(&self) -> [u8; 32] {
        self.key.public()
    }

    /// Agree session keys with the peer whose public key is `theirs`, for a file of
    /// `file_size` bytes in payloads of `payload` bytes.
    pub(super) fn agree(&mut self, theirs: [u8; 32], file_size: u64, payload: u32) {
        let (sender_public, receiver_public) = match self.side {
            Side::Sender => (self.public(), theirs),
            Side::Receiver => (theirs, self.public()),
        };
        let t = Transcript {
            sender_public,
            receiver_public,
            file_size,
            payload_size: payload,
        };
        let k = KeyPair::session(
            &self.key,
            &theirs,
            &self.secret,
            self.id,
            &t,
            self.side,
            Protection::Encrypted,
        );
        if let Ok(k) = k {
            self.keys.set_session(k);
        }
    }

    /// Agree with the pair's other side (its fixed key), for a file of `file_size` bytes sent
    /// with `config`.
    pub(super) fn agree_with_pair(&mut self, file_size: u64, config: &TransferConfig) {
        let other = match self.side {
            Side::Sender => RECEIVER_KEY,
            Side::Receiver => SENDER_KEY,
        };
        let theirs = EphemeralKey::from_bytes(other).public();
        self.agree(theirs, file_size, config.payload_size() as u32);
    }

    /// Seal `body` under a packet number of its own (never one the real side uses).
    pub(super) fn seal(&mut self, body: Body) -> Bytes {
        self.next_pn += 1;
        self.seal_pn(self.next_pn, body)
    }

    /// Seal `body` under packet number `pn`.
    pub(super) fn seal_pn(&mut self, pn: u64, body: Body) -> Bytes {
        self.keys
            .seal_numbered(self.id, pn, body, &mut self.pool)
            .unwrap_or_default()
    }

    /// Seal `body`, raw bytes the encoder would never write, as a datagram of `kind`.
    pub(super) fn seal_raw(&mut self, kind: datagram::Kind, body: &[u8]) -> Bytes {
        self.next_pn += 1;
        let mut v = BytesMut::new();
        v.extend_from_slice(&datagram::MAGIC);
        v.extend_from_slice(&[datagram::VERSION, kind.code()]);
        v.extend_from_slice(&self.id.0.to_be_bytes());
        v.extend_from_slice(&self.next_pn.to_be_bytes());
        let head = v.len();
        v.extend_from_slice(body);
        let Some(keys) = self.keys.for_kind(kind) else {
            return Bytes::new();
        };
        let (h, b) = v.split_at_mut(head);
        let tag = keys.seal(self.next_pn, h, b);
        v.extend_from_slice(&tag);
        v.freeze()
    }

    /// Open a datagram the other side sent.
    pub(super) fn open(&self, bytes: &[u8]) -> Result<Datagram, DatagramError> {
        self.keys.open(bytes, &mut BytesMut::new())
    }
}

/// A `Hello` as the pair's sender would send it, for a file of `file_size` bytes.
pub(super) fn hello(f: &Forger, file_size: u64, payload: u32) -> Body {
    Body::Hello {
        public: f.public(),
        file_size,
        payload_size: payload,
        protection: Protection::Encrypted,
    }
}

pub(super) fn file(len: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

pub(super) fn net(seed: u64) -> NetemConfig {
    NetemConfig {
        latency_ms: 10,
        seed,
        ..NetemConfig::default()
    }
}

/// The receiver's side of the disk: the `.part` file and, after success, the saved file.
#[derive(Debug, Default)]
pub(super) struct Disk {
    pub(super) part: Option<Vec<u8>>,
    pub(super) saved: Option<Vec<u8>>,
    /// Keep the part when the transfer aborts (as a client does for an interruption), in
    /// `kept`, instead of deleting it.
    pub(super) keep_parts: bool,
    pub(super) kept: Option<Vec<u8>>,
}

impl Disk {
    pub(super) fn apply(&mut self, ev: &ReceiverEvent) {
        match ev {
            ReceiverEvent::Write { offset, data } => {
                let part = self.part.get_or_insert_with(Vec::new);
                let end = *offset as usize + data.len();
                if part.len() < end {
                    part.resize(end, 0);
                }
                part[*offset as usize..end].copy_from_slice(data);
            }
            ReceiverEvent::Complete { .. } => {
                self.saved = Some(self.part.take().unwrap_or_default())
            }
            ReceiverEvent::Aborted(_) => {
                let part = self.part.take();
                if self.keep_parts {
                    self.kept = part;
                }
            }
            ReceiverEvent::ReadPart { .. } => {}
        }
    }
}

/// A sender and a receiver joined by two emulated one-way paths.
pub(super) struct Pair {
    pub(super) now: UnixMillis,
    pub(super) file: Bytes,
    pub(super) sender: Sender,
    pub(super) receiver: Receiver,
    pub(super) fwd: Netem,
    pub(super) back: Netem,
    pub(super) disk: Disk,
    pub(super) sender_outcome: Option<SenderEvent>,
    pub(super) receiver_outcome: Option<ReceiverEvent>,
    pub(super) sender_done_at: Option<UnixMillis>,
    pub(super) receiver_done_at: Option<UnixMillis>,
    pub(super) fired_at: Option<UnixMillis>,
    /// Applied to every datagram on the forward path before the channel (tampering tests).
    pub(super) tamper: Option<Box<dyn FnMut(Bytes) -> Bytes>>,
    /// The address the sender's datagrams arrive from (a NAT may change it).
    pub(super) sender_addr: SocketAddr,
    /// Datagrams the receiver sent somewhere other than `sender_addr`: lost.
    pub(super) misdirected: u64,
    /// Every datagram the sender sent, when recording (for replay tests).
    pub(super) captured: Option<Vec<Bytes>>,
    /// Most datagrams the sender may batch into one send (as a socket with UDP GSO says).
    pub(super) segments: usize,
    /// What the sender's batches were like.
    pub(super) batches: BatchCounts,
}

impl Pair {
    pub(super) fn new(
        len: usize,
        config: TransferConfig,
        fwd: NetemConfig,
        back: NetemConfig,
    ) -> Self {
        let file = file(len, fwd.seed ^ 0xf11e);
        let mut receiver = Receiver::new(
            ID,
            &SECRET,
            len as u64,
            SENDER_ADDR,
            config.clone(),
            EphemeralKey::from_bytes(RECEIVER_KEY),
            START,
        );
        receiver.accept(START);
        Self {
            now: START,
            sender: Sender::new(
                ID,
                &SECRET,
                len as u64,
                RECEIVER_ADDR,
                config,
                EphemeralKey::from_bytes(SENDER_KEY),
                START,
            ),
            receiver,
            file,
            fwd: Netem::new(fwd),
            back: Netem::new(back),
            disk: Disk::default(),
            sender_outcome: None,
            receiver_outcome: None,
            sender_done_at: None,
            receiver_done_at: None,
            fired_at: None,
            tamper: None,
            sender_addr: SENDER_ADDR,
            misdirected: 0,
            captured: None,
            segments: PAIR_GSO_SEGMENTS,
            batches: BatchCounts::default(),
        }
    }

    pub(super) fn lossy(len: usize, fwd: NetemConfig, back: NetemConfig) -> Self {
        Self::new(len, TransferConfig::default(), fwd, back)
    }

    /// Move everything that can move at `now`; returns whether anything did.
    pub(super) fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        while let Some(ev) = self.sender.poll_event() {
            moved = true;
            match ev {
                SenderEvent::Read { offset, len } => {
                    let data = self.file.slice(offset as usize..offset as usize + len);
                    self.sender.handle_file_data(offset, data, now);
                }
                outcome => {
                    self.sender_done_at = Some(now);
                    self.sender_outcome = Some(outcome);
                }
            }
        }
        while let Some(b) = self.sender.poll_batch(now, self.segments) {
            moved = true;
            assert_eq!(
                b.to, RECEIVER_ADDR,
                "the sender sends where the server said"
            );
            check_batch(&b, self.segments, ID);
            self.batches.count(&b);
            for d in b.datagrams() {
                if let Some(c) = self.captured.as_mut() {
                    c.push(d.clone());
                }
            }
            match self.tamper.as_mut() {
                Some(t) => {
                    for d in b.datagrams() {
                        self.fwd.handle_input(t(d), now);
                    }
                }
                // Each datagram of the batch meets its own fate on the path.
                None => self.fwd.handle_batch(&b.contents, b.segment_size, now),
            }
        }
        while let Some(d) = self.fwd.poll_output(now) {
            moved = true;
            let _ = self.receiver.handle_datagram(self.sender_addr, &d, now);
        }
        while let Some(ev) = self.receiver.poll_event() {
            moved = true;
            self.disk.apply(&ev);
            if let ReceiverEvent::ReadPart { offset, len } = ev {
                let part = self.disk.part.clone().unwrap_or_default();
                match part.get(offset as usize..offset as usize + len) {
                    Some(bytes) => self.receiver.handle_part_data(offset, bytes, now),
                    None => self.receiver.part_unreadable(now),
                }
            } else if !matches!(ev, ReceiverEvent::Write { .. }) {
                self.receiver_done_at = Some(now);
                self.receiver_outcome = Some(ev);
            }
        }
        while let Some(t) = self.receiver.poll_transmit(now) {
            moved = true;
            if t.to == self.sender_addr {
                self.back.handle_input(t.contents, now);
            } else {
                self.misdirected += 1;
            }
        }
        while let Some(d) = self.back.poll_output(now) {
            moved = true;
            let _ = self.sender.handle_datagram(RECEIVER_ADDR, &d, now);
        }
        moved
    }

    /// Run until both machines are finished or `limit_ms` of virtual time passed.
    pub(super) fn run(&mut self, limit_ms: u64) {
        let deadline = START.plus_millis(limit_ms);
        while self.now < deadline {
            if self.step() {
                continue;
            }
            if self.sender.is_finished() && self.receiver.is_finished() {
                return;
            }
            let next = [
                self.sender.poll_timeout(),
                self.receiver.poll_timeout(),
                self.fwd.poll_timeout(),
                self.back.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return };
            if next <= self.now && self.fired_at != Some(self.now) {
                self.fired_at = Some(self.now);
            } else {
                self.now = next.max(self.now.plus_millis(1));
            }
            self.sender.handle_timeout(self.now);
            self.receiver.handle_timeout(self.now);
        }
    }

    pub(super) fn assert_delivered(&self) {
        assert_eq!(
            self.sender_outcome,
            Some(SenderEvent::Complete),
            "sender: {:?}",
            self.sender.stats()
        );
        assert!(
            matches!(self.receiver_outcome, Some(ReceiverEvent::Complete { .. })),
            "receiver: {:?} {:?}",
            self.receiver_outcome,
            self.receiver.stats()
        );
        let saved = self.disk.saved.as_deref().unwrap_or_default();
        assert!(
            saved == &self.file[..],
            "saved file differs from the original"
        );
        assert!(self.disk.part.is_none());
        let cap = TransferConfig::default().receive_memory;
        assert!(
            self.receiver.stats().peak_buffered <= cap,
            "receiver memory exceeded its cap"
        );
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.sender_done_at.unwrap_or(self.now).millis_since(START)
    }

    /// File bytes per second of virtual time.
    pub(super) fn goodput(&self) -> u64 {
        self.file.len() as u64 * 1000 / self.elapsed_ms().max(1)
    }
}

impl Pair {
    /// Run for `ms` of virtual time (or until both machines finished).
    pub(super) fn run_for(&mut self, ms: u64) {
        let until = self.now.plus_millis(ms);
        while self.now < until && !(self.sender.is_finished() && self.receiver.is_finished()) {
            if self.step() {
                continue;
            }
            self.now = self.now.plus_millis(1);
            self.sender.handle_timeout(self.now);
            self.receiver.handle_timeout(self.now);
        }
    }

    /// Run until the receiver wrote at least `bytes`.
    pub(super) fn run_until_received(&mut self, bytes: u64) {
        let limit = self.now.plus_millis(60_000);
        while self.receiver.stats().bytes_received < bytes && self.now < limit {
            self.run_for(1);
        }
    }
}

#[test]
fn lossless_path_delivers_the_file_byte_identical() {
    let mut p = Pair::lossy(1 << 20, net(1), net(2));
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.sender.stats().retransmissions, 0);
    assert_eq!(p.receiver.stats().duplicates, 0);
}

#[test]
fn five_percent_random_loss_delivers_the_file() {
    let mut p = Pair::lossy(
        1 << 20,
        NetemConfig {
            loss: 0.05,
            ..net(3)
        },
        NetemConfig {
            loss: 0.05,
            ..net(4)
        },
    );
    p.run(60_000);
    p.assert_delivered();
    assert!(p.sender.stats().retransmissions > 0);
}

#[test]
fn twenty_percent_random_loss_delivers_the_file() {
    let mut p = Pair::lossy(
        1 << 20,
        NetemConfig {
            loss: 0.2,
            ..net(5)
        },
        NetemConfig {
            loss: 0.2,
            ..net(6)
        },
    );
    p.run(60_000);
    p.assert_delivered();
}

#[test]
fn burst_loss_delivers_the_file() {
    let burst = BurstLoss {
        enter_bad: 0.02,
        leave_bad: 0.2,
        loss_in_bad: 0.9,
    };
    let mut p = Pair::lossy(
        1 << 20,
        NetemConfig {
            burst: Some(burst),
            ..net(7)
        },
        NetemConfig {
            burst: Some(burst),
            ..net(8)
        },
    );
    p.run(60_000);
    assert!(
        p.fwd.stats().lost > 20,
        "the channel should have lost bursts: {:?}",
        p.fwd.stats()
    );
    p.assert_delivered();
}

#[test]
fn duplication_and_reordering_deliver_the_file() {
    let shaky = |seed| NetemConfig {
        duplicate: 0.1,
        reorder: 0.1,
        reorder_delay_ms: 15,
        jitter_ms: 5,
        ..net(seed)
    };
    let mut p = Pair::lossy(1 << 20, shaky(9), shaky(10));
    p.run(60_000);
    p.assert_delivered();
    assert!(p.fwd.stats().duplicated > 0 && p.receiver.stats().duplicates > 0);
}

#[test]
fn everything_at_once_delivers_the_file() {
    let nasty = |seed| NetemConfig {
        loss: 0.1,
        burst: Some(BurstLoss {
            enter_bad: 0.01,
            leave_bad: 0.3,
            loss_in_bad: 0.8,
        }),
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay_ms: 30,
        jitter_ms: 10,
        rate: Some(4_000_000),
        queue_bytes: 100_000,
        ..net(seed)
    };
    let mut p = Pair::lossy(2 << 20, nasty(11), nasty(12));
    p.run(120_000);
    p.assert_delivered();
}

#[test]
fn a_three_second_cut_that_heals_still_delivers_the_file() {
    let cut = vec![(START.plus_millis(300), START.plus_millis(3_300))];
    let slow = |seed| NetemConfig {
        rate: Some(2_000_000),
        queue_bytes: 100_000,
        cuts: cut.clone(),
        ..net(seed)
    };
    let mut p = Pair::lossy(2 << 20, slow(13), slow(14));
    p.run(60_000);
    assert!(p.fwd.stats().cut_drops > 0, "the cut must hit the transfer");
    p.assert_delivered();
}

#[test]
fn a_cut_that_never_heals_makes_both_sides_abort_within_their_timeout() {
    let cut = vec![(START.plus_millis(300), UnixMillis(u64::MAX))];
    let slow = |seed| NetemConfig {
        rate: Some(2_000_000),
        cuts: cut.clone(),
        ..net(seed)
    };
    let mut p = Pair::lossy(2 << 20, slow(15), slow(16));
    p.run(60_000);
    assert_eq!(
        p.sender_outcome,
        Some(SenderEvent::Aborted(AbortReason::PeerSilent))
    );
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::PeerSilent))
    );
    // Datagrams queued at the bottleneck before the cut still arrive for a while after it.
    let idle = TransferConfig::default().idle_timeout_ms;
    let drained = 300 + NetemConfig::default().queue_bytes * 1000 / 2_000_000 + 20;
    assert!(
        p.sender_done_at
            .is_some_and(|t| t <= START.plus_millis(drained + idle + 100))
    );
    assert!(
        p.receiver_done_at
            .is_some_and(|t| t <= START.plus_millis(drained + idle + 100))
    );
    assert!(
        p.disk.part.is_none() && p.disk.saved.is_none(),
        "the .part file must be deleted"
    );
}

#[test]
fn a_receiver_that_never_answers_makes_the_sender_give_up() {
    let mut p = Pair::lossy(
        10_000,
        NetemConfig {
            loss: 1.0,
            ..net(17)
        },
        net(18),
    );
    p.run(60_000);
    assert_eq!(
        p.sender_outcome,
        Some(SenderEvent::Aborted(AbortReason::PeerSilent))
    );
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::PeerSilent))
    );
}

#[test]
fn a_slow_bottleneck_is_not_flooded() {
    // 1 MB/s with a 50 KB queue: a sender that ignored the path would lose most datagrams.
    let slow = |seed| NetemConfig {
        rate: Some(1_000_000),
        queue_bytes: 50_000,
        latency_ms: 20,
        ..net(seed)
    };
    let mut p = Pair::lossy(2 << 20, slow(19), slow(20));
    p.run(120_000);
    p.assert_delivered();
    let s = p.fwd.stats();
    assert!(
        s.queue_drops * 10 < s.input,
        "more than 10% of datagrams overflowed the queue: {s:?}"
    );
    assert!(
        p.goodput() > 600_000,
        "goodput {} B/s on a 1 MB/s path",
        p.goodput()
    );
}

#[test]
fn twenty_percent_loss_does_not_collapse_the_rate() {
    // Loss-based AIMD would crawl here; a delivery-rate controller keeps most of the path.
    let lossy = |seed| NetemConfig {
        rate: Some(4_000_000),
        queue_bytes: 100_000,
        loss: 0.2,
        latency_ms: 20,
        ..net(seed)
    };
    let mut p = Pair::lossy(4 << 20, lossy(21), lossy(22));
    p.run(120_000);
    p.assert_delivered();
    assert!(
        p.goodput() > 1_600_000,
        "goodput {} B/s on a 4 MB/s path with 20% loss",
        p.goodput()
    );
}

#[test]
fn large_datagrams_are_used_when_configured() {
    let config = TransferConfig {
        max_datagram: MAX_DATAGRAM,
        ..TransferConfig::default()
    };
    let mut p = Pair::new(
        3 << 20,
        config,
        NetemConfig {
            loss: 0.05,
            ..net(23)
        },
        net(24),
    );
    p.run(60_000);
    p.assert_delivered();
    // 65,463-byte payloads: 49 datagrams and a few retransmissions.
    assert!(
        p.sender.stats().datagrams_sent < 80,
        "{:?}",
        p.sender.stats()
    );
}

#[test]
fn large_datagrams_survive_twenty_percent_loss_and_reordering() {
    let config = TransferConfig {
        max_datagram: 9000,
        ..TransferConfig::default()
    };
    let shaky = |seed| NetemConfig {
        loss: 0.2,
        reorder: 0.1,
        reorder_delay_ms: 15,
        duplicate: 0.05,
        ..net(seed)
    };
    let mut p = Pair::new((2 << 20) + 12_345, config, shaky(33), shaky(34));
    p.run(60_000);
    p.assert_delivered();
}

/// A tap holding the pair's keys that replaces the `Fin`'s hash with `hash`, sealed as the
/// sender would: only the whole-file hash check can catch it.
fn wrong_fin(
    len: u64,
    config: &TransferConfig,
    hash: [u8; HASH_LEN],
) -> impl FnMut(Bytes) -> Bytes + use<> {
    let mut as_receiver = Forger::receiver(ID);
    as_receiver.agree_with_pair(len, config);
    let mut as_sender = Forger::sender(ID);
    as_sender.agree_with_pair(len, config);
    move |d| match as_receiver.open(&d) {
        Ok(Datagram {
            pn,
            body: Body::Fin { file_size, .. },
            ..
        }) => as_sender.seal_pn(pn, Body::Fin { file_size, hash }),
        _ => d,
    }
}

#[test]
fn large_datagrams_still_catch_a_wrong_hash() {
    let config = TransferConfig {
        max_datagram: MAX_DATAGRAM,
        ..TransferConfig::default()
    };
    let mut p = Pair::new(300_000, config.clone(), net(35), net(36));
    p.tamper = Some(Box::new(wrong_fin(300_000, &config, [1; HASH_LEN])));
    p.run(60_000);
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::HashMismatch))
    );
    assert!(p.disk.saved.is_none() && p.disk.part.is_none());
}

#[test]
fn files_around_the_hashing_block_size_arrive() {
    let block = tree::BLOCK as usize;
    for len in [1usize, 2048, block - 1, block, block + 1, 2 * block] {
        let config = TransferConfig {
            max_datagram: MAX_DATAGRAM,
            ..TransferConfig::default()
        };
        let mut p = Pair::new(len, config, net(37), net(38));
        p.run(60_000);
        p.assert_delivered();
    }
}

#[test]
fn an_empty_file_is_transferred() {
    let mut p = Pair::lossy(0, net(25), net(26));
    p.run(60_000);
    p.assert_delivered();
}

#[test]
fn a_wrong_hash_makes_both_sides_abort_and_discard() {
    let config = TransferConfig::default();
    let mut p = Pair::lossy(100_000, net(27), net(28));
    p.tamper = Some(Box::new(wrong_fin(100_000, &config, [0xAB; HASH_LEN])));
    p.run(60_000);
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::HashMismatch))
    );
    assert_eq!(
        p.sender_outcome,
        Some(SenderEvent::Aborted(AbortReason::PeerAborted(
            PeerReason::HashMismatch
        )))
    );
    assert!(p.disk.saved.is_none() && p.disk.part.is_none());
}

#[test]
fn a_size_other_than_announced_is_refused() {
    let mut p = Pair::lossy(10_000, net(29), net(30));
    p.receiver = Receiver::new(
        ID,
        &SECRET,
        9_999,
        SENDER_ADDR,
        TransferConfig::default(),
        EphemeralKey::from_bytes(RECEIVER_KEY),
        START,
    );
    p.receiver.accept(START);
    p.run(60_000);
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::SizeMismatch))
    );
    assert_eq!(
        p.sender_outcome,
        Some(SenderEvent::Aborted(AbortReason::PeerAborted(
            PeerReason::SizeMismatch
        )))
    );
}

#[test]
fn forged_stray_and_corrupted_datagrams_are_counted_and_never_written() {
    let config = TransferConfig::default();
    let mut corrupt_rng = ChaCha8Rng::seed_from_u64(31);
    let mut p = Pair::lossy(200_000, net(31), net(32));
    let mut tap = Forger::receiver(ID);
    tap.agree_with_pair(200_000, &config);
    // A forger that knows the transfer secret (the server, say) but not the sender's private
    // key: its own key pair gives other session keys.
    let mut forger = Forger::new(ID, Side::Sender, [3; 32]);
    forger.agree(
        EphemeralKey::from_bytes(RECEIVER_KEY).public(),
        200_000,
        1408,
    );
    let mut n = 0u64;
    p.tamper = Some(Box::new(move |d| {
        n += 1;
        match n % 4 {
            // A forgery: right id, right shape, wrong key.
            1 => match tap.open(&d) {
                Ok(Datagram {
                    pn,
                    body: Body::Data { offset, payload },
                    ..
                }) => {
                    let evil = Bytes::from(vec![0xEE; payload.len()]);
                    forger.seal_pn(
                        pn,
                        Body::Data {
                            offset,
                            payload: evil,
                        },
                    )
                }
                _ => d,
            },
            // A corrupted bit.
            2 => {
                let mut v = d.to_vec();
                let i = (corrupt_rng.next_u64() as usize) % v.len();
                v[i] ^= 0x10;
                Bytes::from(v)
            }
            _ => d,
        }
    }));
    p.run(60_000);
    p.assert_delivered();
    assert!(
        p.receiver.stats().rejected.unauthentic > 50,
        "{:?}",
        p.receiver.stats()
    );
}

#[test]
fn the_file_never_appears_on_the_wire() {
    // A file of a recognisable repeating pattern; every datagram the sender sends is searched.
    let len = 300_000usize;
    let pattern = b"huddle-pattern!";
    let mut p = Pair::lossy(len, net(43), net(44));
    p.file = Bytes::from(pattern.repeat(len / pattern.len() + 1)[..len].to_vec());
    p.captured = Some(Vec::new());
    p.run(60_000);
    p.assert_delivered();
    let captured = p.captured.take().unwrap_or_default();
    assert!(captured.len() > 200);
    for d in &captured {
        assert!(
            !d.windows(8).any(|w| pattern.windows(8).any(|q| q == w)),
            "a datagram carries the file in clear"
        );
    }
}

#[test]
fn the_same_keys_and_seeds_replay_the_same_datagrams_byte_for_byte() {
    // Sans-IO and seeded: the handshake, the keys and every sealed datagram follow from the
    // inputs alone.
    let run = || {
        let lossy = |seed| NetemConfig {
            loss: 0.05,
            ..net(seed)
        };
        let mut p = Pair::lossy(200_000, lossy(49), lossy(50));
        p.captured = Some(Vec::new());
        p.run(60_000);
        p.assert_delivered();
        p.captured.take().unwrap_or_default()
    };
    let (a, b) = (run(), run());
    assert!(a.len() > 100);
    assert_eq!(a, b);
}

#[test]
fn a_clear_sender_is_refused_by_an_encrypting_receiver() {
    let clear = TransferConfig {
        protection: Protection::Clear,
        ..TransferConfig::default()
    };
    let mut p = Pair::lossy(10_000, net(45), net(46));
    p.sender = Sender::new(
        ID,
        &SECRET,
        10_000,
        RECEIVER_ADDR,
        clear,
        EphemeralKey::from_bytes(SENDER_KEY),
        START,
    );
    p.run(60_000);
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation))
    );
    assert_eq!(
        p.sender_outcome,
        Some(SenderEvent::Aborted(AbortReason::PeerAborted(
            PeerReason::ProtocolViolation
        )))
    );
}

#[test]
fn two_clear_peers_transfer_for_the_benchmark() {
    let clear = TransferConfig {
        protection: Protection::Clear,
        ..TransferConfig::default()
    };
    let mut p = Pair::new(200_000, clear, net(47), net(48));
    p.run(60_000);
    p.assert_delivered();
}

mod robustness {
    //! Whatever an authentic (or not) peer sends, the machines neither panic nor break their
    //! memory bound: they abort or ignore.
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (any::<[u8; 32]>(), 0u64..3_000_000, any::<u32>()).prop_map(
                |(public, file_size, payload_size)| Body::Hello {
                    public,
                    file_size,
                    payload_size,
                    protection: Protection::Encrypted,
                }
            ),
            (
                prop_oneof![
                    0u64..2_000_000,
                    any::<u64>(),
                    (0u64..40).prop_map(|i| i * 1408),
                    (0u64..40).prop_map(|i| i * 65_463)
                ],
                proptest::collection::vec(any::<u8>(), 0..3000)
            )
                .prop_map(|(offset, p)| Body::Data {
                    offset,
                    payload: Bytes::from(p)
                }),
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                proptest::collection::vec(any::<[u8; 32]>(), 0..5)
            )
                .prop_map(|(public, block, cvs)| Body::Welcome {
                    public,
                    offer: datagram::Offer { block, cvs }
                }),
            any::<u64>().prop_map(|offset| Body::Start { offset }),
            any::<u8>().prop_map(|c| Body::Hold {
                reason: datagram::HoldReason::from_code(c)
            }),
            (0u64..3_000_000, any::<[u8; 32]>())
                .prop_map(|(file_size, hash)| Body::Fin { file_size, hash }),
            (
                any::<u16>(),
                prop_oneof![0u64..2_000_000, any::<u64>()],
                prop_oneof![0u64..40_000_000, any::<u64>()],
                proptest::collection::vec((0u64..500, 0u64..500), 0..20)
            )
                .prop_map(|(ack_delay_ms, cum_offset, window_end, r)| {
                    let ranges = r.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
                    Body::Ack(datagram::Ack {
                        ack_delay_ms,
                        cum_offset,
                        window_end,
                        ranges,
                    })
                }),
            (0u64..3_000_000).prop_map(|file_size| Body::Done { file_size }),
            any::<u8>().prop_map(|c| Body::Abort {
                reason: PeerReason::from_code(c)
            }),
        ]
    }

    fn drain_sender(s: &mut Sender, file: &Bytes, now: UnixMillis) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(ev) = s.poll_event() {
                moved = true;
                if let SenderEvent::Read { offset, len } = ev {
                    s.handle_file_data(
                        offset,
                        file.slice(offset as usize..offset as usize + len),
                        now,
                    );
                }
            }
            while s.poll_transmit(now).is_some() {
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn a_receiver_survives_any_authentic_datagrams(
            bodies in proptest::collection::vec(body(), 1..40),
            large in any::<bool>(),
        ) {
            let max_datagram = if large { MAX_DATAGRAM } else { MTU_DATAGRAM };
            let config = TransferConfig { max_datagram, ..TransferConfig::default() };
            let payload = config.payload_size() as u32;
            let mut r = Receiver::new(ID, &SECRET, 1_000_000, SENDER_ADDR, config, EphemeralKey::from_bytes(RECEIVER_KEY), START);
            r.accept(START);
            let mut f = Forger::sender(ID);
            f.agree(EphemeralKey::from_bytes(RECEIVER_KEY).public(), 1_000_000, payload);
            let mut now = START;
            let opening = [hello(&f, 1_000_000, payload), Body::Start { offset: 0 }];
            for b in opening.into_iter().chain(bodies) {
                now = now.plus_millis(3);
                let bytes = f.seal(b);
                let _ = r.handle_datagram(SENDER_ADDR, &bytes, now);
                r.handle_timeout(now);
                while r.poll_event().is_some() {}
                while r.poll_transmit(now).is_some() {}
                prop_assert!(r.stats().buffered <= TransferConfig::default().receive_memory);
            }
        }

        #[test]
        fn a_sender_survives_any_authentic_datagrams(
            bodies in proptest::collection::vec(body(), 1..40),
            large in any::<bool>(),
        ) {
            let max_datagram = if large { MAX_DATAGRAM } else { MTU_DATAGRAM };
            let config = TransferConfig { max_datagram, ..TransferConfig::default() };
            let data = file(1_000_000, 1);
            let mut f = Forger::receiver(ID);
            f.agree_with_pair(1_000_000, &config);
            let mut s = Sender::new(ID, &SECRET, 1_000_000, RECEIVER_ADDR, config, EphemeralKey::from_bytes(SENDER_KEY), START);
            let mut now = START;
            drain_sender(&mut s, &data, now);
            let opening = [
                Body::Welcome { public: f.public(), offer: datagram::Offer::default() },
                Body::Ack(datagram::Ack { ack_delay_ms: 0, cum_offset: 0, window_end: 1_000_000, ranges: vec![] }),
            ];
            for b in opening.into_iter().chain(bodies) {
                now = now.plus_millis(3);
                let _ = s.handle_datagram(RECEIVER_ADDR, &f.seal(b), now);
                s.handle_timeout(now);
                drain_sender(&mut s, &data, now);
            }
        }
    }
}

#[test]
fn five_percent_loss_keeps_most_of_a_fast_paths_goodput() {
    // A 300 MB/s path with no latency (loopback-like, in virtual time): random loss costs
    // repeats, not the rate.
    let run = |loss| {
        let fast = |seed| NetemConfig {
            latency_ms: 0,
            rate: Some(300_000_000),
            queue_bytes: 8 << 20,
            loss,
            ..net(seed)
        };
        let mut p = Pair::lossy(16 << 20, fast(41), fast(42));
        p.run(60_000);
        p.assert_delivered();
        p.goodput()
    };
    let (lossless, lossy) = (run(0.0), run(0.05));
    assert!(
        lossy * 100 >= lossless * 80,
        "5 % loss: {lossy} B/s against {lossless} B/s lossless"
    );
}
