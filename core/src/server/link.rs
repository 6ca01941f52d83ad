//! A connection's byte path: in clear, or through a TLS session once the client asked for
//! `STARTTLS`.
//!
//! The core owns the transform, so a runtime moves the bytes of the wire and nothing else:
//! every byte the core hands out goes through [`Link::seal`] (and comes out as TLS records
//! on an upgraded connection), every byte that arrives through [`Link::open`]. What the
//! core accounts for — a connection's unsent output, where a private message ends in the
//! stream — is counted in sealed bytes, the bytes the runtime actually writes.

use bytes::Bytes;

use crate::time::UnixMillis;
use crate::tls::{ServerSession, TlsError, TlsEvent};

/// How a connection's bytes travel.
#[derive(Debug, Default)]
pub enum Link {
    /// In clear: what the core sends is what goes on the wire.
    #[default]
    Clear,
    /// Through TLS, from the byte after the `220` that answered `STARTTLS`.
    Tls(Box<Tls>),
}

/// An upgraded connection's session and what became of it.
#[derive(Debug)]
pub struct Tls {
    session: ServerSession,
    /// The session failed or the peer ended it: nothing more is sealed.
    done: bool,
}

/// What bytes from the peer carried, besides plaintext.
#[derive(Debug, Default)]
pub struct Opened {
    /// The session's events, in order.
    pub events: Vec<TlsEvent>,
    /// Bytes to write back (the handshake's answers, an alert): already sealed.
    pub reply: Option<Bytes>,
    /// The session failed: say why, write `reply` (its alert), then close.
    pub error: Option<TlsError>,
}

impl Link {
    /// A link upgraded to `session`.
    pub fn tls(session: ServerSession) -> Self {
        Link::Tls(Box::new(Tls {
            session,
            done: false,
        }))
    }

    /// Whether the connection was upgraded.
    pub fn is_tls(&self) -> bool {
        matches!(self, Link::Tls(_))
    }

    /// The bytes to write for `plaintext`: the same bytes in clear; TLS records on an
    /// upgraded connection (nothing yet while its handshake runs: the session keeps them
    /// until it is done). `None` once the session failed or ended: nothing more goes out.
    pub fn seal(&mut self, plaintext: Bytes, now: UnixMillis) -> Option<Bytes> {
        match self {
            Link::Clear => Some(plaintext),
            Link::Tls(t) if t.done => None,
            Link::Tls(t) => match t.session.send(&plaintext, now) {
                Ok(()) => Some(t.session.poll_transmit().unwrap_or_default()),
                Err(_) => {
                    t.done = true;
                    None
                }
            },
        }
    }

    /// Feed bytes from the peer (an upgraded connection only); its plaintext goes to
    /// `plaintext`, piece by piece, in order.
    pub fn open(
        &mut self,
        bytes: &[u8],
        now: UnixMillis,
        mut plaintext: impl FnMut(&[u8]),
    ) -> Opened {
        let Link::Tls(t) = self else {
            plaintext(bytes);
            return Opened::default();
        };
        if t.done {
            return Opened::default();
        }
        let result = t.session.handle_wire(bytes, now);
        t.opened(result, &mut plaintext)
    }

    /// Time passed: fail the handshake if its deadline has come.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Opened {
        match self {
            Link::Tls(t) if !t.done => {
                let result = t.session.handle_timeout(now);
                t.opened(result, &mut |_: &[u8]| {})
            }
            _ => Opened::default(),
        }
    }

    /// When [`Link::handle_timeout`] is due: the handshake's deadline, while it runs.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        match self {
            Link::Tls(t) if !t.done => t.session.poll_timeout(),
            _ => None,
        }
    }

    /// The last bytes of an upgraded connection the server closes: its `close_notify`.
    pub fn close(&mut self) -> Option<Bytes> {
        match self {
            Link::Tls(t) if !t.done => {
                t.done = true;
                t.session.close();
                t.session.poll_transmit()
            }
            _ => None,
        }
    }
}

impl Tls {
    fn opened(
        &mut self,
        result: Result<(), TlsError>,
        plaintext: &mut impl FnMut(&[u8]),
    ) -> Opened {
        let mut opened = Opened::default();
        // A peer's `close_notify` ends only its direction (TLS 1.3): the replies to what it
        // sent before still go out, and the end of the TCP connection follows.
        while let Some(event) = self.session.poll_event() {
            opened.events.push(event);
        }
        while let Some(p) = self.session.poll_plaintext() {
            plaintext(&p);
        }
        opened.reply = self.session.poll_transmit();
        if let Err(e) = result {
            self.done = true;
            opened.error = Some(e);
        }
        opened
    }
}
