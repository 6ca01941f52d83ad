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
use super::trust::{Verifier, is_loopback};
use crate::time::UnixMillis;

/// The client's trust anchors and limits: which certificate authorities it believes.
///
/// Pins (the known-hosts file) are handed to each [`ClientTls::connect`], because the runtime
/// reads them afresh for every connection and appends to them.
#[derive(Debug, Clone)]
pub struct ClientTls {
    authorities: Option<Arc<WebPkiServerVerifier>>,
    limits: TlsLimits,
    /// Whether a server on a loopback address is accepted with any certificate (the
    /// default; see [`ClientTls::without_loopback_exemption`]).
    loopback_exempt: bool,
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
            loopback_exempt: true,
        }
    }

    /// Judge a server on a loopback address like any other: by a certificate authority or
    /// by its pin, never "any certificate".
    ///
    /// For a loopback port that is not a local server — an `ssh -L` tunnel or a proxy that
    /// forwards to a remote machine — and for tests, which can only reach loopback
    /// addresses but must see trust on first use and a changed certificate refused.
    pub fn without_loopback_exemption(mut self) -> Self {
        self.loopback_exempt = false;
        self
    }

    /// Whether a server reached at `server_ip` is exempt from certificate checks (on
    /// loopback, unless [`ClientTls::without_loopback_exemption`]). The same answer decides
    /// whether the client may speak in clear to a server that offers no TLS.
    pub fn exempts(&self, server_ip: IpAddr) -> bool {
        self.loopback_exempt && is_loopback(server_ip)
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
            loopback_exempt: true,
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
            self.exempts(server_ip),
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
