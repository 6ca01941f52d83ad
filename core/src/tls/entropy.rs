//! Where rustls's randomness comes from: the seeded generator of the session being driven.
//!
//! rustls draws every random value (the hello randoms, the legacy session id, the extension
//! order, our key share) from its crypto provider, which it holds as `&'static`. To make a
//! handshake replay exactly from a seed — in core tests and in simulations — and to seed
//! production sessions from the OS like the rest of the core, each session owns a ChaCha20
//! generator ([`SessionRng`]) and *lends* it to the current thread for the duration of each
//! call into rustls; [`LentRandom`] (the provider's `secure_random`) and the X25519 group in
//! `kx` draw from the lent generator. Outside a lending scope there is no generator and a draw
//! fails — rustls then reports "failed to get random bytes" — so a call that escaped the scope
//! is an error, never a silently weaker source.
//!
//! ChaCha20 keyed with a 32-byte seed from the OS is a CSPRNG: the same generator the server
//! already uses for password salts and transfer secrets.

use std::cell::RefCell;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rustls::crypto::{GetRandomFailed, SecureRandom};

thread_local! {
    /// The generator lent by the session whose rustls call is running on this thread.
    static LENT: RefCell<Option<Box<ChaCha20Rng>>> = const { RefCell::new(None) };
}

/// A session's own random generator, seeded once.
#[derive(Debug)]
pub(crate) struct SessionRng(Option<Box<ChaCha20Rng>>);

impl SessionRng {
    /// A generator from a 32-byte seed (from the OS in production, fixed in tests).
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        Self(Some(Box::new(ChaCha20Rng::from_seed(seed))))
    }

    /// Run `f` (a call into rustls) with this generator lent to the thread.
    ///
    /// The generator comes back when `f` returns, or unwinds; a scope lent inside another
    /// (which the sessions never do) restores the outer one afterwards.
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Return<'a> {
            home: &'a mut Option<Box<ChaCha20Rng>>,
            outer: Option<Box<ChaCha20Rng>>,
        }
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                *self.home = LENT.with(|l| l.replace(self.outer.take()));
            }
        }
        let outer = LENT.with(|l| l.replace(self.0.take()));
        let _back = Return {
            home: &mut self.0,
            outer,
        };
        f()
    }
}

/// Fill `buf` from the lent generator; fails when nothing is lent.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), GetRandomFailed> {
    LENT.with(|l| match l.borrow_mut().as_mut() {
        Some(rng) => {
            rng.fill_bytes(buf);
            Ok(())
        }
        None => Err(GetRandomFailed),
    })
}

/// The provider's `secure_random`: draws from the lent generator.
#[derive(Debug)]
pub(crate) struct LentRandom;

impl SecureRandom for LentRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_fail_outside_a_lending_scope_and_replay_inside_one() {
        let mut buf = [0u8; 8];
        assert!(fill(&mut buf).is_err());
        let draw = |seed| {
            let mut rng = SessionRng::from_seed(seed);
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            rng.lend(|| fill(&mut a)).unwrap();
            rng.lend(|| fill(&mut b)).unwrap();
            (a, b)
        };
        let (a, b) = draw([1; 32]);
        assert_ne!(a, b, "the generator advances between scopes");
        assert_eq!(draw([1; 32]), (a, b));
        assert_ne!(draw([2; 32]).0, a);
        assert!(fill(&mut buf).is_err(), "nothing stays lent");
    }

    #[test]
    fn a_scope_inside_another_gives_the_outer_generator_back() {
        let mut outer = SessionRng::from_seed([1; 32]);
        let mut inner = SessionRng::from_seed([2; 32]);
        let mut expected = [0u8; 4];
        ChaCha20Rng::from_seed([1; 32]).fill_bytes(&mut expected);
        let got = outer.lend(|| {
            inner.lend(|| ());
            let mut buf = [0u8; 4];
            fill(&mut buf).map(|()| buf).ok()
        });
        assert_eq!(got, Some(expected));
    }
}
