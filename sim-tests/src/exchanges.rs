//! A probe that logs every request line the server handled, when, and the reply codes it sent.
//!
//! Client-side timing says when a line was *sent*; what a rule like the lockout depends on is
//! when the server *handled* it. This log is the server's view, in simulated time.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use huddle_core::proto::reply::parse_reply_line;
use huddle_core::server::{ConnId, Output, Server};

use crate::clock;
use crate::server_host::{InputSeen, Probe};

/// One line the server handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Which boot of the server handled it (1 for the first).
    pub boot: u32,
    /// Simulated milliseconds since the start of the run.
    pub at_ms: u64,
    /// The connection, as the core named it (names restart with each boot).
    pub conn: ConnId,
    /// Where the connection came from.
    pub peer: Option<SocketAddr>,
    /// The line (without its ending).
    pub line: String,
    /// The codes of the replies sent on the same connection in answer, in order.
    pub codes: Vec<u16>,
}

/// The log; install it as the server host's probe.
#[derive(Debug, Default)]
pub struct ExchangeLog {
    boot: u32,
    peers: BTreeMap<ConnId, SocketAddr>,
    /// Every exchange so far.
    pub exchanges: Vec<Exchange>,
}

impl ExchangeLog {
    /// The exchanges whose line is `line`.
    pub fn with_line<'a>(&'a self, line: &'a str) -> impl Iterator<Item = &'a Exchange> + 'a {
        self.exchanges.iter().filter(move |e| e.line == line)
    }
}

/// The final reply codes among `outputs` sent to `conn`.
pub fn reply_codes(outputs: &[Output], conn: ConnId) -> Vec<u16> {
    let mut codes = Vec::new();
    for out in outputs {
        if let Output::Send { conn: c, bytes } = out {
            if *c != conn {
                continue;
            }
            for line in String::from_utf8_lossy(bytes).lines() {
                if let Some(r) = parse_reply_line(line).filter(|r| r.last) {
                    codes.push(r.code.get());
                }
            }
        }
    }
    codes
}

impl Probe for ExchangeLog {
    fn booted(&mut self, _server: &Server) {
        self.boot += 1;
        self.peers.clear();
    }

    fn after_input(&mut self, _server: &Server, input: &InputSeen<'_>, outputs: &[Output]) {
        match input {
            InputSeen::Connect { conn, peer } => {
                self.peers.insert(*conn, *peer);
            }
            InputSeen::Bytes { conn, bytes } => {
                let text = String::from_utf8_lossy(bytes);
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                self.exchanges.push(Exchange {
                    boot: self.boot,
                    at_ms: clock::elapsed_ms(),
                    conn: *conn,
                    peer: self.peers.get(conn).copied(),
                    line,
                    codes: reply_codes(outputs, *conn),
                });
            }
            InputSeen::Disconnect { .. } | InputSeen::Wrote { .. } | InputSeen::Timeout => {
                // A reply that comes later (a password checked by a hash worker) answers the
                // connection's last line still waiting for one.
                let boot = self.boot;
                for conn in self.peers.keys().copied().collect::<Vec<_>>() {
                    let codes = reply_codes(outputs, conn);
                    if codes.is_empty() {
                        continue;
                    }
                    if let Some(e) = self
                        .exchanges
                        .iter_mut()
                        .rev()
                        .find(|e| e.conn == conn && e.boot == boot)
                        .filter(|e| e.codes.is_empty())
                    {
                        e.codes = codes;
                    }
                }
            }
        }
    }
}
