//! `STARTTLS` on the server: the upgrade of a connection, what its TLS session says, and who
//! may log in without it (see [`crate::proto::starttls`] for the exchange).

use bytes::Bytes;

use super::link::{Link, Opened};
use super::timers::TimerKind;
use super::{ConnId, Output, Server};
use crate::proto::reply::{Code, Reply};
use crate::proto::starttls::GREETING;
use crate::tls::TlsEvent;

impl Server {
    /// `STARTTLS` before the user name: answer `220` in clear, then route the connection's
    /// bytes through a new TLS session.
    pub(super) fn on_starttls(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let peer = c.peer;
        if c.link.is_tls() {
            self.reply(
                conn,
                Reply::new(
                    Code::BAD_SEQUENCE,
                    "This connection is already encrypted: STARTTLS comes only once.",
                ),
            );
            return;
        }
        let Some(tls) = self.config.tls.clone() else {
            self.reply(
                conn,
                Reply::new(
                    Code::NOT_AVAILABLE,
                    "STARTTLS is not available: this server has no certificate.",
                ),
            );
            return;
        };
        if c.framer.buffered() > 0 {
            // Plaintext sent behind STARTTLS would be read as if it came through TLS: the
            // STARTTLS command injection of CVE-2011-0411. Feed it to neither side.
            let pending = c.framer.buffered();
            self.log(format!(
                "{peer}: {pending} byte(s) came after STARTTLS before the server's answer; connection closed (a possible injection)"
            ));
            self.reply(
                conn,
                Reply::new(
                    Code::CLOSING,
                    "Bytes followed STARTTLS before the server's answer: refused as a possible injection. Send STARTTLS, wait for 220, then start TLS. Goodbye.",
                ),
            );
            self.close(conn);
            return;
        }
        // The 220 goes out in clear; everything after it through the session.
        self.reply(conn, Reply::new(Code::READY_FOR_TLS, "Ready to start TLS"));
        let now = self.now();
        let seed = self.random_bytes::<32>();
        let session = match tls.accept(seed, now) {
            Ok(s) => s,
            Err(e) => {
                self.log(format!(
                    "{peer}: TLS could not start: {e}; connection closed"
                ));
                self.close(conn);
                return;
            }
        };
        let deadline = session.poll_timeout();
        if let Some(c) = self.conns.get_mut(conn) {
            c.link = Link::tls(session);
            if let Some(at) = deadline {
                self.timers
                    .arm(&mut c.armed, conn, TimerKind::Handshake, at);
            }
        }
        self.log(format!("{peer} asked for TLS"));
    }

    /// Carry out what a connection's TLS session said after an input: write its answer,
    /// greet inside TLS once the handshake is done, close it if it failed.
    pub(super) fn after_tls(&mut self, conn: ConnId, opened: Opened) {
        let Opened {
            events,
            reply,
            error,
        } = opened;
        if let Some(wire) = reply {
            self.hand_out_sealed(conn, wire);
        }
        let peer = self.peer(conn);
        for event in events {
            match event {
                TlsEvent::Established { cipher_suite } => {
                    self.log(format!("{peer}: TLS established ({cipher_suite})"));
                    self.reply(conn, Reply::new(Code::ASK_USER, GREETING));
                }
                TlsEvent::PeerClosed { .. } | TlsEvent::ServerTrusted(_) => {}
            }
        }
        if let Some(e) = error {
            self.log(format!("{peer}: TLS failed: {e}; connection closed"));
            self.close(conn);
        }
    }

    /// The handshake deadline of `conn` came (or seemed to).
    pub(super) fn on_handshake_timeout(&mut self, conn: ConnId) {
        let now = self.now();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let opened = c.link.handle_timeout(now);
        self.after_tls(conn, opened);
    }

    /// Hand already sealed bytes (TLS records) to the driver, accounting for them.
    pub(super) fn hand_out_sealed(&mut self, conn: ConnId, wire: Bytes) {
        if !wire.is_empty() && self.account(conn, wire.len(), None) {
            self.outputs.push_back(Output::Send { conn, bytes: wire });
        }
    }

    /// Whether `conn` may send a user name now: over TLS always; in clear only from an
    /// address [`ServerConfig::plaintext_login`](super::ServerConfig::plaintext_login)
    /// allows. Refuses with `530` otherwise.
    pub(super) fn may_log_in(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(conn) else {
            return false;
        };
        if c.link.is_tls() || self.config.plaintext_login.allows(c.peer.ip()) {
            return true;
        }
        let peer = c.peer;
        self.log(format!(
            "{peer}: refused a user name sent in clear (TLS is required from this address)"
        ));
        let how = if self.config.tls.is_some() {
            "send STARTTLS first (the huddle client does so unless started with --insecure)"
        } else {
            "this server has no certificate, so it accepts logins only from loopback"
        };
        self.reply(
            conn,
            Reply::new(
                Code::TLS_REQUIRED,
                format!(
                    "This server accepts user names and passwords from {} only over TLS: {how}.",
                    peer.ip()
                ),
            ),
        );
        false
    }
}
