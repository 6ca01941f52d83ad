//! The TLS byte transform both sides share: wire bytes in, plaintext out, and back.
//!
//! # Driving a session
//! A [`Session`] is made by [`ServerTls::accept`](super::ServerTls::accept) or
//! [`ClientTls::connect`](super::ClientTls::connect) — a [`ServerSession`] or a
//! [`ClientSession`]; both have the methods below. Then a driver loops:
//! - network input: [`Session::handle_wire`] with whatever bytes arrived from the peer,
//!   [`Session::handle_eof`] when the peer closed the TCP connection;
//! - application input: [`Session::send`] with plaintext to send, [`Session::close`] to end
//!   the session (a `close_notify` alert);
//! - time: [`Session::handle_timeout`] once [`Session::poll_timeout`] is reached (the
//!   handshake's deadline; calling it early or spuriously is harmless);
//! - output: after every input, [`Session::poll_event`] until `None` (on the client the
//!   server's trust comes before `Established`), then [`Session::poll_plaintext`] until `None`
//!   (the peer's application bytes, in order), then [`Session::poll_transmit`] until `None`
//!   (bytes to write to the peer, in order). A client has its ClientHello to transmit as soon
//!   as it is made.
//!
//! Every input carries `now`; the session reads no clock. Each session owns a random generator
//! seeded at its start and lends it to rustls for each call, so a session replays exactly
//! from its seed. Memory is bounded by rustls's own limits (64 KiB for a handshake message,
//! one 16 KiB record of plaintext) plus what one `handle_wire` call produced, as long as the
//! driver drains the outputs after every input.
//!
//! An error is final: the method returns it, the session keeps returning it, and
//! `poll_transmit` still yields the alert that tells the peer why — send it, then close.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rustls::Connection;

use super::clock::InputClock;
use super::config::TlsLimits;
use super::entropy::SessionRng;
use super::error::TlsError;
use super::trust::{Trusted, Verdict, Verifier};
use crate::time::UnixMillis;

/// What a session tells its driver besides bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    /// (client only) The server's certificate was accepted, and why. Show it to the user; on a
    /// first use, append [`Trusted::pin_to_record`] to the known-hosts file. Emitted when the
    /// handshake has finished, so the server has proved it holds the certificate's key.
    ServerTrusted(Trusted),
    /// The handshake finished: from now on plaintext flows both ways.
    Established {
        /// The negotiated cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
        cipher_suite: &'static str,
    },
    /// The peer will send nothing more. `clean` when it said so with `close_notify`; not clean
    /// when the connection ended without it (its last data may be cut short).
    PeerClosed {
        /// Whether the peer ended the session with `close_notify`.
        clean: bool,
    },
}

/// What differs between the two sides, and only that.
pub trait Side: sealed::Sealed {
    /// The client's certificate verdict (the server has none).
    #[doc(hidden)]
    fn verdict(&self) -> Option<Verdict>;
}

mod sealed {
    pub trait Sealed {}
}

/// The server side of a session.
#[derive(Debug)]
pub struct ServerSide;

/// The client side of a session: the verifier holds the verdict on the server's certificate.
#[derive(Debug)]
pub struct ClientSide {
    pub(crate) verifier: Arc<Verifier>,
}

impl sealed::Sealed for ServerSide {}
impl sealed::Sealed for ClientSide {}

impl Side for ServerSide {
    fn verdict(&self) -> Option<Verdict> {
        None
    }
}

impl Side for ClientSide {
    fn verdict(&self) -> Option<Verdict> {
        self.verifier.verdict()
    }
}

/// A server's TLS session with one client.
pub type ServerSession = Session<ServerSide>;
/// A client's TLS session with the server.
pub type ClientSession = Session<ClientSide>;

/// Where a session is.
#[derive(Debug)]
enum Phase {
    /// Until the handshake finishes, or `deadline` passes.
    Handshaking { deadline: UnixMillis },
    /// Application data flows.
    Open,
    /// Final.
    Failed(TlsError),
}

/// A TLS session: a Sans-IO byte transform around a rustls connection. See the module docs
/// for how to drive it.
#[derive(Debug)]
pub struct Session<S: Side> {
    conn: Connection,
    side: S,
    rng: SessionRng,
    clock: Arc<InputClock>,
    limits: TlsLimits,
    phase: Phase,
    /// Plaintext sent before the handshake finished.
    queued_early: usize,
    framing: Framing,
    peer_closed: bool,
    we_closed: bool,
    plaintext: VecDeque<Bytes>,
    events: VecDeque<TlsEvent>,
}

impl<S: Side> Session<S> {
    pub(crate) fn new(
        mut conn: Connection,
        side: S,
        rng: SessionRng,
        clock: Arc<InputClock>,
        limits: TlsLimits,
        now: UnixMillis,
    ) -> Self {
        // Plaintext before the handshake is bounded by `limits`; after it, by the caller's
        // output accounting (see `TlsLimits::max_plaintext_before_handshake`).
        conn.set_buffer_limit(None);
        Self {
            conn,
            side,
            rng,
            clock,
            limits,
            phase: Phase::Handshaking {
                deadline: now.plus_millis(limits.handshake_timeout_millis),
            },
            queued_early: 0,
            framing: Framing::default(),
            peer_closed: false,
            we_closed: false,
            plaintext: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Bytes arrived from the peer. All of them are consumed; what they carried comes out of
    /// the `poll_*` methods.
    pub fn handle_wire(&mut self, mut bytes: &[u8], now: UnixMillis) -> Result<(), TlsError> {
        self.usable()?;
        self.clock.observe(now);
        while !bytes.is_empty() {
            if self.peer_closed {
                return Err(self.fail(TlsError::DataAfterClose));
            }
            // One record at a time, so that nothing hides behind a `close_notify`: rustls
            // would read it along and drop it unseen.
            let (take, _) = self.framing.take(bytes);
            let (mut piece, rest) = bytes.split_at(take);
            bytes = rest;
            while !piece.is_empty() {
                let conn = &mut self.conn;
                let read = match self.rng.lend(|| conn.read_tls(&mut piece)) {
                    Ok(n) => n,
                    Err(e) => {
                        return Err(self.fail(TlsError::NotTls {
                            detail: e.to_string(),
                        }));
                    }
                };
                self.process()?;
                if read == 0 && !piece.is_empty() {
                    return Err(self.fail(if self.peer_closed {
                        TlsError::DataAfterClose
                    } else {
                        // rustls reads nothing more of a record TLS does not allow.
                        TlsError::NotTls {
                            detail: "a record longer than TLS allows".into(),
                        }
                    }));
                }
            }
        }
        Ok(())
    }

    /// Let rustls process what it has read, and collect what that produced.
    fn process(&mut self) -> Result<(), TlsError> {
        let conn = &mut self.conn;
        let processed = self.rng.lend(|| conn.process_new_packets());
        self.drain_plaintext();
        let state = match processed {
            Ok(state) => state,
            Err(e) => {
                let e = self.classify(e);
                return Err(self.fail(e));
            }
        };
        self.note_progress();
        if state.peer_has_closed() && !self.peer_closed {
            self.peer_closed = true;
            self.events.push_back(TlsEvent::PeerClosed { clean: true });
        }
        Ok(())
    }

    /// The peer closed the TCP connection (end of file).
    pub fn handle_eof(&mut self, now: UnixMillis) -> Result<(), TlsError> {
        self.usable()?;
        self.clock.observe(now);
        if matches!(self.phase, Phase::Handshaking { .. }) {
            return Err(self.fail(TlsError::ClosedDuringHandshake));
        }
        if !self.peer_closed {
            self.peer_closed = true;
            self.events.push_back(TlsEvent::PeerClosed { clean: false });
        }
        Ok(())
    }

    /// Plaintext to send to the peer, in order. Before the handshake finishes it is queued
    /// (up to [`TlsLimits::max_plaintext_before_handshake`]) and sent once it does.
    pub fn send(&mut self, plaintext: &[u8], now: UnixMillis) -> Result<(), TlsError> {
        self.usable()?;
        if self.we_closed {
            return Err(TlsError::Closed);
        }
        self.clock.observe(now);
        if matches!(self.phase, Phase::Handshaking { .. }) {
            let limit = self.limits.max_plaintext_before_handshake;
            if self.queued_early.saturating_add(plaintext.len()) > limit {
                return Err(TlsError::QueueFull { limit });
            }
            self.queued_early += plaintext.len();
        }
        let conn = &mut self.conn;
        let written = self.rng.lend(|| conn.writer().write_all(plaintext));
        written.map_err(|e| self.fail(TlsError::Connection(rustls::Error::General(e.to_string()))))
    }

    /// End the session: a `close_notify` goes out with the next `poll_transmit`; later sends
    /// are refused. The peer's remaining data still comes in.
    pub fn close(&mut self) {
        if !self.we_closed {
            self.we_closed = true;
            let conn = &mut self.conn;
            self.rng.lend(|| conn.send_close_notify());
        }
    }

    /// Time passed: fails the session if the handshake's deadline has come.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Result<(), TlsError> {
        self.usable()?;
        self.clock.observe(now);
        if let Phase::Handshaking { deadline } = self.phase
            && now >= deadline
        {
            return Err(self.fail(TlsError::HandshakeTimedOut {
                millis: self.limits.handshake_timeout_millis,
            }));
        }
        Ok(())
    }

    /// When to call [`Session::handle_timeout`]: the handshake's deadline, while it runs.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        match self.phase {
            Phase::Handshaking { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TlsEvent> {
        self.events.pop_front()
    }

    /// The next piece of the peer's plaintext.
    pub fn poll_plaintext(&mut self) -> Option<Bytes> {
        self.plaintext.pop_front()
    }

    /// The next bytes to write to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if !self.conn.wants_write() {
            return None;
        }
        let mut out = Vec::new();
        let conn = &mut self.conn;
        self.rng.lend(|| {
            while conn.wants_write() {
                // Writing into a Vec cannot fail; a zero-length write would loop forever.
                match conn.write_tls(&mut out) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        });
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshaking { .. })
    }

    /// Whether application data flows (the handshake finished and nothing failed).
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Fill `out` with keying material both ends derive from this session (RFC 5705/8446
    /// exporters): a secret the two ends share and nobody else knows, to bind something else —
    /// such as an upload's key exchange — to this link. `label` names the use.
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<(), TlsError> {
        if !self.is_established() {
            return Err(TlsError::NotEstablished);
        }
        self.conn
            .export_keying_material(out, label, context)
            .map(|_| ())
            .map_err(TlsError::Connection)
    }

    fn usable(&self) -> Result<(), TlsError> {
        match &self.phase {
            Phase::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, error: TlsError) -> TlsError {
        self.phase = Phase::Failed(error.clone());
        error
    }

    /// Name a rustls failure for the user.
    fn classify(&self, error: rustls::Error) -> TlsError {
        if let Some(Err(refusal)) = self.side.verdict() {
            return refusal.into();
        }
        let handshaking = self.is_handshaking();
        match error {
            rustls::Error::AlertReceived(alert) => TlsError::PeerAlert {
                alert: format!("{alert:?}"),
                during_handshake: handshaking,
            },
            rustls::Error::InvalidMessage(_) if handshaking => TlsError::NotTls {
                detail: error.to_string(),
            },
            e if handshaking => TlsError::Handshake(e),
            e => TlsError::Connection(e),
        }
    }

    /// Move decrypted bytes out of rustls (whose buffer for them is one record).
    fn drain_plaintext(&mut self) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // WouldBlock: nothing more for now; anything else is reported by
                // `process_new_packets` or `handle_eof`.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if !got.is_empty() {
            self.plaintext.push_back(Bytes::from(got));
        }
    }

    /// Note a finished handshake.
    fn note_progress(&mut self) {
        if !matches!(self.phase, Phase::Handshaking { .. }) || self.conn.is_handshaking() {
            return;
        }
        self.phase = Phase::Open;
        if let Some(Ok(trusted)) = self.side.verdict() {
            self.events.push_back(TlsEvent::ServerTrusted(trusted));
        }
        let cipher_suite = self
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        self.events
            .push_back(TlsEvent::Established { cipher_suite });
    }
}

/// Where the peer's byte stream stands against TLS record boundaries (a 5-byte header —
/// type, version, length — then `length` bytes). Only the boundaries are read here; rustls
/// judges everything else.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; 5],
    header_seen: usize,
    body_left: usize,
}

impl Framing {
    /// How many leading bytes of `bytes` belong to the current record, and whether they
    /// complete it.
    fn take(&mut self, bytes: &[u8]) -> (usize, bool) {
        let mut used = 0;
        if self.header_seen < self.header.len() {
            let n = (self.header.len() - self.header_seen).min(bytes.len());
            self.header[self.header_seen..self.header_seen + n].copy_from_slice(&bytes[..n]);
            self.header_seen += n;
            used = n;
            if self.header_seen < self.header.len() {
                return (used, false);
            }
            self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
        }
        let n = self.body_left.min(bytes.len() - used);
        self.body_left -= n;
        used += n;
        let complete = self.body_left == 0;
        if complete {
            self.header_seen = 0;
        }
        (used, complete)
    }
}

#[cfg(test)]
mod framing_tests {
    use super::Framing;

    #[test]
    fn finds_record_ends_across_any_split() {
        // Two records: 3-byte body, then 0-byte body, then the start of a third.
        let stream = [22, 3, 3, 0, 3, b'a', b'b', b'c', 21, 3, 3, 0, 0, 23, 3];
        for chunk in 1..=stream.len() {
            let mut f = Framing::default();
            let mut ends = Vec::new();
            let mut pos = 0;
            for piece in stream.chunks(chunk) {
                let mut piece = piece;
                while !piece.is_empty() {
                    let (n, complete) = f.take(piece);
                    pos += n;
                    if complete {
                        ends.push(pos);
                    }
                    piece = &piece[n..];
                }
            }
            assert_eq!(ends, [8, 13], "chunk {chunk}");
        }
    }
}
