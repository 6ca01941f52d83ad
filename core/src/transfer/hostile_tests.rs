//! Everything a peer controls in a datagram is hostile: forged, replayed, truncated,
//! reordered, duplicated, from a new address, absurd offsets or sizes, a flood of tiny
//! datagrams. One test each: none panics, none corrupts or grows the file, none grows memory
//! without bound, and the honest transfer still arrives (or both sides say why not).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::datagram::{self, Ack, Body, Datagram, HoldReason, Offer};
use super::netem::NetemConfig;
use super::reassembly;
use super::tests::{
    Forger, ID, Pair, RECEIVER_ADDR, RECEIVER_KEY, SECRET, SENDER_ADDR, SENDER_KEY, hello, net,
};
use super::*;

const ATTACKER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 66)),
    6666,
);

fn receiver_key() -> EphemeralKey {
    EphemeralKey::from_bytes(RECEIVER_KEY)
}

fn sender_key() -> EphemeralKey {
    EphemeralKey::from_bytes(SENDER_KEY)
}

/// A receiver of transfer `id`, a `len`-byte file, that accepted it, took a forging sender's
/// `Hello` (1408-byte payloads) and `Start`: ready for data. Returns the forger too.
fn open_receiver_of(id: TransferId, len: u64, config: TransferConfig) -> (Receiver, Forger) {
    let mut r = Receiver::new(
        id,
        &SECRET,
        len,
        SENDER_ADDR,
        config,
        receiver_key(),
        tests::START,
    );
    r.accept(tests::START);
    let mut f = Forger::sender(id);
    let h = f.seal(hello(&f, len, 1408));
    assert!(r.handle_datagram(SENDER_ADDR, &h, tests::START).is_ok());
    let welcome = r.poll_transmit(tests::START).map(|t| t.contents);
    let Some(Ok(Datagram {
        body: Body::Welcome { public, .. },
        ..
    })) = welcome.map(|w| f.open(&w))
    else {
        panic!("the receiver welcomes the sender");
    };
    f.agree(public, len, 1408);
    let start = f.seal(Body::Start { offset: 0 });
    assert!(r.handle_datagram(SENDER_ADDR, &start, tests::START).is_ok());
    drain_receiver(&mut r);
    (r, f)
}

fn open_receiver(len: u64, config: TransferConfig) -> (Receiver, Forger) {
    open_receiver_of(ID, len, config)
}

/// Drain a receiver's outputs; returns the bytes it asked to write, in order.
fn drain_receiver(r: &mut Receiver) -> Vec<(u64, usize)> {
    let mut writes = Vec::new();
    while let Some(ev) = r.poll_event() {
        if let ReceiverEvent::Write { offset, data } = ev {
            writes.push((offset, data.len()));
        }
    }
    while r.poll_transmit(tests::START).is_some() {}
    writes
}

fn data(f: &mut Forger, pn: u64, offset: u64, payload: Bytes) -> Bytes {
    f.seal_pn(pn, Body::Data { offset, payload })
}

#[test]
fn forged_datagrams_are_counted_and_never_written() {
    let config = TransferConfig::default();
    let mut tap = Forger::receiver(ID);
    tap.agree_with_pair(300_000, &config);
    // The server knows the transfer secret; with a key pair of its own it still cannot seal
    // for the session the two clients agreed.
    let mut server = Forger::sender(ID);
    server.agree(
        EphemeralKey::from_bytes([9; 32]).public(),
        300_000,
        config.payload_size() as u32,
    );
    let mut p = Pair::lossy(300_000, net(101), net(102));
    let mut n = 0u64;
    p.tamper = Some(Box::new(move |d| {
        n += 1;
        if !n.is_multiple_of(3) {
            return d;
        }
        // Right id, right shape, wrong key, evil bytes.
        match tap.open(&d) {
            Ok(Datagram {
                pn,
                body: Body::Data { offset, payload },
                ..
            }) => server.seal_pn(
                pn,
                Body::Data {
                    offset,
                    payload: Bytes::from(vec![0xEE; payload.len()]),
                },
            ),
            _ => d,
        }
    }));
    p.run(60_000);
    p.assert_delivered();
    assert!(
        p.receiver.stats().rejected.unauthentic > 20,
        "{:?}",
        p.receiver.stats()
    );
}

#[test]
fn a_tampered_ciphertext_is_rejected_and_counted_and_the_file_still_arrives() {
    // One bit of the ciphertext of every fifth data datagram flipped on the wire.
    let mut p = Pair::lossy(400_000, net(117), net(118));
    let mut n = 0u64;
    p.tamper = Some(Box::new(move |d| {
        n += 1;
        if d.get(3) != Some(&datagram::Kind::Data.code()) || !n.is_multiple_of(5) {
            return d;
        }
        let mut v = d.to_vec();
        v[datagram::DATA_HEADER_LEN + 7] ^= 0x01;
        Bytes::from(v)
    }));
    p.run(60_000);
    p.assert_delivered();
    let s = p.receiver.stats();
    assert!(s.rejected.unauthentic >= 20, "{s:?}");
    assert_eq!(s.rejected.bad, 0, "{s:?}");
}

#[test]
fn replayed_datagrams_change_nothing_during_or_after_the_transfer() {
    let mut p = Pair::lossy(400_000, net(103), net(104));
    p.captured = Some(Vec::new());
    p.run(60_000);
    p.assert_delivered();
    let captured = p.captured.take().unwrap_or_default();
    assert!(captured.len() > 200);
    // Replay everything, three times over, from the sender's address and from another.
    let mut r = Receiver::new(
        ID,
        &SECRET,
        400_000,
        SENDER_ADDR,
        TransferConfig::default(),
        receiver_key(),
        tests::START,
    );
    r.accept(tests::START);
    let mut now = tests::START;
    let mut written = 0u64;
    for round in 0..3 {
        for d in &captured {
            now = now.plus_millis(1);
            let from = if round == 1 { ATTACKER } else { SENDER_ADDR };
            let _ = r.handle_datagram(from, d, now);
            r.handle_timeout(now);
            while let Some(ev) = r.poll_event() {
                if let ReceiverEvent::Write { offset, data } = ev {
                    assert_eq!(offset, written, "writes stay in file order");
                    written += data.len() as u64;
                }
            }
            while let Some(t) = r.poll_transmit(now) {
                assert!(
                    t.to == SENDER_ADDR || r.stats().challenges > 0,
                    "answers go to the presenter"
                );
            }
        }
    }
    assert!(written <= 400_000, "the file never grows: {written}");
    assert_eq!(r.peer(), SENDER_ADDR, "a replay never moves the answers");
    assert_eq!(r.stats().migrations, 0);
    // The replayed Hello, data and Fin of a finished transfer make a complete file again,
    // never a second or a longer one.
    assert!(r.stats().peak_buffered <= TransferConfig::default().receive_memory);
}

#[test]
fn truncated_datagrams_are_rejected_and_the_file_still_arrives() {
    let mut rng = ChaCha8Rng::seed_from_u64(105);
    let mut p = Pair::lossy(300_000, net(105), net(106));
    let mut n = 0u64;
    p.tamper = Some(Box::new(move |d| {
        n += 1;
        if !n.is_multiple_of(4) || d.len() < 2 {
            return d;
        }
        let keep = (rng.next_u64() as usize) % (d.len() - 1);
        d.slice(..keep)
    }));
    p.run(60_000);
    p.assert_delivered();
    let r = p.receiver.stats().rejected;
    assert!(r.bad + r.unauthentic > 10, "{:?}", p.receiver.stats());
}

#[test]
fn heavy_reordering_and_duplication_deliver_the_file() {
    let shaky = |seed| NetemConfig {
        duplicate: 0.3,
        reorder: 0.3,
        reorder_delay_ms: 40,
        jitter_ms: 20,
        ..net(seed)
    };
    let mut p = Pair::lossy(1 << 20, shaky(107), shaky(108));
    p.run(60_000);
    p.assert_delivered();
    let s = p.receiver.stats();
    assert!(s.duplicates > 50, "{s:?}");
}

#[test]
fn a_replayed_datagram_from_another_address_does_not_redirect_the_acks() {
    // An attacker replays every authentic data datagram from its own address, at once.
    let mut p = Pair::lossy(600_000, net(109), net(110));
    p.captured = Some(Vec::new());
    for _ in 0..400 {
        let before = p.captured.as_ref().map_or(0, Vec::len);
        let now = p.now;
        p.step();
        let replays: Vec<Bytes> = p.captured.as_ref().map_or(vec![], |c| c[before..].to_vec());
        for d in replays {
            let _ = p.receiver.handle_datagram(ATTACKER, &d, now);
        }
        p.run_for(2);
    }
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.receiver.peer(), SENDER_ADDR);
    assert_eq!(p.receiver.stats().migrations, 0);
    // Only challenges (unanswerable) went to the attacker, never an ACK.
    assert!(p.misdirected <= p.receiver.stats().challenges);
}

#[test]
fn a_sender_whose_address_changes_is_followed_after_it_answers_a_challenge() {
    // A NAT rebinds the presenter's port in the middle of the transfer.
    let mut p = Pair::lossy(2 << 20, net(111), net(112));
    p.run_until_received(600_000);
    let moved: SocketAddr = "127.0.0.1:5999".parse().unwrap_or(SENDER_ADDR);
    p.sender_addr = moved;
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.receiver.peer(), moved);
    assert_eq!(p.receiver.stats().migrations, 1);
}

#[test]
fn a_sender_behind_a_nat_that_maps_its_port_anew_is_followed_from_its_hello() {
    // The server saw the presenter at SENDER_ADDR; its datagrams come from another port.
    let mut p = Pair::lossy(300_000, net(115), net(116));
    let mapped: SocketAddr = "127.0.0.1:5777".parse().unwrap_or(SENDER_ADDR);
    p.sender_addr = mapped;
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.receiver.peer(), mapped);
    assert_eq!(p.receiver.stats().migrations, 1);
}

#[test]
fn a_challenge_relayed_from_another_address_is_not_answered() {
    let mut s = Sender::new(
        ID,
        &SECRET,
        10_000,
        RECEIVER_ADDR,
        TransferConfig::default(),
        sender_key(),
        tests::START,
    );
    while s.poll_transmit(tests::START).is_some() {}
    let mut f = Forger::receiver(ID);
    let challenge = f.seal(Body::Challenge { token: 7 });
    assert!(
        s.handle_datagram(ATTACKER, &challenge, tests::START)
            .is_ok()
    );
    assert!(
        s.poll_transmit(tests::START).is_none(),
        "no answer to a stranger"
    );
    assert!(
        s.handle_datagram(RECEIVER_ADDR, &challenge, tests::START)
            .is_ok()
    );
    let answer = s.poll_transmit(tests::START).map(|t| (t.to, t.contents));
    let Some((to, bytes)) = answer else {
        panic!("the receiver's own challenge is answered");
    };
    assert_eq!(to, RECEIVER_ADDR);
    assert_eq!(
        f.open(&bytes).map(|d| d.body),
        Ok(Body::Response { token: 7 })
    );
}

#[test]
fn absurd_offsets_abort_without_touching_the_file() {
    for (offset, len) in [
        (u64::MAX - 3, 1408usize), // overflows
        (10_000_000, 1408),        // beyond the end
        (1408 * 3 + 5, 1408),      // not on a chunk boundary
        (0, 0),                    // empty
        (0, 1000),                 // short but not the last
    ] {
        let (mut r, mut f) = open_receiver(100_000, TransferConfig::default());
        let d = data(&mut f, 1, offset, Bytes::from(vec![1; len]));
        assert!(r.handle_datagram(SENDER_ADDR, &d, tests::START).is_ok());
        let mut writes = Vec::new();
        let mut outcome = None;
        while let Some(ev) = r.poll_event() {
            match ev {
                ReceiverEvent::Write { offset, .. } => writes.push(offset),
                other => outcome = Some(other),
            }
        }
        assert!(writes.is_empty(), "offset {offset}: nothing written");
        assert_eq!(
            outcome,
            Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation)),
            "offset {offset}"
        );
        // The presenter is told at once.
        let told = r.poll_transmit(tests::START).map(|t| (t.to, t.contents));
        let Some((to, bytes)) = told else {
            panic!("offset {offset}: no Abort");
        };
        assert_eq!(to, SENDER_ADDR);
        assert_eq!(
            f.open(&bytes).map(|d| d.body),
            Ok(Body::Abort {
                reason: PeerReason::ProtocolViolation
            })
        );
    }
}

#[test]
fn absurd_sizes_in_a_hello_are_refused() {
    for (file_size, payload_size, reason) in [
        (99_999u64, 1408u32, AbortReason::SizeMismatch),
        (100_000, 0, AbortReason::ProtocolViolation),
        (100_000, 1, AbortReason::ProtocolViolation),
        (100_000, u32::MAX, AbortReason::ProtocolViolation),
    ] {
        let mut r = Receiver::new(
            ID,
            &SECRET,
            100_000,
            SENDER_ADDR,
            TransferConfig::default(),
            receiver_key(),
            tests::START,
        );
        let mut f = Forger::sender(ID);
        let h = f.seal(hello(&f, file_size, payload_size));
        let _ = r.handle_datagram(SENDER_ADDR, &h, tests::START);
        assert_eq!(
            r.poll_event(),
            Some(ReceiverEvent::Aborted(reason)),
            "{file_size} {payload_size}"
        );
    }
}

#[test]
fn a_weak_public_key_or_a_changed_hello_is_refused() {
    // A low-order point gives no shared secret; a second `Hello` with another key is not the
    // same sender.
    let mut r = Receiver::new(
        ID,
        &SECRET,
        100_000,
        SENDER_ADDR,
        TransferConfig::default(),
        receiver_key(),
        tests::START,
    );
    r.accept(tests::START);
    let mut f = Forger::sender(ID);
    let weak = f.seal(Body::Hello {
        public: [0; 32],
        file_size: 100_000,
        payload_size: 1408,
        protection: Protection::Encrypted,
    });
    let _ = r.handle_datagram(SENDER_ADDR, &weak, tests::START);
    assert_eq!(
        r.poll_event(),
        Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation))
    );

    let mut r = Receiver::new(
        ID,
        &SECRET,
        100_000,
        SENDER_ADDR,
        TransferConfig::default(),
        receiver_key(),
        tests::START,
    );
    let first = f.seal(hello(&f, 100_000, 1408));
    let _ = r.handle_datagram(SENDER_ADDR, &first, tests::START);
    let other = Forger::new_with_key(ID, [7; 32]);
    let mut other = other;
    let second = other.seal(hello(&other, 100_000, 1408));
    let _ = r.handle_datagram(SENDER_ADDR, &second, tests::START);
    assert_eq!(
        r.poll_event(),
        Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation))
    );
}

#[test]
fn a_sender_refuses_a_weak_key_and_offers_no_receiver_makes() {
    let len = 5 * tree::BLOCK;
    let bad = [
        Body::Welcome {
            public: [0; 32],
            offer: Offer::default(),
        },
        Body::Welcome {
            public: EphemeralKey::from_bytes(RECEIVER_KEY).public(),
            offer: Offer {
                block: 1000,
                cvs: vec![[0; 32]],
            },
        },
        Body::Welcome {
            public: EphemeralKey::from_bytes(RECEIVER_KEY).public(),
            offer: Offer {
                block: tree::BLOCK,
                cvs: vec![[0; 32]; 5],
            },
        },
    ];
    for welcome in bad {
        let mut s = Sender::new(
            ID,
            &SECRET,
            len,
            RECEIVER_ADDR,
            TransferConfig::default(),
            sender_key(),
            tests::START,
        );
        while s.poll_transmit(tests::START).is_some() {}
        let mut f = Forger::receiver(ID);
        let _ = s.handle_datagram(RECEIVER_ADDR, &f.seal(welcome.clone()), tests::START);
        assert_eq!(
            s.poll_event(),
            Some(SenderEvent::Aborted(AbortReason::ProtocolViolation)),
            "{welcome:?}"
        );
    }
}

#[test]
fn a_receiver_that_holds_the_sender_for_ever_is_given_up_on() {
    // Hold after Hold: the sender waits for a decision, but not beyond its bound.
    let config = TransferConfig::default();
    let mut s = Sender::new(
        ID,
        &SECRET,
        10_000,
        RECEIVER_ADDR,
        config.clone(),
        sender_key(),
        tests::START,
    );
    let mut f = Forger::receiver(ID);
    let mut now = tests::START;
    let limit = config.decision_timeout_ms + config.idle_timeout_ms;
    let mut outcome = None;
    while now.millis_since(tests::START) < limit + 5_000 && outcome.is_none() {
        while s.poll_transmit(now).is_some() {}
        let hold = f.seal(Body::Hold {
            reason: HoldReason::Asking,
        });
        let _ = s.handle_datagram(RECEIVER_ADDR, &hold, now);
        now = now.plus_millis(500);
        s.handle_timeout(now);
        outcome = s.poll_event();
    }
    assert_eq!(outcome, Some(SenderEvent::Aborted(AbortReason::NoAnswer)));
    assert!(now.millis_since(tests::START) >= config.decision_timeout_ms);
}

#[test]
fn absurd_acks_are_refused_and_cannot_make_the_sender_hold_the_file() {
    let len = 64u64 << 20;
    let config = TransferConfig::default();
    let mut s = Sender::new(
        ID,
        &SECRET,
        len,
        RECEIVER_ADDR,
        config.clone(),
        sender_key(),
        tests::START,
    );
    while s.poll_transmit(tests::START).is_some() {}
    let mut f = Forger::receiver(ID);
    f.agree_with_pair(len, &config);
    let welcome = f.seal(Body::Welcome {
        public: f.public(),
        offer: Offer::default(),
    });
    let _ = s.handle_datagram(RECEIVER_ADDR, &welcome, tests::START);
    let mut now = tests::START;
    let file = Bytes::from(vec![7u8; 1 << 20]);
    let mut held_max = 0u64;
    let mut read = 0u64;
    // A window as large as the file, and ACKs that never acknowledge anything.
    for _ in 0..200 {
        now = now.plus_millis(1);
        let ack = f.seal(Body::Ack(Ack {
            ack_delay_ms: 0,
            cum_offset: 0,
            window_end: u64::MAX,
            ranges: vec![(1_000_000, 2_000_000)],
        }));
        let _ = s.handle_datagram(RECEIVER_ADDR, &ack, now);
        s.handle_timeout(now);
        while let Some(ev) = s.poll_event() {
            if let SenderEvent::Read { offset, len } = ev {
                read = offset + len as u64;
                s.handle_file_data(offset, file.slice(..len), now);
            }
        }
        while s.poll_transmit(now).is_some() {}
        held_max = held_max.max(read);
    }
    assert!(
        held_max <= config.receive_window + config.read_size as u64,
        "the sender read {held_max} bytes ahead of any acknowledgement"
    );
    // An ACK claiming more than the file aborts.
    let ack = f.seal(Body::Ack(Ack {
        ack_delay_ms: 0,
        cum_offset: len + 1,
        window_end: len + 1,
        ranges: vec![],
    }));
    let _ = s.handle_datagram(RECEIVER_ADDR, &ack, now);
    let mut outcome = None;
    while let Some(ev) = s.poll_event() {
        outcome = Some(ev);
    }
    assert_eq!(
        outcome,
        Some(SenderEvent::Aborted(AbortReason::ProtocolViolation))
    );
}

#[test]
fn an_ack_with_more_ranges_than_any_receiver_sends_is_malformed() {
    // Hand-built, then sealed as a receiver would: the encoder itself would not write it.
    let mut body = BytesMut::new();
    body.put_u16(0);
    body.put_u64(0);
    body.put_u64(0);
    let n = datagram::MAX_ACK_RANGES as u16 + 1;
    body.put_u16(n);
    for i in 0..u64::from(n) {
        body.put_u64(2 * i);
        body.put_u64(2 * i);
    }
    let mut s = Sender::new(
        ID,
        &SECRET,
        1_000_000,
        RECEIVER_ADDR,
        TransferConfig::default(),
        sender_key(),
        tests::START,
    );
    while s.poll_transmit(tests::START).is_some() {}
    let mut f = Forger::receiver(ID);
    f.agree_with_pair(1_000_000, &TransferConfig::default());
    let welcome = f.seal(Body::Welcome {
        public: f.public(),
        offer: Offer::default(),
    });
    let _ = s.handle_datagram(RECEIVER_ADDR, &welcome, tests::START);
    let forged = f.seal_raw(datagram::Kind::Ack, &body);
    assert_eq!(
        s.handle_datagram(RECEIVER_ADDR, &forged, tests::START),
        Err(DatagramError::Malformed)
    );
    assert_eq!(s.stats().rejected.bad, 1);
}

#[test]
fn a_flood_of_tiny_authentic_datagrams_is_a_protocol_violation_not_memory() {
    let (mut r, mut f) = open_receiver(10_000_000, TransferConfig::default());
    let mut events = Vec::new();
    let mut answers = 0;
    // One-byte payloads, out of order so they would all be held.
    for i in 0..1_000u64 {
        let d = data(&mut f, i, 1408 * (2 + 2 * i), Bytes::from_static(b"x"));
        let _ = r.handle_datagram(SENDER_ADDR, &d, tests::START);
        events.extend(std::iter::from_fn(|| r.poll_event()));
        answers += std::iter::from_fn(|| r.poll_transmit(tests::START)).count();
    }
    assert_eq!(
        events,
        vec![ReceiverEvent::Aborted(AbortReason::ProtocolViolation)],
        "nothing is written; the transfer is refused"
    );
    assert_eq!(r.stats().buffered, 0, "nothing tiny is held");
    assert!(answers <= 2, "the flood is not answered in kind: {answers}");
}

#[test]
fn a_flood_of_unauthentic_tiny_datagrams_is_dropped_by_the_set() {
    let mut set = TransferSet::default();
    set.add_receiver(open_receiver(1_000_000, TransferConfig::default()).0);
    for i in 0..10_000u32 {
        // Right magic, version, kind and id; no valid seal.
        let mut v = b"HU\x02\x02".to_vec();
        v.extend_from_slice(&ID.0.to_be_bytes());
        v.extend_from_slice(&u64::from(i).to_be_bytes());
        v.extend_from_slice(&u64::from(i % 71 * 1408).to_be_bytes());
        v.extend_from_slice(&[0; 1424]);
        set.handle_datagram(ATTACKER, &Bytes::from(v), tests::START);
        set.handle_datagram(ATTACKER, &Bytes::from_static(b"x"), tests::START);
    }
    assert_eq!(set.stray(), 10_000, "the runt datagrams name no transfer");
    assert_eq!(set.memory_charged(), 0);
    assert!(
        set.poll_transmit(tests::START, 1).is_none(),
        "no answer to noise"
    );
}

#[test]
fn out_of_order_data_is_held_within_the_shared_memory_budget() {
    // Two receivers in one set; their senders send every other chunk of a whole window, the
    // most a receiver could be asked to hold. The set's budget caps both together.
    let config = TransferConfig {
        receive_window: 4 << 20,
        receive_memory: 1 << 20,
        ..TransferConfig::default()
    };
    let mut set = TransferSet::new(&config);
    let ids = [TransferId(1), TransferId(2)];
    let mut forgers = Vec::new();
    for &id in &ids {
        let (r, f) = open_receiver_of(id, 100 << 20, config.clone());
        set.add_receiver(r);
        forgers.push(f);
    }
    let payload = Bytes::from(vec![3u8; 1408]);
    let chunks = (4u64 << 20) / 1408;
    for i in (1..chunks).step_by(2) {
        for f in &mut forgers {
            let d = data(f, i, i * 1408, payload.clone());
            set.handle_datagram(SENDER_ADDR, &d, tests::START);
            assert!(set.memory_charged() <= config.receive_memory);
        }
    }
    // Blocks are charged whole: what stays unused is less than one block per receiver.
    assert!(
        set.memory_charged() > config.receive_memory - 2 * (reassembly::BLOCK_TARGET + 2048),
        "the budget is used, not wasted: {}",
        set.memory_charged()
    );
    while set.poll_event().is_some() {}
    while set.poll_transmit(tests::START, 1).is_some() {}
}

#[test]
fn a_receiver_holds_at_most_its_memory_cap_whatever_the_sender_sends() {
    // The default configuration, a sender that sends every other chunk of the window in the
    // smallest payload a Hello may announce: the charge, overhead included, stays capped.
    let config = TransferConfig::default();
    let len = 1u64 << 30;
    let payload = receiver::MIN_PAYLOAD;
    let mut r = Receiver::new(
        ID,
        &SECRET,
        len,
        SENDER_ADDR,
        config.clone(),
        receiver_key(),
        tests::START,
    );
    r.accept(tests::START);
    let mut f = Forger::sender(ID);
    let h = f.seal(hello(&f, len, payload as u32));
    let _ = r.handle_datagram(SENDER_ADDR, &h, tests::START);
    f.agree(receiver_key().public(), len, payload as u32);
    let start = f.seal(Body::Start { offset: 0 });
    let _ = r.handle_datagram(SENDER_ADDR, &start, tests::START);
    let bytes = Bytes::from(vec![9u8; payload as usize]);
    let chunks = config.receive_window / payload;
    for i in (1..chunks).step_by(2) {
        let d = data(&mut f, i, i * payload, bytes.clone());
        let _ = r.handle_datagram(SENDER_ADDR, &d, tests::START);
        if i % 4096 == 1 {
            while r.poll_transmit(tests::START).is_some() {}
        }
    }
    let s = r.stats();
    assert!(s.peak_buffered <= config.receive_memory, "{s:?}");
    assert!(s.peak_buffered < 64 << 20);
    assert!(!r.is_finished());
}

#[test]
fn replayed_handshake_and_start_datagrams_change_nothing() {
    // Every handshake datagram of a finished transfer, replayed many times into a fresh
    // transfer of the same id: no state, no answer but the handshake's own, no file.
    let (mut r, mut f) = open_receiver(1_000_000, TransferConfig::default());
    let start = f.seal(Body::Start { offset: 0 });
    let h = f.seal(hello(&f, 1_000_000, 1408));
    for _ in 0..1000 {
        assert!(r.handle_datagram(SENDER_ADDR, &start, tests::START).is_ok());
        assert!(r.handle_datagram(SENDER_ADDR, &h, tests::START).is_ok());
    }
    assert!(drain_receiver(&mut r).is_empty(), "nothing is written");
    assert!(!r.is_finished());
    // A `Start` elsewhere than where it started is a protocol violation.
    let moved = f.seal(Body::Start { offset: 1408 });
    let _ = r.handle_datagram(SENDER_ADDR, &moved, tests::START);
    assert_eq!(
        r.poll_event(),
        Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation))
    );
}

#[test]
fn the_machines_never_ask_to_be_woken_in_the_past() {
    // A driver that honours poll_timeout must not spin: after the timers ran at `now` and the
    // outputs were drained, every deadline is later than `now`.
    let mut p = Pair::lossy(
        500_000,
        NetemConfig {
            loss: 0.1,
            ..net(113)
        },
        net(114),
    );
    for _ in 0..20_000 {
        if p.sender.is_finished() && p.receiver.is_finished() {
            break;
        }
        p.now = p.now.plus_millis(1);
        p.sender.handle_timeout(p.now);
        p.receiver.handle_timeout(p.now);
        while p.step() {}
        for t in [p.sender.poll_timeout(), p.receiver.poll_timeout()]
            .into_iter()
            .flatten()
        {
            assert!(t > p.now, "a deadline at {t:?} is not after {:?}", p.now);
        }
    }
    p.assert_delivered();
}

#[test]
fn a_datagram_dropped_for_want_of_memory_is_not_acknowledged_so_it_comes_again() {
    // Room for the in-order block and one more: a chunk two blocks ahead finds none.
    let block = reassembly::BLOCK_TARGET.div_ceil(1408) * 1408;
    let config = TransferConfig {
        receive_memory: 2 * block + 4096,
        ..TransferConfig::default()
    };
    let (mut r, mut f) = open_receiver(10 * block, config);
    let payload = Bytes::from(vec![1u8; 1408]);
    let acked = |r: &mut Receiver, f: &Forger| -> Vec<(u64, u64)> {
        // The delayed ACK is due a tick later.
        let later = tests::START.plus_millis(5);
        r.handle_timeout(later);
        let mut ranges = Vec::new();
        while let Some(t) = r.poll_transmit(later) {
            if let Ok(Datagram {
                body: Body::Ack(a), ..
            }) = f.open(&t.contents)
            {
                ranges = a.ranges;
            }
        }
        ranges
    };
    // pn 1: the in-order block; pn 2: the next block; pn 3: two blocks ahead, no room.
    for (pn, offset) in [(1, 1408), (2, block), (3, 3 * block)] {
        let d = data(&mut f, pn, offset, payload.clone());
        assert!(r.handle_datagram(SENDER_ADDR, &d, tests::START).is_ok());
    }
    assert_eq!(r.stats().over_memory, 1);
    let ranges = acked(&mut r, &f);
    assert!(
        ranges.iter().all(|&(lo, hi)| !(lo..=hi).contains(&3)),
        "the dropped packet is not acknowledged: {ranges:?}"
    );
    assert!(ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&2)));
    // Once the gap fills and the blocks are written, the repeat is kept.
    for i in 0..(block / 1408) {
        if i != 1 {
            let d = data(&mut f, 100 + i, i * 1408, payload.clone());
            let _ = r.handle_datagram(SENDER_ADDR, &d, tests::START);
        }
    }
    while r.poll_event().is_some() {}
    let again = data(&mut f, 5_000, 3 * block, payload.clone());
    assert!(r.handle_datagram(SENDER_ADDR, &again, tests::START).is_ok());
    assert_eq!(r.stats().over_memory, 1, "{:?}", r.stats());
}

#[test]
fn a_flood_of_authentic_aborts_at_a_lingering_receiver_gets_bounded_answers_and_ends_at_its_linger()
{
    // Worst case of a straggler: a sender (or whoever holds its keys) that, once the file
    // was kept, sends ten authentic `Abort`s every millisecond, each with a new packet
    // number, for twice the receiver's linger.
    let len = 300_000;
    let config = TransferConfig::default();
    let mut p = Pair::new(len, config.clone(), net(211), net(212));
    let limit = p.now.plus_millis(60_000);
    while !p.receiver.is_lingering() && p.now < limit {
        p.run_for(1);
    }
    assert!(p.receiver.is_lingering(), "{:?}", p.receiver_outcome);
    assert_eq!(p.disk.saved.as_deref(), Some(&p.file[..]));
    let mut as_sender = Forger::sender(ID);
    as_sender.agree_with_pair(len as u64, &config);
    let began = p.now;
    let mut now = began;
    let mut pn = 10_000_000;
    let mut answers = 0u64;
    let mut finished_at = None;
    let peak_before = p.receiver.stats().peak_buffered;
    for _ in 0..2 * config.linger_ms {
        now = now.plus_millis(1);
        for _ in 0..10 {
            pn += 1;
            let abort = as_sender.seal_pn(
                pn,
                Body::Abort {
                    reason: PeerReason::Cancelled,
                },
            );
            let _ = p.receiver.handle_datagram(SENDER_ADDR, &abort, now);
        }
        p.receiver.handle_timeout(now);
        while let Some(t) = p.receiver.poll_transmit(now) {
            answers += 1;
            assert_eq!(t.to, SENDER_ADDR, "answers go to the presenter only");
            assert!(
                matches!(
                    as_sender.open(&t.contents).map(|d| d.body),
                    Ok(Body::Done { file_size }) if file_size == len as u64
                ),
                "a lingering receiver answers an Abort with Done: it has the file; got {:?}",
                as_sender.open(&t.contents)
            );
        }
        if let Some(ev) = p.receiver.poll_event() {
            panic!("the flood made the receiver act: {ev:?}");
        }
        if p.receiver.is_finished() {
            finished_at.get_or_insert(now);
        }
    }
    let finished_at = finished_at.expect("the receiver ends despite the flood");
    assert!(
        finished_at.millis_since(began) <= config.linger_ms,
        "it stays no longer than its linger: {} ms",
        finished_at.millis_since(began)
    );
    // One answer per 10 ms at most, and at least one: the sender that missed the first `Done`
    // still hears that the file arrived.
    assert!(answers >= 1);
    assert!(
        answers <= config.linger_ms / 10 + 1,
        "{answers} answers to 20,000 Aborts"
    );
    assert_eq!(
        p.receiver.poll_timeout(),
        None,
        "nothing left to wake it for"
    );
    assert_eq!(
        p.disk.saved.as_deref(),
        Some(&p.file[..]),
        "the file is untouched"
    );
    assert!(p.disk.part.is_none());
    assert_eq!(p.receiver.stats().peak_buffered, peak_before);
    assert_eq!(p.receiver.stats().buffered, 0);
}
