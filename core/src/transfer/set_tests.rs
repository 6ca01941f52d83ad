//! Several transfers on one socket: a [`TransferSet`] per node, seeded lossy links between
//! them, virtual time. Long sessions (many transfers in a row on one set), both directions at
//! once, many at once on one socket, and new transfers right after failed ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::datagram::{self, Body, Offer};
use super::keys::Side;
use super::netem::{Netem, NetemConfig};
use super::tests::{Disk, Forger, file, net};
use super::*;
use crate::UnixMillis;

const START: UnixMillis = UnixMillis(1_800_000_000_000);
const SECRET: TransferSecret = TransferSecret([42; 32]);

fn addr(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000 + n as u16))
}

fn secret(id: u64) -> TransferSecret {
    TransferSecret(*blake3::hash(&id.to_be_bytes()).as_bytes())
}

/// The secret bytes of one side's X25519 key for transfer `id`.
fn key_bytes(id: u64, side: Side) -> [u8; 32] {
    let tag = if side == Side::Sender { b"s" } else { b"r" };
    *blake3::hash(&[&id.to_be_bytes()[..], tag].concat()).as_bytes()
}

fn key(id: u64, side: Side) -> EphemeralKey {
    EphemeralKey::from_bytes(key_bytes(id, side))
}

/// An accepting receiver of transfer `id`.
fn receiver(
    id: u64,
    len: u64,
    from: SocketAddr,
    config: TransferConfig,
    now: UnixMillis,
) -> Receiver {
    let mut r = Receiver::new(
        TransferId(id),
        &secret(id),
        len,
        from,
        config,
        key(id, Side::Receiver),
        now,
    );
    r.accept(now);
    r
}

/// A client: one socket address, one transfer set, the files it sends and receives.
struct Node {
    addr: SocketAddr,
    set: TransferSet,
    sources: BTreeMap<TransferId, Bytes>,
    disks: BTreeMap<TransferId, Disk>,
    outcomes: BTreeMap<TransferId, SetEvent>,
}

/// Nodes joined by one seeded one-way path per ordered pair.
struct Mesh {
    now: UnixMillis,
    nodes: Vec<Node>,
    links: BTreeMap<(usize, usize), Netem>,
    /// Most datagrams a node's socket takes per millisecond (`None`: all it is given), so
    /// transfers on one socket compete for it.
    socket_budget: Option<usize>,
    /// Which transfer each datagram node 0 sent belonged to, in order.
    node0_sent: Vec<TransferId>,
    /// Files of transfers, by id, to check what arrived.
    originals: BTreeMap<TransferId, Bytes>,
    /// Most datagrams a node's socket sends at once (UDP GSO); 1 unless a test says so.
    segments: usize,
    /// Where each transfer's presenter and audience are, to check every batch's destination.
    routes: BTreeMap<TransferId, (usize, usize)>,
    /// Batches sent that carried more than one datagram.
    multi_batches: u64,
}

impl Mesh {
    fn new(n: usize, link: impl Fn(usize, usize) -> NetemConfig) -> Self {
        let mut links = BTreeMap::new();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    links.insert((a, b), Netem::new(link(a, b)));
                }
            }
        }
        Self {
            now: START,
            nodes: (0..n)
                .map(|i| Node {
                    addr: addr(i),
                    set: TransferSet::default(),
                    sources: BTreeMap::new(),
                    disks: BTreeMap::new(),
                    outcomes: BTreeMap::new(),
                })
                .collect(),
            links,
            socket_budget: None,
            node0_sent: Vec::new(),
            originals: BTreeMap::new(),
            segments: 1,
            routes: BTreeMap::new(),
            multi_batches: 0,
        }
    }

    fn lossless(n: usize) -> Self {
        Self::new(n, |a, b| net((a * 16 + b) as u64))
    }

    /// Start transfer `id` of `len` bytes from node `from` to node `to`, as the server's
    /// handshake would: both get the id and the secret, the presenter the audience's address.
    fn start(&mut self, id: u64, from: usize, to: usize, len: usize) -> TransferId {
        self.start_with(id, from, to, len, TransferConfig::default())
    }

    fn start_with(
        &mut self,
        id: u64,
        from: usize,
        to: usize,
        len: usize,
        config: TransferConfig,
    ) -> TransferId {
        let tid = TransferId(id);
        let data = file(len, id);
        let now = self.now;
        let (from_addr, to_addr) = (self.nodes[from].addr, self.nodes[to].addr);
        let sender = Sender::new(
            tid,
            &secret(id),
            len as u64,
            to_addr,
            config.clone(),
            key(id, Side::Sender),
            now,
        );
        self.nodes[from].set.add_sender(sender);
        self.nodes[from].sources.insert(tid, data.clone());
        let receiver = receiver(id, len as u64, from_addr, config, now);
        self.nodes[to].set.add_receiver(receiver);
        self.nodes[to].disks.insert(tid, Disk::default());
        self.originals.insert(tid, data);
        self.routes.insert(tid, (from, to));
        tid
    }

    /// Move everything that can move at `now`; returns whether anything did.
    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            drain_events(node, now, &mut moved);
            let mut budget = self.socket_budget.unwrap_or(usize::MAX);
            while budget > 0 {
                let Some(t) = node.set.poll_transmit(now, self.segments) else {
                    break;
                };
                budget -= 1;
                moved = true;
                let to = (t.to.port() - 4000) as usize;
                assert!(
                    t.segments() <= self.segments,
                    "a batch larger than the socket"
                );
                self.multi_batches += u64::from(t.segments() > 1);
                // One transfer per batch, and it goes where that transfer's peer is.
                let ids: Vec<_> = t
                    .datagrams()
                    .map(|d| datagram::peek_transfer_id(&d))
                    .collect();
                if let Some(Ok(first)) = ids.first() {
                    assert!(ids.iter().all(|id| id == &Ok(*first)), "{ids:?}");
                    if let Some(&(from, dest)) = self.routes.get(first) {
                        let peer = if i == from { dest } else { from };
                        assert_eq!(to, peer, "a batch of {first} sent to the wrong peer");
                    }
                    if i == 0 {
                        self.node0_sent
                            .extend(std::iter::repeat_n(*first, ids.len()));
                    }
                }
                if let Some(link) = self.links.get_mut(&(i, to)) {
                    link.handle_batch(&t.contents, t.segment_size, now);
                }
            }
            drain_events(node, now, &mut moved);
            node.set.remove_finished();
        }
        for (&(a, b), link) in self.links.iter_mut() {
            while let Some(d) = link.poll_output(now) {
                moved = true;
                let from = self.nodes[a].addr;
                self.nodes[b].set.handle_datagram(from, &d, now);
            }
        }
        moved
    }

    /// Advance to the next wake-up of any set or link (at least 1 ms when a socket budget
    /// holds datagrams back) and run the timers.
    fn tick(&mut self) -> bool {
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.set.poll_timeout())
            .chain(self.links.values().filter_map(Netem::poll_timeout))
            .min();
        let Some(next) = next else { return false };
        let next = if self.socket_budget.is_some() {
            next.min(self.now.plus_millis(1))
        } else {
            next
        };
        self.now = next.max(self.now.plus_millis(1));
        for n in &mut self.nodes {
            n.set.handle_timeout(self.now);
        }
        true
    }

    /// Run until `done` holds (checked between steps) or `limit_ms` of virtual time passed.
    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Mesh) -> bool) {
        let deadline = self.now.plus_millis(limit_ms);
        while self.now < deadline && !done(self) {
            if !self.step() && !self.tick() {
                return;
            }
        }
    }

    /// Run for `ms` of virtual time, a millisecond at a time.
    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms {
            while self.step() {}
            self.now = self.now.plus_millis(1);
            for n in &mut self.nodes {
                n.set.handle_timeout(self.now);
            }
        }
    }

    /// Run until transfer `id` has an outcome on both sides.
    fn finish(&mut self, id: TransferId, from: usize, to: usize) {
        self.run_until(120_000, |m| {
            m.nodes[from].outcomes.contains_key(&id) && m.nodes[to].outcomes.contains_key(&id)
        });
    }

    fn assert_delivered(&self, id: TransferId, from: usize, to: usize) {
        assert_eq!(
            self.nodes[from].outcomes.get(&id),
            Some(&SetEvent::Sender(SenderEvent::Complete)),
            "sender of {id}"
        );
        assert!(
            matches!(
                self.nodes[to].outcomes.get(&id),
                Some(SetEvent::Receiver(ReceiverEvent::Complete { .. }))
            ),
            "receiver of {id}: {:?}",
            self.nodes[to].outcomes.get(&id)
        );
        let saved = self.nodes[to].disks[&id].saved.as_deref();
        assert!(
            saved == Some(&self.originals[&id][..]),
            "{id} arrived changed"
        );
    }

    fn received(&self, node: usize, id: TransferId) -> usize {
        let d = &self.nodes[node].disks[&id];
        d.saved.as_ref().or(d.part.as_ref()).map_or(0, |v| v.len())
    }

    /// Bytes of transfer `id` that node `node` has in order (written or not yet).
    fn delivered(&self, node: usize, id: TransferId) -> usize {
        self.nodes[node]
            .set
            .received_in_order(id)
            .map_or_else(|| self.received(node, id), |n| n as usize)
    }
}

fn drain_events(node: &mut Node, now: UnixMillis, moved: &mut bool) {
    while let Some((id, ev)) = node.set.poll_event() {
        *moved = true;
        match ev {
            SetEvent::Sender(SenderEvent::Read { offset, len }) => {
                let data = node.sources[&id].slice(offset as usize..offset as usize + len);
                node.set.handle_file_data(id, offset, data, now);
            }
            SetEvent::Receiver(r) => {
                if let Some(d) = node.disks.get_mut(&id) {
                    d.apply(&r);
                }
                if !matches!(r, ReceiverEvent::Write { .. }) {
                    node.outcomes.insert(id, SetEvent::Receiver(r));
                }
            }
            other => {
                node.outcomes.insert(id, other);
            }
        }
    }
}

#[test]
fn batches_on_a_shared_socket_each_carry_one_transfer_to_its_own_peer() {
    // Node 0 sends to nodes 1..=4 and receives from 1 and 2 on one socket that sends 16
    // datagrams at once; 2% loss. `step` checks every batch: one transfer, its own peer.
    let mut m = Mesh::new(5, |a, b| NetemConfig {
        loss: 0.02,
        ..net((a * 5 + b) as u64 + 700)
    });
    m.segments = 16;
    let mut ids = Vec::new();
    for to in 1..=4 {
        ids.push((m.start(10 + to as u64, 0, to, 300_000 + to * 1_000), 0, to));
    }
    for from in 1..=2 {
        ids.push((m.start(20 + from as u64, from, 0, 200_000), from, 0));
    }
    for &(id, from, to) in &ids {
        m.finish(id, from, to);
    }
    for &(id, from, to) in &ids {
        m.assert_delivered(id, from, to);
    }
    assert!(
        m.multi_batches > 0,
        "no batch carried more than one datagram"
    );
}

#[test]
fn a_client_receives_from_two_presenters_and_sends_while_receiving() {
    // Node 0 receives transfer 1 from node 1 and transfer 2 from node 2, and sends transfer 3
    // to node 3, all on its one socket. Paths lose 5% of datagrams.
    let mut m = Mesh::new(4, |a, b| NetemConfig {
        loss: 0.05,
        ..net((a * 4 + b) as u64)
    });
    let t1 = m.start(1, 1, 0, 300_000);
    let t2 = m.start(2, 2, 0, 500_000);
    let t3 = m.start(3, 0, 3, 400_000);
    m.finish(t1, 1, 0);
    m.finish(t2, 2, 0);
    m.finish(t3, 0, 3);
    m.assert_delivered(t1, 1, 0);
    m.assert_delivered(t2, 2, 0);
    m.assert_delivered(t3, 0, 3);
}

#[test]
fn a_transfer_added_after_the_last_sender_was_removed_is_polled() {
    // The cursor names a transfer that is gone; the next one must not be skipped for it.
    let mut m = Mesh::lossless(2);
    let first = m.start(50, 0, 1, 10_000);
    m.finish(first, 0, 1);
    m.assert_delivered(first, 0, 1);
    m.step();
    assert!(
        m.nodes[0].set.get(first).is_none(),
        "the finished sender is forgotten"
    );
    for id in [90, 10, 70] {
        let next = m.start(id, 0, 1, 10_000);
        m.finish(next, 0, 1);
        m.assert_delivered(next, 0, 1);
    }
}

#[test]
fn fifty_transfers_in_a_row_then_twenty_back_on_one_set() {
    let mut m = Mesh::new(2, |a, b| NetemConfig {
        loss: 0.02,
        ..net((a * 2 + b) as u64 + 40)
    });
    // Ids in no particular order, as the server issues them.
    let ids = |n: u64, salt: u64| (0..n).map(move |i| (i * 0x9E37_79B9 + salt) % 100_003 + 1);
    for id in ids(50, 7) {
        let t = m.start(id, 0, 1, 20_000 + (id as usize % 7) * 3_000);
        m.finish(t, 0, 1);
        m.assert_delivered(t, 0, 1);
    }
    for id in ids(20, 1_000_000) {
        let t = m.start(id, 1, 0, 30_000);
        m.finish(t, 1, 0);
        m.assert_delivered(t, 1, 0);
    }
    // Lingering receivers leave once their sender has been quiet for a while.
    let quiet = m.now.plus_millis(3_000);
    m.run_until(3_000, |mm| mm.now >= quiet);
    assert_eq!(m.nodes[0].set.ids().count(), 0, "nothing is left behind");
    assert_eq!(m.nodes[1].set.ids().count(), 0);
}

#[test]
fn transfers_in_both_directions_at_once_both_arrive() {
    let mut m = Mesh::new(2, |a, b| NetemConfig {
        loss: 0.05,
        ..net((a * 2 + b) as u64 + 60)
    });
    for round in 0..5u64 {
        let out = m.start(100 + round, 0, 1, 200_000);
        let back = m.start(200 - round, 1, 0, 150_000);
        m.finish(out, 0, 1);
        m.finish(back, 1, 0);
        m.assert_delivered(out, 0, 1);
        m.assert_delivered(back, 1, 0);
    }
}

#[test]
fn eight_transfers_on_one_socket_each_progress_every_round_trip() {
    // Node 0 sends to nodes 1..=4 and receives from each of them: 4 out, 4 in, one socket
    // that takes only a few datagrams per millisecond, so the transfers compete for it.
    let mut m = Mesh::new(5, |a, b| NetemConfig {
        rate: Some(4_000_000),
        queue_bytes: 1 << 20,
        ..net((a * 5 + b) as u64 + 80)
    });
    m.socket_budget = Some(4);
    let mut transfers = Vec::new();
    for peer in 1..=4 {
        let out = m.start(peer as u64 * 11, 0, peer, 600_000);
        transfers.push((out, peer));
        let inbound = m.start(1000 - peer as u64 * 13, peer, 0, 600_000);
        transfers.push((inbound, 0));
    }
    let rtt_ms = 2 * net(0).latency_ms;
    let mut last: Vec<usize> = vec![0; transfers.len()];
    let mut rounds = 0;
    loop {
        let until = m.now.plus_millis(2 * rtt_ms);
        m.run_until(2 * rtt_ms, |mm| mm.now >= until);
        rounds += 1;
        // Progress is what the receivers acknowledge; their writes come a block at a time.
        let now: Vec<usize> = transfers
            .iter()
            .map(|&(id, to)| m.delivered(to, id))
            .collect();
        let all_done = transfers
            .iter()
            .all(|&(id, to)| m.received(to, id) == m.originals[&id].len());
        if all_done {
            break;
        }
        // After the first round (the handshake), every unfinished transfer moved forward.
        if rounds > 2 {
            for (k, &(id, to)) in transfers.iter().enumerate() {
                let total = m.originals[&id].len();
                assert!(
                    now[k] > last[k] || last[k] == total,
                    "transfer {id} to node {to} made no progress in round {rounds}: {} of {total}",
                    now[k]
                );
            }
        }
        last = now;
        assert!(rounds < 2_000, "the transfers did not finish");
    }
    for &(id, to) in &transfers {
        let from = if to == 0 {
            (1..=4)
                .find(|&p| m.nodes[p].sources.contains_key(&id))
                .unwrap_or(0)
        } else {
            0
        };
        m.finish(id, from, to);
        m.assert_delivered(id, from, to);
    }
    // Node 0's datagrams alternated between its transfers rather than coming in long runs.
    let longest_run = m
        .node0_sent
        .chunk_by(|a, b| a == b)
        .map(<[TransferId]>::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_run < 64,
        "a transfer hogged the socket for {longest_run} datagrams"
    );
}

#[test]
fn the_set_takes_its_transfers_in_turn_datagram_by_datagram() {
    // Eight senders with data ready: any eight datagrams in a row come from eight transfers.
    let mut set = TransferSet::default();
    let len = 2_000_000u64;
    let data = file(len as usize, 3);
    let ids: Vec<u64> = vec![17, 3, 99, 42, 8, 61, 25, 77];
    let mut now = START;
    for &id in &ids {
        let s = Sender::new(
            TransferId(id),
            &secret(id),
            len,
            addr(id as usize),
            TransferConfig::default(),
            key(id, Side::Sender),
            now,
        );
        set.add_sender(s);
    }
    // Open every transfer: each sends its Hello; the receiver's Welcome and first ACK open
    // the window.
    while set.poll_transmit(now, 1).is_some() {}
    now = now.plus_millis(5);
    for &id in &ids {
        let mut f = Forger::with_secret(
            TransferId(id),
            &secret(id),
            Side::Receiver,
            key_bytes(id, Side::Receiver),
        );
        let welcome = f.seal(Body::Welcome {
            public: f.public(),
            offer: Offer::default(),
        });
        set.handle_datagram(addr(id as usize), &welcome, now);
        f.agree(key(id, Side::Sender).public(), len, 1408);
        let ack = f.seal(Body::Ack(datagram::Ack {
            ack_delay_ms: 0,
            cum_offset: 0,
            window_end: len,
            ranges: vec![],
        }));
        set.handle_datagram(addr(id as usize), &ack, now);
    }
    let mut order = Vec::new();
    for _ in 0..10 {
        while let Some((id, ev)) = set.poll_event() {
            if let SetEvent::Sender(SenderEvent::Read { offset, len }) = ev {
                let piece = data.slice(offset as usize..offset as usize + len);
                set.handle_file_data(id, offset, piece, now);
            }
        }
        while let Some(t) = set.poll_transmit(now, 1) {
            order.push(datagram::peek_transfer_id(&t.contents).unwrap_or(TransferId(0)));
        }
        now = now.plus_millis(1);
        set.handle_timeout(now);
    }
    assert!(order.len() >= 64, "{} datagrams", order.len());
    for window in order.windows(ids.len()).take(order.len() / 2) {
        let mut seen: Vec<u64> = window.iter().map(|t| t.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ids.len(), "not in turn: {window:?}");
    }
}

#[test]
fn a_new_transfer_works_right_after_one_that_failed_or_was_aborted() {
    let mut m = Mesh::lossless(2);
    // Aborted by the presenter (a read error, say).
    let aborted = m.start(500, 0, 1, 400_000);
    m.run_until(30, |_| false);
    m.nodes[0].set.abort(aborted, AbortReason::LocalIo, m.now);
    m.finish(aborted, 0, 1);
    assert_eq!(
        m.nodes[1].outcomes.get(&aborted),
        Some(&SetEvent::Receiver(ReceiverEvent::Aborted(
            AbortReason::PeerAborted(PeerReason::LocalIo)
        )))
    );
    let next = m.start(499, 0, 1, 100_000);
    m.finish(next, 0, 1);
    m.assert_delivered(next, 0, 1);

    // Failed: the path is cut for good; both sides give up; then it heals and a new one works.
    let quick = TransferConfig {
        idle_timeout_ms: 2_000,
        ..TransferConfig::default()
    };
    let failed = m.start_with(600, 0, 1, 400_000, quick);
    let cut_from = m.now.plus_millis(20);
    for link in m.links.values_mut() {
        link.config_mut().cuts = vec![(cut_from, UnixMillis(u64::MAX))];
    }
    m.finish(failed, 0, 1);
    assert_eq!(
        m.nodes[0].outcomes.get(&failed),
        Some(&SetEvent::Sender(SenderEvent::Aborted(
            AbortReason::PeerSilent
        )))
    );
    for link in m.links.values_mut() {
        link.config_mut().cuts.clear();
    }
    for id in [601, 599] {
        let t = m.start(id, 0, 1, 100_000);
        m.finish(t, 0, 1);
        m.assert_delivered(t, 0, 1);
    }
}

#[test]
fn a_stale_transfer_datagram_is_stray_to_the_set() {
    let mut set = TransferSet::default();
    let id = TransferId(0x5eed);
    set.add_receiver(Receiver::new(
        id,
        &SECRET,
        10,
        addr(9),
        TransferConfig::default(),
        key(1, Side::Receiver),
        START,
    ));
    let mut f = Forger::with_secret(TransferId(7), &SECRET, Side::Sender, [5; 32]);
    let old = f.seal(Body::Hello {
        public: f.public(),
        file_size: 10,
        payload_size: 1408,
        protection: Protection::Encrypted,
    });
    set.handle_datagram(addr(9), &old, START);
    set.handle_datagram(
        addr(9),
        &Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n------------"),
        START,
    );
    assert_eq!(set.stray(), 2);
    assert!(set.poll_transmit(START, 1).is_none());
}

#[test]
fn a_refusal_reaches_a_presenter_that_was_not_listening_yet() {
    // The server tells the audience first; the audience refuses at once, before the
    // presenter even has its sender: that first `Abort` is lost as stray, so the refusal
    // must be repeated when the presenter's `Hello` comes, however soon (loopback).
    let mut m = Mesh::new(2, |a, b| NetemConfig {
        latency_ms: 1,
        ..net((a * 2 + b) as u64)
    });
    let id = TransferId(77);
    let now = m.now;
    let refusal = Receiver::refuse(
        id,
        &secret(77),
        100_000,
        addr(0),
        AbortReason::Busy,
        TransferConfig::default(),
        key(77, Side::Receiver),
        now,
    );
    m.nodes[1].set.add_receiver(refusal);
    m.nodes[1].disks.insert(id, Disk::default());
    // Let the first Abort arrive at node 0 while it has no such transfer.
    m.run_for(2);
    assert_eq!(m.nodes[0].set.stray(), 1, "the first Abort found nobody");
    let sender = Sender::new(
        id,
        &secret(77),
        100_000,
        addr(1),
        TransferConfig::default(),
        key(77, Side::Sender),
        m.now,
    );
    m.nodes[0].set.add_sender(sender);
    m.nodes[0].sources.insert(id, file(100_000, 77));
    let started = m.now;
    m.run_until(5_000, |m| m.nodes[0].outcomes.contains_key(&id));
    assert_eq!(
        m.nodes[0].outcomes.get(&id),
        Some(&SetEvent::Sender(SenderEvent::Aborted(
            AbortReason::PeerAborted(PeerReason::Busy)
        )))
    );
    assert!(
        m.now.millis_since(started) < 100,
        "within a round trip or two"
    );
}

/// Transfer `id` started on the presenter's side only: the server's word to the audience is
/// late.
fn start_sender_only(m: &mut Mesh, id: u64, len: usize) -> TransferId {
    let tid = TransferId(id);
    let sender = Sender::new(
        tid,
        &secret(id),
        len as u64,
        addr(1),
        TransferConfig::default(),
        key(id, Side::Sender),
        m.now,
    );
    m.nodes[0].set.add_sender(sender);
    m.nodes[0].sources.insert(tid, file(len, id));
    m.originals.insert(tid, file(len, id));
    tid
}

fn add_late_receiver(m: &mut Mesh, id: u64, len: usize) {
    let r = receiver(id, len as u64, addr(0), TransferConfig::default(), m.now);
    m.nodes[1].set.add_receiver(r);
    m.nodes[1].disks.insert(TransferId(id), Disk::default());
}

#[test]
fn a_hello_that_overtakes_the_servers_word_is_answered_once_the_receiver_is_added() {
    let mut m = Mesh::new(2, |a, b| NetemConfig {
        latency_ms: 1,
        ..net((a * 2 + b) as u64)
    });
    let started = m.now;
    let t = start_sender_only(&mut m, 88, 200_000);
    // The `Hello`s reach the audience before it knows the transfer.
    m.run_for(5);
    assert!(m.nodes[1].set.stray() >= 1, "the Hello found nobody");
    assert!(m.nodes[1].set.early_hellos() >= 1, "and was kept");
    add_late_receiver(&mut m, 88, 200_000);
    assert_eq!(m.nodes[1].set.early_hellos(), 0, "handed to its receiver");
    m.finish(t, 0, 1);
    m.assert_delivered(t, 0, 1);
    // Dropped, the `Hello` would have cost an initial probe timeout (about 600 ms).
    assert!(
        m.now.millis_since(started) < 200,
        "took {} ms",
        m.now.millis_since(started)
    );
}

#[test]
fn a_flood_of_early_hellos_is_bounded_forgeries_are_rejected_and_old_ones_expire() {
    let config = TransferConfig::default();
    let mut set = TransferSet::new(&config);
    // Strangers: a thousand `Hello`s for a thousand unknown transfers, and junk.
    for n in 10_000..11_000u64 {
        let mut f = Forger::with_secret(TransferId(n), &SECRET, Side::Sender, [5; 32]);
        let hello = f.seal(Body::Hello {
            public: f.public(),
            file_size: u64::MAX,
            payload_size: u32::MAX,
            protection: Protection::Encrypted,
        });
        set.handle_datagram(addr(9), &hello, START);
        set.handle_datagram(addr(9), &Bytes::from(vec![0xFF; 65_000]), START);
    }
    assert_eq!(set.stray(), 2_000);
    assert_eq!(set.early_hellos(), config.early_hellos, "bounded");
    // A forged `Hello` (wrong secret) for a transfer about to be added: kept, then rejected
    // by its receiver, which answers nothing.
    let id = 999u64;
    let mut forger = Forger::with_secret(TransferId(id), &SECRET, Side::Sender, [6; 32]);
    let forged = forger.seal(Body::Hello {
        public: forger.public(),
        file_size: 10,
        payload_size: 1408,
        protection: Protection::Encrypted,
    });
    set.handle_datagram(addr(0), &forged, START);
    set.add_receiver(receiver(id, 10, addr(0), config.clone(), START));
    assert!(
        set.poll_transmit(START, 1).is_none(),
        "a forgery gets no answer"
    );
    match set.get(TransferId(id)) {
        Some(Role::Receive(r)) => assert_eq!(r.stats().rejected.unauthentic, 1),
        _ => panic!("the receiver is there"),
    }
    // Past their time, the kept ones go (the newcomer alone stays).
    let late = START.plus_millis(config.early_hello_ms);
    let mut f = Forger::with_secret(TransferId(5_000), &SECRET, Side::Sender, [7; 32]);
    let newcomer = f.seal(Body::Hello {
        public: f.public(),
        file_size: 10,
        payload_size: 1408,
        protection: Protection::Encrypted,
    });
    assert_eq!(set.early_hellos(), config.early_hellos - 1);
    set.handle_datagram(addr(9), &newcomer, late);
    assert_eq!(set.early_hellos(), 1, "the old ones expired");
}

#[test]
fn the_rate_cap_holds_for_all_uploads_together_and_a_lone_one_gets_all_of_it() {
    // 4 MB/s for the client's uploads: four 1 MB files at once take about a second, not a
    // quarter of one (each capped alone, they went at 4 MB/s apiece); then one file alone
    // gets the whole cap again.
    let config = TransferConfig {
        max_rate: Some(4_000_000),
        ..TransferConfig::default()
    };
    let mut m = Mesh::lossless(2);
    m.nodes[0].set = TransferSet::new(&config);
    let began = m.now;
    let ids: Vec<TransferId> = (1..=4)
        .map(|id| m.start_with(id, 0, 1, 1_000_000, config.clone()))
        .collect();
    m.run_until(120_000, |m| {
        ids.iter().all(|id| m.nodes[1].outcomes.contains_key(id))
    });
    let together = m.now.millis_since(began);
    for &id in &ids {
        m.finish(id, 0, 1);
        m.assert_delivered(id, 0, 1);
    }
    assert!(
        together >= 900,
        "4 MB under a 4 MB/s cap took {together} ms"
    );
    let began = m.now;
    let id = m.start_with(5, 0, 1, 1_000_000, config.clone());
    m.run_until(120_000, |m| m.nodes[1].outcomes.contains_key(&id));
    let alone = m.now.millis_since(began);
    m.finish(id, 0, 1);
    m.assert_delivered(id, 0, 1);
    assert!(
        alone < together / 2,
        "a lone upload gets the whole cap: {alone} ms against {together} ms for four"
    );
}
