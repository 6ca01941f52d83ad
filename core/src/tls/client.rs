//! The client side: whom to trust, and a session to one server.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore};
use rustls_pki_types::CertificateDer;

use super::clock::InputClock;
use super::config::TlsLimits;
use super::entropy::SessionRng;
use super::error::TlsError;
use super::known_hosts::{HostPort, KnownHosts};
use super::provider::provider;
use super::session::{ClientSession, ClientSide, Session};
use super::trust::Verifier;
use crate::time::UnixMillis;

/// The client's trust anchors and limits: which certificate authorities it believes.
///
/// Pins (the known-hosts file) are handed to each [`ClientTls::connect`], because the runtime
/// reads them afresh for every connection and appends to them.
#[derive(Debug, Clone)]
pub struct ClientTls {
    authorities: Option<Arc<WebPkiServerVerifier>>,
    limits: TlsLimits,
}

impl ClientTls {
    /// Trust the certificate authorities Mozilla trusts (compiled in from `webpki-roots`, so
    /// the client needs no system store), and pins for the rest.
    pub fn with_mozilla_roots(limits: TlsLimits) -> Result<Self, TlsError> {
        let roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
        Self::from_store(roots, limits)
    }

    /// Trust these root certificates (DER) and pins for the rest.
    pub fn with_roots(roots: &[Vec<u8>], limits: TlsLimits) -> Result<Self, TlsError> {
        let mut store = RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.as_slice()).into_owned())
                .map_err(|e| TlsError::BadRoot(e.to_string()))?;
        }
        Self::from_store(store, limits)
    }

    /// Trust no authority: every server is judged by its pin (or accepted on loopback).
    pub fn pins_only(limits: TlsLimits) -> Self {
        Self {
            authorities: None,
            limits,
        }
    }

    fn from_store(store: RootCertStore, limits: TlsLimits) -> Result<Self, TlsError> {
        if store.is_empty() {
            return Ok(Self::pins_only(limits));
        }
        let authorities = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| TlsError::BadRoot(e.to_string()))?;
        Ok(Self {
            authorities: Some(authorities),
            limits,
        })
    }

    /// A session to `server` (as the user named it), reached at `server_ip` (the address
    /// actually connected to: it decides whether the server is on loopback). `known_hosts`
    /// holds the pins; `seed` seeds the session's randomness (from the OS in production).
    ///
    /// The ClientHello is ready in `poll_transmit` at once.
    pub fn connect(
        &self,
        server: &HostPort,
        server_ip: IpAddr,
        known_hosts: &KnownHosts,
        seed: [u8; 32],
        now: UnixMillis,
    ) -> Result<ClientSession, TlsError> {
        let clock = Arc::new(InputClock::default());
        clock.observe(now);
        let verifier = Arc::new(Verifier::new(
            server.clone(),
            server_ip,
            known_hosts,
            self.authorities.clone(),
            provider().signature_verification_algorithms,
        ));
        let mut config = ClientConfig::builder_with_details(provider(), clock.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        // One long-lived connection per run: nothing to resume, nothing to keep.
        config.resumption = Resumption::disabled();
        let config = Arc::new(config);
        let name = server.server_name();
        let mut rng = SessionRng::from_seed(seed);
        let conn = rng
            .lend(|| ClientConnection::new(config, name))
            .map_err(TlsError::Setup)?;
        Ok(Session::new(
            Connection::Client(conn),
            ClientSide { verifier },
            rng,
            clock,
            self.limits,
            now,
        ))
    }
}
