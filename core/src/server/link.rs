//! A connection's byte path: in clear, or through a TLS session once the client asked for
//! `STARTTLS`.
//!
//! The core owns the transform, so a runtime moves the bytes of the wire and nothing else:
//! every byte the core hands out goes through [`Link::seal`] (and comes out as TLS records
//! on an upgraded connection), every byte that arrives through [`Link::open`]. What the
//! core accounts for — a connection's unsent output, where a private message ends in the
//! stream — is counted in sealed bytes, the bytes the runtime actually writes.
//!
//! Fan-out to an upgraded connection is *staged* ([`Link::stage`]): a batch's events for it
//! are gathered and sealed as one record at the end of the batch ([`Link::seal_staged`]), or
//! as soon as a record's worth ([`MAX_STAGED`]) has gathered, instead of one record per
//! event per recipient — a record's fixed cost (its header, tag and buffers) is most of what
//! sealing a chat line costs. Whatever else is sealed for the connection ([`Link::seal`],
//! [`Link::close`]) takes the staged bytes first, so its stream keeps the order it was given.

use bytes::{Bytes, BytesMut};

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

/// Staged plaintext at which it is sealed at once: one full TLS record (16 KiB), so staging
/// never holds more than a record per connection.
pub const MAX_STAGED: usize = 16 * 1024;

/// An upgraded connection's session and what became of it.
#[derive(Debug)]
pub struct Tls {
    session: ServerSession,
    /// The session failed or the peer ended it: nothing more is sealed.
    done: bool,
    /// Fan-out waiting to be sealed, in order, ahead of anything sealed later.
    staged: BytesMut,
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
            staged: BytesMut::new(),
        }))
    }

    /// Whether the connection was upgraded.
    pub fn is_tls(&self) -> bool {
        matches!(self, Link::Tls(_))
    }

    /// The bytes to write for `plaintext`: the same bytes in clear; TLS records on an
    /// upgraded connection (nothing yet while its handshake runs: the session keeps them
    /// until it is done). `None` once the session failed or ended: nothing more goes out.
    /// Staged bytes go first, in the same record.
    pub fn seal(&mut self, plaintext: Bytes, now: UnixMillis) -> Option<Bytes> {
        match self {
            Link::Clear => Some(plaintext),
            Link::Tls(t) if t.done => None,
            Link::Tls(t) if t.staged.is_empty() => t.send(&plaintext, now),
            Link::Tls(t) => {
                t.staged.extend_from_slice(&plaintext);
                let all = std::mem::take(&mut t.staged);
                t.send(&all, now)
            }
        }
    }

    /// Gather fan-out for an upgraded connection, to be sealed with what comes next or by
    /// [`Link::seal_staged`]. Returns how many bytes are staged now; `None` (and nothing
    /// staged) on a connection in clear or whose session is over.
    pub fn stage(&mut self, plaintext: &[u8]) -> Option<usize> {
        match self {
            Link::Tls(t) if !t.done => {
                t.staged.extend_from_slice(plaintext);
                Some(t.staged.len())
            }
            _ => None,
        }
    }

    /// Seal what is staged; `None` if nothing is (or the session is over).
    pub fn seal_staged(&mut self, now: UnixMillis) -> Option<Bytes> {
        match self {
            Link::Tls(t) if !t.done && !t.staged.is_empty() => {
                let all = std::mem::take(&mut t.staged);
                t.send(&all, now).filter(|w| !w.is_empty())
            }
            _ => None,
        }
    }

    /// Drop what is staged (the connection is cut: nothing more goes out).
    pub fn discard_staged(&mut self) {
        if let Link::Tls(t) = self {
            t.staged = BytesMut::new();
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

    /// The last bytes of an upgraded connection the server closes: what is staged, then its
    /// `close_notify`.
    pub fn close(&mut self, now: UnixMillis) -> Option<Bytes> {
        match self {
            Link::Tls(t) if !t.done => {
                if !t.staged.is_empty() {
                    let all = std::mem::take(&mut t.staged);
                    // A failure here only loses what could not be sent anyway.
                    let _ = t.session.send(&all, now);
                }
                t.done = true;
                t.session.close();
                t.session.poll_transmit()
            }
            _ => None,
        }
    }
}

impl Tls {
    /// Seal `plaintext` and take the records; a failed session is done.
    fn send(&mut self, plaintext: &[u8], now: UnixMillis) -> Option<Bytes> {
        match self.session.send(plaintext, now) {
            Ok(()) => Some(self.session.poll_transmit().unwrap_or_default()),
            Err(_) => {
                self.done = true;
                None
            }
        }
    }

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
