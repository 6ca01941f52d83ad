//! Batches: a sender seals several datagrams for its peer back to back, for one send of the
//! runtime's socket (UDP GSO). Every test here also goes through [`tests::check_batch`],
//! which the pair applies to every batch: each segment a datagram of the transfer, all of
//! the segment size but the last, never more than the socket takes or 64 000 bytes.

use super::datagram;
use super::netem::NetemConfig;
use super::tests::{self, Pair, net};
use super::*;

/// A file that does not end on a chunk boundary: its last datagram is short.
const LEN: usize = (3 << 20) + 123;

fn pair(config: TransferConfig, segments: usize, loss: f64) -> Pair {
    let fwd = NetemConfig { loss, ..net(11) };
    let mut p = Pair::new(LEN, config, fwd, net(12));
    p.segments = segments;
    p
}

#[test]
fn a_fast_transfer_goes_out_in_batches_and_arrives_whole() {
    let mut p = pair(TransferConfig::default(), 16, 0.0);
    p.run(60_000);
    p.assert_delivered();
    let b = p.batches;
    assert!(b.multi > 0, "{b:?}");
    assert!(
        b.datagrams >= 4 * b.batches,
        "fewer than 4 datagrams a send on average: {b:?}"
    );
    assert_eq!(p.sender.stats().retransmissions, 0);
    assert_eq!(p.receiver.stats().duplicates, 0);
}

#[test]
fn a_batch_is_no_larger_than_the_socket_takes() {
    let mut p = pair(TransferConfig::default(), 3, 0.0);
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.batches.largest, 3, "{:?}", p.batches);
}

#[test]
fn a_batch_is_no_larger_than_the_configuration_allows() {
    let config = TransferConfig {
        batch_segments: 5,
        ..TransferConfig::default()
    };
    let mut p = pair(config, 64, 0.0);
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.batches.largest, 5, "{:?}", p.batches);
}

#[test]
fn a_batch_never_carries_more_than_one_gso_send_may() {
    // 64 segments of 1452 bytes would be 92 928 bytes: 44 is the most under 64 000.
    let mut p = pair(TransferConfig::default(), 64, 0.0);
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(
        p.batches.largest,
        MAX_BATCH_BYTES / MTU_DATAGRAM,
        "{:?}",
        p.batches
    );
}

#[test]
fn datagrams_larger_than_a_gso_send_go_one_by_one() {
    let config = TransferConfig {
        max_datagram: 65_000,
        ..TransferConfig::default()
    };
    let mut p = pair(config, 64, 0.0);
    p.run(60_000);
    p.assert_delivered();
    assert_eq!(p.batches.largest, 1, "{:?}", p.batches);
}

#[test]
fn batches_under_loss_are_repaired_datagram_by_datagram() {
    // The path loses each datagram of a batch on its own (netem per segment): the sender
    // repeats exactly the lost ones, and the file arrives whole.
    let mut p = pair(TransferConfig::default(), 16, 0.05);
    p.run(120_000);
    p.assert_delivered();
    let s = p.sender.stats();
    assert!(s.lost > 0 && s.retransmissions > 0, "{s:?}");
    assert!(p.batches.multi > 0, "{:?}", p.batches);
    assert_eq!(
        p.fwd.stats().lost + p.fwd.stats().delivered,
        p.batches.datagrams
    );
}

#[test]
fn batching_sends_the_same_datagrams_as_sending_one_at_a_time() {
    // Over a lossless path with the same seed, a batching sender and a one-by-one sender send
    // the same datagrams (numbers, offsets, sizes) in the same order: a batch changes how many
    // leave per send, never what leaves.
    let mut one = pair(TransferConfig::default(), 1, 0.0);
    let mut many = pair(TransferConfig::default(), 16, 0.0);
    one.captured = Some(Vec::new());
    many.captured = Some(Vec::new());
    one.run(60_000);
    many.run(60_000);
    one.assert_delivered();
    many.assert_delivered();
    assert_eq!(one.captured, many.captured);
    assert_eq!(one.batches.largest, 1);
    assert!(
        many.batches.batches < one.batches.batches / 4,
        "{:?}",
        many.batches
    );
}

#[test]
fn a_batch_of_one_is_the_datagram_as_it_is() {
    let b = Batch::single(tests::RECEIVER_ADDR, bytes::Bytes::from_static(b"abc"));
    assert_eq!(b.segments(), 1);
    assert_eq!(b.segment_size, 3);
    assert_eq!(b.datagrams().collect::<Vec<_>>(), vec![b.contents.clone()]);
    let empty = Batch::single(tests::RECEIVER_ADDR, bytes::Bytes::new());
    assert_eq!(empty.segments(), 0);
    assert_eq!(empty.datagrams().count(), 0);
}

#[test]
fn datagrams_sealed_one_after_another_join_into_a_batch_without_a_copy() {
    use super::datagram::{self, Body, reserve_pool};
    use super::keys::{Side, TransferKeys};
    let mut keys = TransferKeys::new(&tests::SECRET, tests::ID, Side::Sender);
    let mut pool = bytes::BytesMut::new();
    reserve_pool(&mut pool, 4 * 1452);
    let hold = || Body::Hold {
        reason: HoldReason::Asking,
    };
    let mut batch = keys.seal_mut(tests::ID, hold(), &mut pool).unwrap();
    let first = batch.clone().freeze();
    let start = batch.as_ptr();
    for _ in 0..3 {
        let next = keys.seal_mut(tests::ID, hold(), &mut pool).unwrap();
        // Sealed right where the previous one ended.
        assert_eq!(next.as_ptr(), batch.as_ptr().wrapping_add(batch.len()));
        batch.unsplit(next);
    }
    assert_eq!(batch.as_ptr(), start, "joined in place, not copied");
    let b = Batch {
        to: tests::RECEIVER_ADDR,
        segment_size: first.len(),
        contents: batch.freeze(),
    };
    assert_eq!(b.segments(), 4);
    let opener = TransferKeys::new(&tests::SECRET, tests::ID, Side::Receiver);
    let mut scratch = bytes::BytesMut::new();
    for d in b.datagrams() {
        assert_eq!(datagram::peek_transfer_id(&d), Ok(tests::ID));
        assert!(opener.open(&d, &mut scratch).is_ok());
    }
}

#[test]
fn a_pool_block_is_used_again_once_its_datagrams_were_sent() {
    use super::datagram::reserve_pool;
    use super::keys::{Side, TransferKeys};
    let mut keys = TransferKeys::new(&tests::SECRET, tests::ID, Side::Sender);
    let hold = || datagram::Body::Hold {
        reason: HoldReason::Asking,
    };
    let mut pool = bytes::BytesMut::new();
    reserve_pool(&mut pool, MAX_BATCH_BYTES);
    let block = pool.as_ptr() as usize..pool.as_ptr() as usize + pool.capacity();
    // A long session of batches, each dropped once sent: always the same block.
    let mut sealed = 0;
    for _ in 0..100 {
        reserve_pool(&mut pool, MAX_BATCH_BYTES);
        let batch: Vec<_> = (0..1_000)
            .map(|_| keys.seal_mut(tests::ID, hold(), &mut pool).unwrap())
            .collect();
        for d in &batch {
            assert!(block.contains(&(d.as_ptr() as usize)), "a fresh block");
            sealed += d.len();
        }
    }
    assert!(
        sealed > 3 * block.len(),
        "{sealed} bytes through a block of {}",
        block.len()
    );
    // A datagram still held (queued, in flight in an emulated path) keeps its block: the
    // pool moves on to a new one rather than write over it.
    let held = keys
        .seal_mut(tests::ID, hold(), &mut pool)
        .unwrap()
        .freeze();
    let copy = held.to_vec();
    for _ in 0..100 {
        reserve_pool(&mut pool, MAX_BATCH_BYTES);
        let _ = keys.seal_mut(tests::ID, hold(), &mut pool);
    }
    assert_eq!(held.to_vec(), copy, "a held datagram is never overwritten");
}
