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

    /// A datagram leaves for `to` at `now`.
    pub(crate) fn send(&mut self, to: SocketAddr, bytes: Bytes, now: UnixMillis) {
        let config = &self.config;
        self.paths
            .entry(to)
            .or_insert_with(|| {
                let mut c = config.clone();
                c.seed ^= u64::from(to.port()).rotate_left(32);
                Netem::new(c)
            })
            .handle_input(bytes, now);
    }

    /// Move the datagrams due at `now` to `out`, as the transmits the driver carries out.
    pub(crate) fn release(&mut self, now: UnixMillis, out: &mut VecDeque<ClientOutput>) {
        for (&to, path) in &mut self.paths {
            while let Some(bytes) = path.poll_output(now) {
                out.push_back(ClientOutput::Transmit { to, bytes });
            }
        }
    }

    /// When the next held datagram is due.
    pub(crate) fn poll_timeout(&self) -> Option<UnixMillis> {
        self.paths.values().filter_map(Netem::poll_timeout).min()
    }
}
