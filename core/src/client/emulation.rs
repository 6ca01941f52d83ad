//! An emulated network path for the datagrams a client sends: seeded loss, delay,
//! duplication and reordering from the transfer's [`Netem`], one path per destination.
//!
//! Why in the client core: loopback never loses anything, yet a benchmark or a test of loss
//! recovery over real sockets must lose datagrams, reproducibly. Done here, every runtime
//! (and the simulator) emulates the same way, from the same seed. Off unless configured.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;

use super::output::ClientOutput;
use crate::UnixMillis;
use crate::transfer::netem::{Netem, NetemConfig};

/// The emulated paths, by destination.
#[derive(Debug)]
pub(crate) struct Emulation {
    config: NetemConfig,
    paths: BTreeMap<SocketAddr, Netem>,
}

impl Emulation {
    /// Paths that behave as `config` says.
    pub(crate) fn new(config: NetemConfig) -> Self {
        Self {
            config,
            paths: BTreeMap::new(),
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

    /// Move the datagrams due at `now` to `out`, as the transmits the driver carries out:
    /// what survived of a batch, and arrives together, still goes out as one batch.
    pub(crate) fn release(&mut self, now: UnixMillis, out: &mut VecDeque<ClientOutput>) {
        for (&to, path) in &mut self.paths {
            while let Some((bytes, segment_size)) = path.poll_batch(now) {
                out.push_back(ClientOutput::Transmit {
                    to,
                    bytes,
                    segment_size,
                });
            }
        }
    }

    /// When the next held datagram is due.
    pub(crate) fn poll_timeout(&self) -> Option<UnixMillis> {
        self.paths.values().filter_map(Netem::poll_timeout).min()
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
        path.release(UnixMillis(0), &mut out);
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
