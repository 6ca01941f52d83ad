//! Resuming, in virtual time: a transfer cut part-way keeps what arrived in order; the next
//! transfer of the same file offers it, the sender checks the offer against its file and sends
//! only the rest — or, where the kept part was damaged, from the first block that differs. The
//! file always arrives byte-identical.

use super::netem::NetemConfig;
use super::tests::{Pair, RECEIVER_KEY, SECRET, SENDER_ADDR, net};
use super::tree::BLOCK;
use super::*;

/// Run a transfer of `len` bytes until the receiver holds `fraction` of it, then cut it (the
/// receiver gives up as on a network cut, the sender as cancelled); returns what the receiver
/// kept.
fn cut_at(len: usize, fraction: f64, seed: u64) -> Vec<u8> {
    // A 40 MB/s path: about 40 kB a millisecond, so the cut lands where it is asked to.
    let paced = |s| NetemConfig {
        rate: Some(40_000_000),
        queue_bytes: 1 << 20,
        ..net(s)
    };
    let mut p = Pair::lossy(len, paced(seed), paced(seed + 1));
    // The same file as `resume`'s pair of the same seed.
    p.file = tests::file(len, net(seed).seed ^ 0xf11e);
    p.disk.keep_parts = true;
    let target = (len as f64 * fraction) as u64;
    let limit = tests::START.plus_millis(60_000);
    while p.receiver.stats().bytes_received < target && p.now < limit {
        p.run_for(1);
    }
    p.receiver.abort(AbortReason::PeerSilent, p.now);
    p.sender.abort(AbortReason::Cancelled, p.now);
    p.run(120_000);
    let kept = p.disk.kept.take().unwrap_or_default();
    assert!(p.disk.saved.is_none(), "cut before the end");
    kept
}

/// A second transfer of the same file (same seeds, so the same bytes) whose receiver holds
/// `kept`.
fn resume(len: usize, kept: Vec<u8>, seed: u64) -> Pair {
    let mut p = Pair::lossy(len, net(seed), net(seed + 1));
    p.receiver = Receiver::new(
        tests::ID,
        &SECRET,
        len as u64,
        SENDER_ADDR,
        TransferConfig::default(),
        EphemeralKey::from_bytes(RECEIVER_KEY),
        tests::START,
    );
    p.receiver.accept_resuming(kept.len() as u64, tests::START);
    p.disk.part = Some(kept);
    p.run(120_000);
    p
}

#[test]
fn a_transfer_cut_at_30_percent_resumes_from_what_the_receiver_holds() {
    let len = 12 << 20;
    let kept = cut_at(len, 0.30, 201);
    assert!(kept.len() as f64 >= len as f64 * 0.30, "{}", kept.len());
    let p = resume(len, kept.clone(), 201);
    p.assert_delivered();
    let from = p.sender.stats().resumed_from;
    assert_eq!(
        from,
        kept.len() as u64 / BLOCK * BLOCK,
        "every whole block kept"
    );
    assert_eq!(p.receiver.stats().resumed_from, from);
    let sent = p.sender.stats().datagrams_sent * p.sender.stats().file_size.min(1408);
    assert!(
        sent < (len as u64 - from) * 11 / 10,
        "only the rest was sent: {sent} bytes"
    );
}

#[test]
fn a_transfer_cut_at_99_percent_sends_only_the_last_blocks() {
    let len = 8 << 20;
    let kept = cut_at(len, 0.99, 203);
    let p = resume(len, kept.clone(), 203);
    p.assert_delivered();
    let from = p.sender.stats().resumed_from;
    // Never the whole file: the last bytes always travel (the hash's root needs them).
    assert_eq!(
        from,
        (kept.len() as u64).min(len as u64 - 1) / BLOCK * BLOCK
    );
    assert!(from >= 7 * BLOCK, "{from}");
    assert!(p.sender.stats().datagrams_sent < (BLOCK / 1408) * 12 / 10 + 20);
}

#[test]
fn a_damaged_part_is_not_trusted_and_the_damaged_blocks_are_fetched_again() {
    let len = 10 << 20;
    let mut kept = cut_at(len, 0.8, 205);
    assert!(kept.len() as u64 > 6 * BLOCK);
    // One byte of the fourth block is wrong on disk.
    let damaged_at = 3 * BLOCK as usize + 12_345;
    kept[damaged_at] ^= 0x5a;
    let p = resume(len, kept, 205);
    p.assert_delivered();
    let from = p.sender.stats().resumed_from;
    assert!(
        from <= 3 * BLOCK,
        "the damaged block must travel again: resumed from {from}"
    );
    assert!(from > 0, "the good blocks before it are kept: {from}");
}

#[test]
fn a_part_that_cannot_be_read_back_is_sent_again_whole() {
    let len = 4 << 20;
    let mut kept = cut_at(len, 0.6, 207);
    // The part on disk is shorter than the receiver believes: its reads fail.
    let claimed = kept.len() as u64;
    kept.truncate(BLOCK as usize / 2);
    let mut p = Pair::lossy(len, net(207), net(208));
    p.receiver = Receiver::new(
        tests::ID,
        &SECRET,
        len as u64,
        SENDER_ADDR,
        TransferConfig::default(),
        EphemeralKey::from_bytes(RECEIVER_KEY),
        tests::START,
    );
    p.receiver.accept_resuming(claimed, tests::START);
    p.disk.part = Some(kept);
    p.run(120_000);
    p.assert_delivered();
    assert_eq!(p.sender.stats().resumed_from, 0);
}

#[test]
fn resuming_survives_loss_and_reordering() {
    let len = 6 << 20;
    let kept = cut_at(len, 0.5, 209);
    let shaky = |seed| NetemConfig {
        loss: 0.1,
        reorder: 0.1,
        reorder_delay_ms: 15,
        duplicate: 0.05,
        ..net(seed)
    };
    let mut p = Pair::lossy(len, shaky(209), shaky(210));
    p.file = tests::file(len, net(209).seed ^ 0xf11e);
    p.receiver = Receiver::new(
        tests::ID,
        &SECRET,
        len as u64,
        SENDER_ADDR,
        TransferConfig::default(),
        EphemeralKey::from_bytes(RECEIVER_KEY),
        tests::START,
    );
    p.receiver.accept_resuming(kept.len() as u64, tests::START);
    p.disk.part = Some(kept);
    p.run(120_000);
    p.assert_delivered();
    assert!(p.sender.stats().resumed_from >= 2 * BLOCK);
}

#[test]
fn twenty_transfers_in_a_row_each_resumed_after_a_cut() {
    for n in 0..20u64 {
        let len = (3 << 20) + (n as usize) * 77_777;
        let fraction = 0.1 + (n as f64) * 0.045;
        let kept = cut_at(len, fraction, 300 + 2 * n);
        let p = resume(len, kept.clone(), 300 + 2 * n);
        p.assert_delivered();
        assert_eq!(
            p.sender.stats().resumed_from,
            (kept.len() as u64).min(len as u64 - 1) / BLOCK * BLOCK,
            "transfer {n}"
        );
    }
}

#[test]
fn a_forged_start_beyond_the_offer_is_a_protocol_violation() {
    // A sender (the forger) that claims the receiver's blocks agree further than offered.
    let len = 4 << 20;
    let kept = cut_at(len, 0.6, 211);
    let mut r = Receiver::new(
        tests::ID,
        &SECRET,
        len as u64,
        SENDER_ADDR,
        TransferConfig::default(),
        EphemeralKey::from_bytes(RECEIVER_KEY),
        tests::START,
    );
    r.accept_resuming(kept.len() as u64, tests::START);
    while let Some(ev) = r.poll_event() {
        if let ReceiverEvent::ReadPart { offset, len } = ev {
            r.handle_part_data(
                offset,
                &kept[offset as usize..offset as usize + len],
                tests::START,
            );
        }
    }
    let mut f = tests::Forger::sender(tests::ID);
    let h = f.seal(tests::hello(&f, len as u64, 1408));
    let _ = r.handle_datagram(SENDER_ADDR, &h, tests::START);
    let mut offered = 0;
    while let Some(t) = r.poll_transmit(tests::START) {
        if let Ok(datagram::Datagram {
            body: datagram::Body::Welcome { public, offer },
            ..
        }) = f.open(&t.contents)
        {
            offered = offer.len();
            f.agree(public, len as u64, 1408);
        }
    }
    assert!(offered >= BLOCK, "the receiver offered its blocks");
    for bad in [offered + BLOCK, offered / 2 + 1, u64::MAX] {
        let mut r2 = Receiver::new(
            tests::ID,
            &SECRET,
            len as u64,
            SENDER_ADDR,
            TransferConfig::default(),
            EphemeralKey::from_bytes(RECEIVER_KEY),
            tests::START,
        );
        r2.accept(tests::START);
        let _ = r2.handle_datagram(SENDER_ADDR, &h, tests::START);
        while r2.poll_transmit(tests::START).is_some() {}
        let start = f.seal(datagram::Body::Start { offset: bad });
        let _ = r2.handle_datagram(SENDER_ADDR, &start, tests::START);
        assert_eq!(
            r2.poll_event(),
            Some(ReceiverEvent::Aborted(AbortReason::ProtocolViolation)),
            "Start at {bad} with nothing offered"
        );
    }
}
