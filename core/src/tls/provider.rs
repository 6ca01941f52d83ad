//! Our rustls crypto provider: ring's TLS 1.3 ciphers and signatures, our seeded randomness.
//!
//! Everything cryptographic is ring's (AEADs, HKDF, signature checks, private keys) or
//! `x25519-dalek`'s (the key exchange); what is ours is only where the random bytes come from
//! (see `entropy`). Only TLS 1.3 is built: both ends are huddle, so there is no older peer to
//! talk to, and 1.3 has one round trip and no renegotiation.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring as ring_provider;

use super::entropy::LentRandom;
use super::kx::SeededX25519;

static LENT_RANDOM: LentRandom = LentRandom;
static SEEDED_X25519: SeededX25519 = SeededX25519;

/// The provider every session uses (built once).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = ring_provider::default_provider();
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    ring_provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
                    ring_provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                    ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
                ],
                kx_groups: vec![&SEEDED_X25519],
                signature_verification_algorithms: ring.signature_verification_algorithms,
                secure_random: &LENT_RANDOM,
                key_provider: ring.key_provider,
            })
        })
        .clone()
}
