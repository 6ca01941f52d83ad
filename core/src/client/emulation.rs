//! An emulated network path for the datagrams a client sends: seeded loss, delay,
//! duplication and reordering from the transfer's [`Netem`], one path per destination.
//!
//! Why in the client core: loopback never loses anything, yet a benchmark or a test of loss
//! recovery over real sockets must lose datagrams, reproducibly. Done here, every runtime
//! (and the simulator) emulates the same way, from the same seed. Off unless configured.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::output::ClientOutput;
use crate::UnixMillis;
use crate::transfer::MAX_BATCH_BYTES;
use crate::transfer::datagram::reserve_pool;
use crate::transfer::netem::{Netem, NetemConfig};

/// The emulated paths, by destination.
#[derive(Debug)]
pub(crate) struct Emulation {
    config: NetemConfig,
    paths: BTreeMap<SocketAddr, Netem>,
    /// Where survivors of a batch are joined again.
    joins: BytesMut,
}

impl Emulation {
    /// Paths that behave as `config` says.
    pub(crate) fn new(config: NetemConfig) -> Self {
        Self {
            config,
            paths: BTreeMap::new(),
            joins: BytesMut::new(),
        }
    }

    /// A batch of datagrams (`segment_size` bytes each, the last maybe shorter) leaves for
    /// `to` at `now`: each datagram meets its own fate, as if sent alone.
    pub(crate) fn send(
        &mut self,
        to: SocketAddr,
        bytes: &Bytes,
        segment_size: usize,
        now: UnixMillis,
    ) {
        let config = &self.config;
        self.paths
            .entry(to)
            .or_insert_with(|| {
                let mut c = config.clone();
                c.seed ^= u64::from(to.port()).rotate_left(32);
                Netem::new(c)
            })
            .handle_batch(bytes, segment_size, now);
    }

    /// Move the datagrams due at `now` to `out`, as the transmits the driver carries out, in
    /// batches of at most `max_segments` (what the socket sends at once).
    ///
    /// What survived of a batch leaves as one batch again, as if the datagrams had been lost
    /// in the network after one send: the receiver then sees what a real lossy path shows it
    /// (one run with gaps), not a send per gap. A batch that lost nothing goes as it is; one
    /// with gaps is joined again by a copy (emulation only: the real path never copies).
    pub(crate) fn release(
        &mut self,
        now: UnixMillis,
        max_segments: usize,
        out: &mut VecDeque<ClientOutput>,
    ) {
        let max_segments = max_segments.max(1);
        let Self { paths, joins, .. } = self;
        for (&to, path) in paths.iter_mut() {
            let mut pending: Option<Run> = None;
            while let Some((bytes, segment_size)) = path.poll_batch(now) {
                if let Some(run) = pending.as_mut()
                    && run.takes(joins, &bytes, segment_size, max_segments)
                {
                    run.join(joins, &bytes);
                    continue;
                }
                if let Some(run) = pending.take() {
                    out.push_back(run.into_output(joins, to));
                }
                pending = Some(Run::Whole(bytes, segment_size));
            }
            if let Some(run) = pending {
                out.push_back(run.into_output(joins, to));
            }
        }
    }

    /// When the next held datagram is due.
    pub(crate) fn poll_timeout(&self) -> Option<UnixMillis> {
        self.paths.values().filter_map(Netem::poll_timeout).min()
    }
}

/// Datagrams released together for one destination.
enum Run {
    /// One run of a batch, as the path handed it out (no copy).
    Whole(Bytes, usize),
    /// Several runs joined, in the emulation's join block (datagrams of the given size).
    Joined(usize),
}

impl Run {
    fn parts<'a>(&'a self, joins: &'a BytesMut) -> (&'a [u8], usize) {
        match self {
            Run::Whole(b, s) => (b, *s),
            Run::Joined(s) => (joins, *s),
        }
    }

    /// Whether `bytes` (datagrams of `segment_size`) may follow in the same send: the same
    /// size, every datagram so far full, within the socket's and GSO's limits.
    fn takes(
        &self,
        joins: &BytesMut,
        bytes: &[u8],
        segment_size: usize,
        max_segments: usize,
    ) -> bool {
        let (have, seg) = self.parts(joins);
        let segments = have.len().div_ceil(seg) + bytes.len().div_ceil(seg);
        seg == segment_size
            && have.len().is_multiple_of(seg)
            && segments <= max_segments
            && have.len() + bytes.len() <= MAX_BATCH_BYTES
    }

    /// Append `bytes`, copying the run into `joins` first if it is not there yet (a block
    /// reused once what was joined in it was sent: no allocation per joined batch).
    fn join(&mut self, joins: &mut BytesMut, bytes: &[u8]) {
        if let Run::Whole(b, s) = self {
            reserve_pool(joins, MAX_BATCH_BYTES);
            joins.extend_from_slice(b);
            *self = Run::Joined(*s);
        }
        joins.extend_from_slice(bytes);
    }

    fn into_output(self, joins: &mut BytesMut, to: SocketAddr) -> ClientOutput {
        let (bytes, segment_size) = match self {
            Run::Whole(b, s) => (b, s),
            Run::Joined(s) => (joins.split().freeze(), s),
        };
        ClientOutput::Transmit {
            to,
            bytes,
            segment_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_datagram_of_a_batch_is_lost_on_its_own_and_the_rest_leave_as_batches() {
        let mut path = Emulation::new(NetemConfig {
            latency_ms: 0,
            loss: 0.25,
            seed: 8,
            ..NetemConfig::default()
        });
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut sent = Vec::new();
        for round in 0..20u8 {
            // 10 datagrams of 50 bytes and a short one, each byte naming its datagram.
            let mut b = Vec::new();
            for i in 0..11u8 {
                let len = if i == 10 { 7 } else { 50 };
                b.extend(std::iter::repeat_n(round * 11 + i, len));
                sent.push(round * 11 + i);
            }
            path.send(to, &Bytes::from(b), 50, UnixMillis(0));
        }
        let mut out = VecDeque::new();
        path.release(UnixMillis(0), 16, &mut out);
        let mut got = Vec::new();
        let mut multi = 0;
        for o in out {
            let ClientOutput::Transmit {
                to: dest,
                bytes,
                segment_size,
            } = o
            else {
                panic!("only datagrams come out");
            };
            assert_eq!(dest, to);
            let n = bytes.len().div_ceil(segment_size);
            assert!(
                n <= 16,
                "{n} datagrams in one send of a socket that takes 16"
            );
            multi += usize::from(n > 1);
            for (k, d) in bytes.chunks(segment_size).enumerate() {
                assert!(d.iter().all(|&x| x == d[0]), "a datagram cut apart");
                if k + 1 < n {
                    assert_eq!(d.len(), segment_size);
                }
                got.push(d[0]);
            }
        }
        let lost = sent.len() - got.len();
        assert!((20..=90).contains(&lost), "{lost} of {} lost", sent.len());
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        assert!(multi > 0, "survivors still leave in batches");
    }
}
