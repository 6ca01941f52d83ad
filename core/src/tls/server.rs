//! The server side: one configuration built from the server's identity, one session per client.

use std::sync::Arc;

use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{Connection, ServerConfig, ServerConnection};

use super::clock::InputClock;
use super::config::TlsLimits;
use super::entropy::SessionRng;
use super::error::TlsError;
use super::fingerprint::Fingerprint;
use super::identity::ServerIdentity;
use super::provider::provider;
use super::session::{ServerSession, ServerSide, Session};
use crate::time::UnixMillis;

/// The server's TLS configuration, shared by all its sessions.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    clock: Arc<InputClock>,
    limits: TlsLimits,
    fingerprint: Fingerprint,
}

/// Always the one certificate: a huddle server has a single identity, whatever name a client
/// asks for.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ServerTls {
    /// A configuration serving `identity`.
    ///
    /// Session resumption is off (no tickets, no session cache): a huddle client connects once
    /// and stays, so resumption would buy nothing and keep per-client state on the server.
    pub fn new(identity: &ServerIdentity, limits: TlsLimits) -> Result<Self, TlsError> {
        Self::serving(identity.certified_key(), identity.fingerprint(), limits)
    }

    /// A configuration presenting `key` (whose certificate and key a [`ServerIdentity`] has
    /// checked belong together; tests use it to build an impostor whose do not).
    pub(super) fn serving(
        key: Arc<CertifiedKey>,
        fingerprint: Fingerprint,
        limits: TlsLimits,
    ) -> Result<Self, TlsError> {
        let clock = Arc::new(InputClock::default());
        let mut config = ServerConfig::builder_with_details(provider(), clock.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(OneCertificate(key)));
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(Self {
            config: Arc::new(config),
            clock,
            limits,
            fingerprint,
        })
    }

    /// The fingerprint of the server's certificate, to print at start.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// A session for a client that just asked for TLS. `seed` seeds the session's randomness:
    /// from the server's own seeded generator, so a server replays from its seed.
    pub fn accept(&self, seed: [u8; 32], now: UnixMillis) -> Result<ServerSession, TlsError> {
        self.clock.observe(now);
        let mut rng = SessionRng::from_seed(seed);
        let config = self.config.clone();
        let conn = rng
            .lend(|| ServerConnection::new(config))
            .map_err(TlsError::Setup)?;
        Ok(Session::new(
            Connection::Server(conn),
            ServerSide,
            rng,
            self.clock.clone(),
            self.limits,
            now,
        ))
    }
}
