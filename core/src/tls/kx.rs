//! X25519 key exchange with keys drawn from the session's seeded generator.
//!
//! ring's X25519 draws its ephemeral key from the OS and cannot be seeded, so a handshake
//! through it never replays. This group does the same exchange with `x25519-dalek` (the
//! dalek-cryptography implementation), taking the 32 secret bytes from the generator the
//! session lent to the thread (see `entropy`). Nothing here is hand-written cryptography: it
//! wires `x25519-dalek` into rustls's key-exchange traits and keeps RFC 7748's check that
//! the shared secret is not all zeros (a peer's low-order point).

use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved, ffdhe_groups::FfdheGroup};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use super::entropy;

/// The X25519 group of our provider.
#[derive(Debug)]
pub(crate) struct SeededX25519;

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut bytes = [0u8; 32];
        entropy::fill(&mut bytes)?;
        // Used for exactly one exchange, like an ephemeral secret; `StaticSecret` only because
        // it can be built from bytes we drew. It is zeroed when dropped.
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey::from(&secret).to_bytes();
        Ok(Box::new(Exchange { secret, public }))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// One exchange in progress: our secret and the public key we sent.
struct Exchange {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(shared.as_bytes().as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::entropy::SessionRng;

    fn start(seed: u8) -> Box<dyn ActiveKeyExchange> {
        SessionRng::from_seed([seed; 32])
            .lend(|| SeededX25519.start())
            .unwrap_or_else(|e| panic!("start: {e}"))
    }

    #[test]
    fn both_sides_agree_on_the_secret() {
        let a = start(1);
        let b = start(2);
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let sa = a.complete(&b_pub).unwrap();
        let sb = b.complete(&a_pub).unwrap();
        assert_eq!(sa.secret_bytes(), sb.secret_bytes());
        assert_eq!(start(1).pub_key(), a_pub, "same seed, same key share");
    }

    #[test]
    fn a_low_order_or_misshapen_peer_key_is_refused() {
        // The all-zero point gives an all-zero shared secret: refused, not used as a key.
        assert_eq!(
            start(1).complete(&[0u8; 32]).err(),
            Some(Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare))
        );
        assert!(start(1).complete(&[9u8; 31]).is_err());
        assert!(start(1).complete(&[]).is_err());
    }

    #[test]
    fn without_a_lent_generator_no_key_is_made() {
        assert!(SeededX25519.start().is_err());
    }
}
