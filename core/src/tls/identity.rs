//! The server's certificate chain and private key, parsed and checked once.
//!
//! PEM and DER are parsed here (not I/O: the runtime reads the files and hands the bytes in),
//! so that both runtimes and the simulator refuse the same bad files with the same words.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::fingerprint::Fingerprint;
use super::provider::provider;

/// A certificate chain (leaf first) and the private key of its leaf, known to belong together.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    key: Arc<CertifiedKey>,
    fingerprint: Fingerprint,
}

/// Why a certificate or key cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate file has a broken PEM section.
    #[error("the certificate file is not valid PEM: {0}")]
    CertificatePem(String),
    /// No `CERTIFICATE` section.
    #[error(
        "the certificate file holds no certificate (no `-----BEGIN CERTIFICATE-----` section){hint}"
    )]
    NoCertificate {
        /// A guess at the cause, or empty.
        hint: &'static str,
    },
    /// The key file has a broken PEM section.
    #[error("the key file is not valid PEM: {0}")]
    KeyPem(String),
    /// No private-key section.
    #[error("the key file holds no private key (no `-----BEGIN PRIVATE KEY-----` section){hint}")]
    NoKey {
        /// A guess at the cause, or empty.
        hint: &'static str,
    },
    /// The key is not the one the certificate was made for.
    #[error(
        "the private key does not belong to the certificate (their public keys differ): give \
         the key that was generated together with this certificate"
    )]
    KeyMismatch,
    /// rustls cannot use them (an unsupported key type, a malformed certificate).
    #[error("the certificate or key cannot be used: {0}")]
    Unusable(String),
}

const SWAPPED: &str = ": it holds a private key — are the certificate and the key swapped?";
const SWAPPED_KEY: &str = ": it holds a certificate — are the certificate and the key swapped?";

impl ServerIdentity {
    /// From the PEM text of a certificate chain (leaf first) and of its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, pem::Error>>()
            .map_err(|e| IdentityError::CertificatePem(e.to_string()))?;
        if chain.is_empty() {
            let hint = if PrivateKeyDer::from_pem_slice(cert_pem).is_ok() {
                SWAPPED
            } else {
                ""
            };
            return Err(IdentityError::NoCertificate { hint });
        }
        let key = match PrivateKeyDer::from_pem_slice(key_pem) {
            Ok(key) => key,
            Err(pem::Error::NoItemsFound) => {
                let hint = if CertificateDer::pem_slice_iter(key_pem).next().is_some() {
                    SWAPPED_KEY
                } else {
                    ""
                };
                return Err(IdentityError::NoKey { hint });
            }
            Err(e) => return Err(IdentityError::KeyPem(e.to_string())),
        };
        Self::new(chain, key)
    }

    /// From DER: the chain (leaf first) and the leaf's private key.
    pub fn from_der(chain: Vec<Vec<u8>>, key: Vec<u8>) -> Result<Self, IdentityError> {
        if chain.is_empty() {
            return Err(IdentityError::NoCertificate { hint: "" });
        }
        let key = PrivateKeyDer::try_from(key).map_err(|e| IdentityError::Unusable(e.into()))?;
        Self::new(chain.into_iter().map(CertificateDer::from).collect(), key)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, IdentityError> {
        let fingerprint = Fingerprint::of_certificate(&chain[0]);
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
            Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => IdentityError::KeyMismatch,
            other => IdentityError::Unusable(other.to_string()),
        })?;
        Ok(Self {
            key: Arc::new(key),
            fingerprint,
        })
    }

    /// The fingerprint of the leaf certificate: what the server prints at start and clients
    /// pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.key.clone()
    }
}
