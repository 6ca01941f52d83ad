//! Whom the client trusts: a certificate authority, a pin from an earlier visit, or loopback.
//!
//! The policy, judged on the certificate the server presents, in this order:
//! 1. **Loopback** (the client connected to 127.0.0.0/8 or ::1): any certificate is accepted
//!    and the outcome says so. The link is still encrypted; local test servers make a fresh
//!    certificate in every new data folder and must keep working. A client made
//!    [`without_loopback_exemption`](super::ClientTls::without_loopback_exemption) skips this
//!    step (a tunnelled port, tests).
//! 2. **A trusted authority vouches for it** (its chain reaches a root of the store the client
//!    was given — Mozilla's, or one handed in): it must then be wholly valid — dates and name —
//!    or it is refused. A CA-signed certificate that fails its own checks is a misconfiguration
//!    or an attack; it does not fall back to trust on first use.
//! 3. **No authority vouches for it** (self-signed, or an unknown issuer): it is judged by its
//!    pin in the known-hosts file, as ssh judges host keys — an unknown server is accepted and
//!    pinned on first use; a known server must present a pinned certificate, or it is refused
//!    with a warning naming both fingerprints and the line to remove. Its dates are not looked
//!    at: the pin, not a date, is what is trusted.
//!
//! In every case rustls still checks the handshake signature against the presented
//! certificate's key (`verify_tls13_signature` below), so a pin or a loopback acceptance
//! trusts a key whose owner proved possession of it, never a copied certificate.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::fingerprint::Fingerprint;
use super::known_hosts::{HostPort, KnownHost, KnownHosts};

/// Why the client accepted the server's certificate: shown to the user, and for a first use
/// the pin the runtime appends to the known-hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// The server.
    pub server: HostPort,
    /// The certificate it presented.
    pub fingerprint: Fingerprint,
    /// On what grounds it was accepted.
    pub basis: Basis,
}

/// The grounds on which a certificate was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A trusted certificate authority vouches for it and it is valid now for this name.
    Authority,
    /// It matches the pin on this line of the known-hosts file.
    Pinned {
        /// One-based line number.
        line: usize,
    },
    /// The server was unknown: its certificate is pinned now (append
    /// [`Trusted::pin_to_record`] to the known-hosts file).
    FirstUse,
    /// The server is on a loopback address: encrypted, but any certificate is accepted.
    Loopback,
}

impl Trusted {
    /// The pin the runtime must append to the known-hosts file, on a first use only.
    pub fn pin_to_record(&self) -> Option<KnownHost> {
        (self.basis == Basis::FirstUse).then(|| KnownHost {
            server: self.server.clone(),
            fingerprint: self.fingerprint,
        })
    }
}

impl fmt::Display for Trusted {
    /// The line the client prints about the connection's security.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (server, fp) = (&self.server, &self.fingerprint);
        match self.basis {
            Basis::Authority => write!(
                f,
                "TLS: the certificate of {server} is signed by a trusted authority ({fp})"
            ),
            Basis::Pinned { line } => write!(
                f,
                "TLS: the certificate of {server} matches the one pinned on first use \
                 (known_hosts line {line}, {fp})"
            ),
            Basis::FirstUse => write!(
                f,
                "TLS: {server} is new: its certificate is pinned on first use, fingerprint {fp}. \
                 Compare it with the one the server printed at start."
            ),
            Basis::Loopback => write!(
                f,
                "TLS: {server} is on loopback: the link is encrypted but any certificate is \
                 accepted ({fp})"
            ),
        }
    }
}

/// Why the client refused the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server is pinned with another certificate: what ssh calls a changed host key.
    #[error(
        "WARNING: THE CERTIFICATE OF {server} HAS CHANGED!\n\
         Someone may be intercepting this connection (a man-in-the-middle attack), or the \
         server's certificate was replaced.\n\
         Pinned:    {pinned} ({origin} line {line})\n\
         Presented: {presented}\n\
         The connection was refused and nothing was sent. If the change is expected, check the \
         new fingerprint with the server's operator, remove line {line} from {origin} and \
         connect again."
    )]
    CertificateChanged {
        /// The server.
        server: HostPort,
        /// The fingerprint pinned for it.
        pinned: Fingerprint,
        /// The fingerprint it presented now.
        presented: Fingerprint,
        /// The known-hosts file (its path).
        origin: String,
        /// The line of the pin.
        line: usize,
    },
    /// A trusted authority vouches for the certificate but it is not valid.
    #[error(
        "the certificate of {server} is signed by a trusted authority but {problem}; the \
         connection was refused"
    )]
    Authority {
        /// The server.
        server: HostPort,
        /// What is wrong, e.g. "expired at 2026-01-01 00:00:00 UTC (now 2026-02-01 …)".
        problem: String,
    },
    /// The certificate cannot be judged at all (malformed, unsupported algorithm).
    #[error("the certificate of {server} cannot be used: {problem}; the connection was refused")]
    Unusable {
        /// The server.
        server: HostPort,
        /// What is wrong.
        problem: String,
    },
}

/// The verdict the verifier reached, read by the session after the handshake.
pub(crate) type Verdict = Result<Trusted, Refusal>;

/// The certificate verifier rustls calls: our policy around webpki.
#[derive(Debug)]
pub(crate) struct Verifier {
    server: HostPort,
    /// Whether the address actually connected to is exempt (loopback, unless the client
    /// judges loopback like any server); a name may resolve anywhere, so the address decides.
    loopback_exempt: bool,
    /// The pins of this server: (line, fingerprint).
    pins: Vec<(usize, Fingerprint)>,
    origin: String,
    /// The authority check; `None` when the client was given no roots (pins only).
    authorities: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    verdict: Mutex<Option<Verdict>>,
}

impl Verifier {
    pub(crate) fn new(
        server: HostPort,
        loopback_exempt: bool,
        known_hosts: &KnownHosts,
        authorities: Option<Arc<WebPkiServerVerifier>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        let pins = known_hosts.pins_for(&server).collect();
        Self {
            pins,
            origin: known_hosts.origin().to_owned(),
            server,
            loopback_exempt,
            authorities,
            algorithms,
            verdict: Mutex::new(None),
        }
    }

    /// The verdict, once rustls asked for one.
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        self.verdict.lock().ok().and_then(|v| v.clone())
    }

    /// The verdict, and on a refusal the error rustls should act on (it picks the alert the
    /// server receives from it).
    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<Trusted, Box<(Refusal, Error)>> {
        let fingerprint = Fingerprint::of_certificate(end_entity);
        let trusted = |basis| Trusted {
            server: self.server.clone(),
            fingerprint,
            basis,
        };
        if self.loopback_exempt {
            return Ok(trusted(Basis::Loopback));
        }
        let authority = |at: UnixTime| match &self.authorities {
            Some(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, &[], at)
                .map(|_| ()),
            None => Err(CertificateError::UnknownIssuer.into()),
        };
        let unknown_issuer = |r: &Result<(), Error>| {
            matches!(
                r,
                Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
            )
        };
        let error = match authority(now) {
            Ok(()) => return Ok(trusted(Basis::Authority)),
            Err(e) => e,
        };
        let problem = match &error {
            Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                return self.by_pin(fingerprint).map(trusted);
            }
            // A self-signed certificate marked as a CA (`openssl req -x509` makes them so):
            // no authority vouches for it either, and the pin is what trusts it.
            Error::InvalidCertificate(CertificateError::Other(other))
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                return self.by_pin(fingerprint).map(trusted);
            }
            // webpki checks the dates before it looks for an issuer, so whether an authority
            // vouches for a certificate out of its dates is asked again inside them.
            Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => {
                if unknown_issuer(&authority(*not_after)) {
                    return self.by_pin(fingerprint).map(trusted);
                }
                format!("it expired at {} (now {})", utc(*not_after), utc(*time))
            }
            Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time,
                not_before,
            }) => {
                if unknown_issuer(&authority(*not_before)) {
                    return self.by_pin(fingerprint).map(trusted);
                }
                format!(
                    "it is not valid before {} (now {}): is this machine's clock right?",
                    utc(*not_before),
                    utc(*time)
                )
            }
            Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => format!(
                "it is not valid for {} (it names {}): connect with one of those names",
                self.host_text(),
                if presented.is_empty() {
                    "no host at all".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            Error::InvalidCertificate(CertificateError::NotValidForName) => {
                format!("it is not valid for {}", self.host_text())
            }
            other => {
                let refusal = Refusal::Unusable {
                    server: self.server.clone(),
                    problem: other.to_string(),
                };
                return Err(Box::new((refusal, error)));
            }
        };
        let refusal = Refusal::Authority {
            server: self.server.clone(),
            problem,
        };
        Err(Box::new((refusal, error)))
    }

    fn host_text(&self) -> String {
        let text = self.server.to_string();
        let port = format!(":{}", self.server.port());
        text.strip_suffix(&port).unwrap_or(&text).to_owned()
    }

    /// Trust on first use.
    fn by_pin(&self, presented: Fingerprint) -> Result<Basis, Box<(Refusal, Error)>> {
        if let Some((line, _)) = self.pins.iter().find(|(_, fp)| *fp == presented) {
            return Ok(Basis::Pinned { line: *line });
        }
        match self.pins.first() {
            None => Ok(Basis::FirstUse),
            Some((line, pinned)) => Err(Box::new((
                Refusal::CertificateChanged {
                    server: self.server.clone(),
                    pinned: *pinned,
                    presented,
                    origin: self.origin.clone(),
                    line: *line,
                },
                Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            ))),
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let (verdict, result) = match self.judge(end_entity, intermediates, server_name, now) {
            Ok(trusted) => (Ok(trusted), Ok(ServerCertVerified::assertion())),
            Err(rejection) => {
                let (refusal, error) = *rejection;
                (Err(refusal), Err(error))
            }
        };
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z): the one
/// definition of "on loopback" the client's trust and the server's plaintext rule share.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// A UNIX time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_covers_the_whole_v4_block_v6_and_mapped_addresses() {
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "0.0.0.0"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(
            utc(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                0
            ))),
            "1970-01-01 00:00:00 UTC"
        );
    }
}
