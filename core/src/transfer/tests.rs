//! Transfers between a sender and a receiver over seeded lossy channels, in virtual time.
//!
//! Each test reads like a line of the specification: the file arrives byte-identical, or both
//! sides abort cleanly (and the `.part` file is gone). Time jumps to the next wake-up of any
//! machine or channel, so a ten-second timeout costs nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::datagram::{self, Body, Datagram, TagKey};
use super::netem::{BurstLoss, Netem, NetemConfig};
use super::*;
use crate::UnixMillis;

pub(super) const START: UnixMillis = UnixMillis(1_800_000_000_000);
pub(super) const SECRET: TransferSecret = TransferSecret([42; 32]);
pub(super) const ID: TransferId = TransferId(0x5eed);
/// Where the sender's client listens, as the server tells the receiver.
pub(super) const SENDER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5001);
/// Where the receiver's client listens, as the server tells the sender.
pub(super) const RECEIVER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5002);

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
            ReceiverEvent::Aborted(_) => self.part = None,
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
}

impl Pair {
    pub(super) fn new(
        len: usize,
        config: TransferConfig,
        fwd: NetemConfig,
        back: NetemConfig,
    ) -> Self {
        let file = file(len, fwd.seed ^ 0xf11e);
        Self {
            now: START,
            sender: Sender::new(
                ID,
                &SECRET,
                len as u64,
                RECEIVER_ADDR,
                config.clone(),
                START,
            ),
            receiver: Receiver::new(ID, &SECRET, len as u64, SENDER_ADDR, config, START),
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
        while let Some(t) = self.sender.poll_transmit(now) {
            moved = true;
            assert_eq!(
                t.to, RECEIVER_ADDR,
                "the sender sends where the server said"
            );
            let d = t.contents;
            if let Some(c) = self.captured.as_mut() {
                c.push(d.clone());
            }
            let d = match self.tamper.as_mut() {
                Some(t) => t(d),
                None => d,
            };
            self.fwd.handle_input(d, now);
        }
        while let Some(d) = self.fwd.poll_output(now) {
            moved = true;
            let _ = self.receiver.handle_datagram(self.sender_addr, &d, now);
        }
        while let Some(ev) = self.receiver.poll_event() {
            moved = true;
            self.disk.apply(&ev);
            if !matches!(ev, ReceiverEvent::Write { .. }) {
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
    // 32 KiB leaves (tree mode): 96 datagrams and a few retransmissions.
    assert!(
        p.sender.stats().datagrams_sent < 150,
        "{:?}",
        p.sender.stats()
    );
}

#[test]
fn tree_mode_survives_twenty_percent_loss_and_reordering() {
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

#[test]
fn tree_mode_still_catches_a_wrong_hash() {
    let key = TagKey::derive(&SECRET);
    let config = TransferConfig {
        max_datagram: MAX_DATAGRAM,
        ..TransferConfig::default()
    };
    let mut p = Pair::new(300_000, config, net(35), net(36));
    p.tamper = Some(Box::new(move |d| match datagram::decode(&d, &key) {
        Ok(Datagram {
            id,
            body: Body::Fin { file_size, .. },
        }) => datagram::encode(
            &Datagram {
                id,
                body: Body::Fin {
                    file_size,
                    hash: [1; HASH_LEN],
                },
            },
            &key,
        ),
        _ => d,
    }));
    p.run(60_000);
    assert_eq!(
        p.receiver_outcome,
        Some(ReceiverEvent::Aborted(AbortReason::HashMismatch))
    );
    assert!(p.disk.saved.is_none() && p.disk.part.is_none());
}

#[test]
fn tree_mode_small_files_use_the_plain_root() {
    for len in [1usize, 2048, 32 * 1024, 32 * 1024 + 1] {
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
    let key = TagKey::derive(&SECRET);
    let mut p = Pair::lossy(100_000, net(27), net(28));
    // Replace the `Fin`'s hash with another, correctly tagged: only the hash check can catch it.
    p.tamper = Some(Box::new(move |d| match datagram::decode(&d, &key) {
        Ok(Datagram {
            id,
            body: Body::Fin { file_size, .. },
        }) => datagram::encode(
            &Datagram {
                id,
                body: Body::Fin {
                    file_size,
                    hash: [0xAB; HASH_LEN],
                },
            },
            &key,
        ),
        _ => d,
    }));
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
        START,
    );
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
    let other_key = TagKey::derive(&TransferSecret([1; 32]));
    let mut corrupt_rng = ChaCha8Rng::seed_from_u64(31);
    let mut p = Pair::lossy(200_000, net(31), net(32));
    let mut n = 0u64;
    p.tamper = Some(Box::new(move |d| {
        n += 1;
        match n % 4 {
            // A forgery: right id, right shape, wrong key.
            1 => match datagram::decode(&d, &TagKey::derive(&SECRET)) {
                Ok(Datagram {
                    id,
                    body:
                        Body::Data {
                            pn,
                            offset,
                            payload,
                        },
                }) => {
                    let evil = Bytes::from(vec![0xEE; payload.len()]);
                    datagram::encode(
                        &Datagram {
                            id,
                            body: Body::Data {
                                pn,
                                offset,
                                payload: evil,
                            },
                        },
                        &other_key,
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
        p.receiver.stats().rejected.bad > 50,
        "{:?}",
        p.receiver.stats()
    );
}

mod robustness {
    //! Whatever an authentic (or not) peer sends, the machines neither panic nor break their
    //! memory bound: they abort or ignore.
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (0u64..3_000_000, any::<u32>()).prop_map(|(file_size, payload_size)| Body::Hello {
                file_size,
                payload_size
            }),
            (
                any::<u64>(),
                prop_oneof![
                    0u64..2_000_000,
                    any::<u64>(),
                    (0u64..40).prop_map(|i| i * 32_768)
                ],
                proptest::collection::vec(any::<u8>(), 0..3000)
            )
                .prop_map(|(pn, offset, p)| Body::Data {
                    pn,
                    offset,
                    payload: Bytes::from(p)
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
            let key = TagKey::derive(&SECRET);
            let mut r = Receiver::new(ID, &SECRET, 1_000_000, SENDER_ADDR, config, START);
            let mut now = START;
            let hello = Body::Hello { file_size: 1_000_000, payload_size: if large { 32_768 } else { 1408 } };
            for b in std::iter::once(hello).chain(bodies) {
                now = now.plus_millis(3);
                // In tree mode, tag aligned data the way a real sender would.
                let cv = match &b {
                    Body::Data { offset, payload, .. } if large => super::super::tree::leaf_cv(32_768, *offset, payload),
                    _ => None,
                };
                let bytes = datagram::encode_with(&Datagram { id: ID, body: b }, &key, cv.as_ref());
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
            let key = TagKey::derive(&SECRET);
            let data = file(1_000_000, 1);
            let mut s = Sender::new(ID, &SECRET, 1_000_000, RECEIVER_ADDR, config, START);
            let mut now = START;
            drain_sender(&mut s, &data, now);
            let first_ack = Body::Ack(datagram::Ack { ack_delay_ms: 0, cum_offset: 0, window_end: 1_000_000, ranges: vec![] });
            for b in std::iter::once(first_ack).chain(bodies) {
                now = now.plus_millis(3);
                let _ = s.handle_datagram(RECEIVER_ADDR, &datagram::encode(&Datagram { id: ID, body: b }, &key), now);
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
