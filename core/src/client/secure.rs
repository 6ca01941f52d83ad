//! How the client protects the text link: `STARTTLS` right after the greeting, the server's
//! certificate judged by [`crate::tls::trust`], and never a password in clear to a server that
//! is not on loopback (see [`crate::proto::starttls`] for the exchange).

use std::net::IpAddr;

use bytes::Bytes;

use super::output::{ClientOutput, ExitStatus, Tone};
use super::{Client, State};
use crate::proto::reply::{Code, Reply};
use crate::proto::starttls::{STARTTLS, offers_starttls};
use crate::time::UnixMillis;
use crate::tls::{ClientSession, ClientTls, HostPort, KnownHosts, TlsError, TlsEvent};

/// How the client protects its link to the server.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// Never upgrade: everything in clear (`huddle client --insecure`, for testing only; and
    /// a bare core in tests).
    #[default]
    Clear,
    /// Upgrade with `STARTTLS` before the user name, trusting the server as
    /// [`TlsSetup::tls`] decides. A server that does not offer TLS is spoken to in clear only
    /// if it is on loopback.
    Tls(Box<TlsSetup>),
}

/// What the client needs to upgrade: whom it trusts and whom it talks to.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The certificate authorities it believes, and whether loopback is exempt.
    pub tls: ClientTls,
    /// The server as the user named it (`host:port`): the name its pin is filed under and
    /// a CA-signed certificate must carry.
    pub server: HostPort,
    /// The address actually connected to: it decides whether the server is on loopback.
    pub server_ip: IpAddr,
    /// The pins of the known-hosts file, as read at start.
    pub known_hosts: KnownHosts,
    /// Seeds the session's randomness (from the OS; fixed in tests and simulations).
    pub seed: [u8; 32],
}

/// The client's byte path to the server.
#[derive(Debug, Default)]
pub(super) enum Link {
    /// In clear.
    #[default]
    Clear,
    /// Through TLS, from the byte after the server's `220`.
    Tls(Box<ClientSession>),
    /// TLS failed: nothing more goes in or out.
    Broken,
}

impl Link {
    pub(super) fn is_tls(&self) -> bool {
        matches!(self, Link::Tls(_))
    }
}

impl Client {
    /// The greeting (`331`) came, in clear or inside TLS: upgrade, go on, or refuse.
    pub(super) fn on_greeting(&mut self, reply: Reply) {
        let setup = match (&self.link, &self.config.security) {
            (Link::Clear, Security::Tls(setup)) if reply.code == Code::ASK_USER => setup.clone(),
            // Inside TLS, in clear by choice, or a refusal (421: the server is full).
            _ => {
                self.show(Tone::Info, reply.text());
                self.after_greeting();
                return;
            }
        };
        if offers_starttls(&reply.text()) {
            self.send_line(STARTTLS);
            self.state = State::StartingTls;
            return;
        }
        self.without_tls(&setup, &reply, "does not offer TLS");
    }

    /// The answer to `STARTTLS`.
    pub(super) fn on_starttls_answer(&mut self, reply: Reply, now: UnixMillis) {
        let Security::Tls(setup) = self.config.security.clone() else {
            return;
        };
        if reply.code != Code::READY_FOR_TLS {
            self.without_tls(&setup, &reply, "refused STARTTLS");
            return;
        }
        if self.framer.buffered() > 0 {
            // Bytes behind the 220 were not sent through TLS: whoever put them there could
            // have forged any reply.
            self.protocol_error(
                "the server sent bytes after agreeing to start TLS, before the TLS session \
                 (refused: someone may be tampering with the connection)",
            );
            return;
        }
        match setup.tls.connect(
            &setup.server,
            setup.server_ip,
            &setup.known_hosts,
            setup.seed,
            now,
        ) {
            Ok(session) => {
                self.link = Link::Tls(Box::new(session));
                // The server greets again inside TLS.
                self.state = State::Greeting;
                self.transmit();
            }
            Err(e) => self.tls_failed(e),
        }
    }

    /// The server cannot be upgraded: go on in clear on loopback, refuse otherwise.
    fn without_tls(&mut self, setup: &TlsSetup, reply: &Reply, what: &str) {
        let server = &setup.server;
        if setup.tls.exempts(setup.server_ip) {
            self.show(
                Tone::Notice,
                format!(
                    "TLS: {server} {what}; it is on loopback, so the connection goes on in clear"
                ),
            );
            if reply.code == Code::ASK_USER {
                self.show(Tone::Info, reply.text());
            }
            self.after_greeting();
            return;
        }
        self.show(
            Tone::Error,
            format!(
                "The server at {server} {what} ({}): refusing to send a user name and password \
                 in clear to a server that is not on loopback. Nothing was sent. (`--insecure` \
                 connects in clear anyway, for testing only.)",
                reply.text()
            ),
        );
        self.exit(ExitStatus::Untrusted);
    }

    /// Bytes from the server on an upgraded link: open them; their plaintext goes to the
    /// line framer. Returns false if the session failed (the client is exiting).
    pub(super) fn open_tls(&mut self, bytes: &[u8], now: UnixMillis) -> bool {
        let Link::Tls(session) = &mut self.link else {
            return true;
        };
        let result = session.handle_wire(bytes, now);
        self.after_session(result)
    }

    /// Time passed: the handshake's deadline.
    pub(super) fn tls_timeout(&mut self, now: UnixMillis) {
        if let Link::Tls(session) = &mut self.link {
            let result = session.handle_timeout(now);
            self.after_session(result);
        }
    }

    /// When the session next wants [`Client::tls_timeout`].
    pub(super) fn tls_poll_timeout(&self) -> Option<UnixMillis> {
        match &self.link {
            Link::Tls(session) => session.poll_timeout(),
            _ => None,
        }
    }

    /// What a call into the session produced: events, plaintext, bytes to send, a failure.
    fn after_session(&mut self, result: Result<(), TlsError>) -> bool {
        let Link::Tls(session) = &mut self.link else {
            return false;
        };
        let mut events = Vec::new();
        while let Some(e) = session.poll_event() {
            events.push(e);
        }
        let mut plaintext = Vec::new();
        while let Some(p) = session.poll_plaintext() {
            plaintext.push(p);
        }
        for event in events {
            match event {
                TlsEvent::ServerTrusted(trusted) => {
                    self.show(Tone::Notice, trusted.to_string());
                    if let Some(pin) = trusted.pin_to_record() {
                        self.outputs.push_back(ClientOutput::PinServer(pin));
                    }
                }
                TlsEvent::PeerClosed { .. } => self.server_closing = true,
                TlsEvent::Established { .. } => {}
            }
        }
        for p in plaintext {
            self.received(&p);
        }
        self.transmit();
        match result {
            Ok(()) => true,
            Err(e) => {
                self.tls_failed(e);
                false
            }
        }
    }

    /// The session failed: say why (a changed certificate in ssh's words), send its alert,
    /// stop.
    fn tls_failed(&mut self, e: TlsError) {
        self.transmit();
        let during_handshake = match &self.link {
            Link::Tls(s) => !s.is_established(),
            _ => true,
        };
        self.link = Link::Broken;
        match &e {
            TlsError::Refused(_) => self.show(Tone::Error, e.to_string()),
            _ => self.show(Tone::Error, format!("TLS failed: {e}. Disconnecting.")),
        }
        self.exit(if during_handshake {
            ExitStatus::Untrusted
        } else {
            ExitStatus::ConnectionLost
        });
    }

    /// Seal `bytes` for the server (on an upgraded link) and queue them.
    pub(super) fn send_bytes(&mut self, bytes: Bytes) {
        let now = self.clock.now();
        match &mut self.link {
            Link::Clear => self.outputs.push_back(ClientOutput::Send(bytes)),
            Link::Tls(session) => {
                if let Err(e) = session.send(&bytes, now) {
                    self.tls_failed(e);
                    return;
                }
                self.transmit();
            }
            Link::Broken => {}
        }
    }

    /// Queue what the session has to send.
    fn transmit(&mut self) {
        if let Link::Tls(session) = &mut self.link {
            while let Some(wire) = session.poll_transmit() {
                self.outputs.push_back(ClientOutput::Send(wire));
            }
        }
    }

    /// Leaving first: end an upgraded session with `close_notify` (not when the server is
    /// closing already: it has said its own).
    pub(super) fn close_tls(&mut self) {
        if self.server_closing {
            return;
        }
        if let Link::Tls(session) = &mut self.link
            && session.is_established()
        {
            session.close();
            self.transmit();
        }
    }
}
