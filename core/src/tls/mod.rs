//! TLS for the text link: a Sans-IO byte transform around rustls, and the client's trust
//! policy (certificate authorities, trust on first use, loopback).
//!
//! rustls's connection is itself Sans-IO (`read_tls` / `process_new_packets` / `write_tls`,
//! `reader()` / `writer()`), so TLS is one more transform the core owns: the runtime still
//! only moves bytes. A [`Session`] takes the bytes that came off the socket and gives back the
//! peer's plaintext; it takes plaintext to send and gives back the bytes to write. See
//! [`session`]'s docs for the order to poll in.
//!
//! # Pieces
//! - [`ServerTls`] — the server's configuration, from a [`ServerIdentity`] (its certificate
//!   chain and key, parsed from PEM or DER); [`ServerTls::accept`] makes a [`ServerSession`].
//! - [`ClientTls`] — the certificate authorities the client believes; [`ClientTls::connect`]
//!   makes a [`ClientSession`] to one server, given the server's pins ([`KnownHosts`]). When
//!   its handshake finishes it reports [`TlsEvent::ServerTrusted`] with a [`Trusted`]: why the
//!   certificate was accepted (see [`trust`] for the policy), or it fails with a [`Refusal`].
//! - [`Fingerprint`] — `SHA256:` + base64 of the DER certificate, the one form shown and
//!   stored everywhere.
//! - [`known_hosts`] — the known-hosts record format (parse and render).
//! - [`TlsLimits`] — the handshake deadline and the early-plaintext bound; [`FileLimits`] —
//!   how large a certificate, key or known-hosts file a runtime reads.
//!
//! Time comes from the inputs (`now`, which rustls also sees for certificate dates); the
//! randomness of each session comes from a 32-byte seed (from the OS in production, fixed in
//! tests and simulations), so the same seeds and times give byte-identical handshakes. The
//! key exchange is X25519 and certificates are Ed25519 (deterministic signatures).
//!
//! # How a connection uses it (STARTTLS)
//! The text protocol upgrades in place, as SMTP (RFC 3207) and XMPP do, so `nc` on loopback
//! keeps working in clear (the exchange as both sides speak it: [`crate::proto::starttls`];
//! the reply codes: `core/PROTOCOL.md`):
//! 1. The server's greeting, still one `331 ` line, ends with an offer naming `STARTTLS`.
//! 2. Before login, the client sends `STARTTLS`. The server answers, in plaintext,
//!    `220 Ready to start TLS` and from the next byte on feeds everything it receives on that
//!    connection to [`ServerSession::handle_wire`] and writes only
//!    [`ServerSession::poll_transmit`]'s bytes; its replies go in through
//!    [`ServerSession::send`]. Bytes the client sent after `STARTTLS` *before* the `220` (still
//!    in the line framer's buffer) are an injection attempt (CVE-2011-0411): the server closes
//!    the connection instead of feeding them to either side.
//! 3. The client, on `220`, makes a [`ClientSession`] and sends its ClientHello. Bytes that
//!    arrived after the `220` line in the same read are likewise refused, not read as part of
//!    the TLS stream or as replies.
//! 4. When the handshake finishes the server sends the greeting again inside TLS (without the
//!    offer; a second `STARTTLS` gets `503`), and login proceeds as before: the same
//!    protocol, line for line, now inside TLS. `STARTTLS` after login is refused (`503`).
//! 5. A failed session (a [`TlsError`]) closes the connection after `poll_transmit`'s alert
//!    has been written. The server narrates why (e.g. "the peer ended the TLS session with the
//!    alert BadCertificate during the handshake": a client refused the certificate).
//!
//! The server core keeps one optional `ServerSession` per connection (its `link` module),
//! made by [`ServerTls::accept`] with a seed drawn from the server's seeded generator, and
//! routes the connection's bytes through it, counting the sealed bytes in its output
//! accounting; the client core does the same with its `ClientSession`. A runtime changes
//! nothing but reading the certificate files (and the client runtime, the known-hosts file)
//! at start.

mod client;
mod clock;
mod config;
mod entropy;
mod error;
mod fingerprint;
mod identity;
pub mod known_hosts;
mod kx;
mod provider;
mod server;
pub mod session;
pub mod trust;

#[cfg(test)]
mod tests;

pub use client::ClientTls;
pub use config::{FileLimits, TlsLimits};
pub use error::TlsError;
pub use fingerprint::{FINGERPRINT_PREFIX, Fingerprint, FingerprintError};
pub use identity::{IdentityError, ServerIdentity};
pub use known_hosts::{
    HostPort, HostPortError, KNOWN_HOSTS_FILE, KnownHost, KnownHosts, KnownHostsWarning,
    render_known_host,
};
pub use server::ServerTls;
pub use session::{ClientSession, ServerSession, Session, TlsEvent};
pub use trust::{Basis, Refusal, Trusted, is_loopback};
