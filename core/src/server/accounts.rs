//! Accounts: who exists, checking passwords, creating accounts at sign-up.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::store::{Credential, Secret};
use crate::types::UserName;

/// Longest password accepted at sign-up.
pub const MAX_PASSWORD: usize = 128;

/// Why a password cannot be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Empty.
    #[error("the password cannot be empty")]
    Empty,
    /// Too long.
    #[error("the password has at most {MAX_PASSWORD} characters")]
    TooLong,
    /// Spaces at either end are almost always a mistake and hard to type again.
    #[error("the password cannot start or end with a space")]
    OuterSpace,
    /// Control characters cannot be typed reliably.
    #[error("the password cannot contain control characters")]
    Control,
}

/// Check a password chosen at sign-up.
pub fn check_new_password(p: &str) -> Result<(), PasswordError> {
    if p.is_empty() {
        return Err(PasswordError::Empty);
    }
    if p.chars().count() > MAX_PASSWORD {
        return Err(PasswordError::TooLong);
    }
    if p.starts_with(' ') || p.ends_with(' ') {
        return Err(PasswordError::OuterSpace);
    }
    if p.chars().any(char::is_control) {
        return Err(PasswordError::Control);
    }
    Ok(())
}

/// Every account the server knows.
#[derive(Debug, Default)]
pub struct Accounts {
    secrets: HashMap<UserName, Secret>,
}

impl Accounts {
    /// Accounts from `credentials.txt`.
    pub fn new(credentials: Vec<Credential>) -> Self {
        Self {
            secrets: credentials
                .into_iter()
                .map(|c| (c.name, c.secret))
                .collect(),
        }
    }

    /// Whether `name` has an account.
    pub fn exists(&self, name: &UserName) -> bool {
        self.secrets.contains_key(name)
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether `password` is `name`'s password (false for an unknown name).
    pub fn verify(&self, name: &UserName, password: &str) -> bool {
        match self.secrets.get(name) {
            None => false,
            Some(Secret::Plain(p)) => constant_time_eq(p.as_bytes(), password.as_bytes()),
            Some(Secret::Hashed(h)) => match PasswordHash::new(h) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            },
        }
    }

    /// `name`'s stored secret, if the account exists.
    pub fn secret(&self, name: &UserName) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// Add an account whose secret was made elsewhere (hashed off the core's thread).
    pub fn insert(&mut self, name: UserName, secret: Secret) {
        self.secrets.insert(name, secret);
    }

    /// Create an account; returns the record to append to `credentials.txt`.
    ///
    /// The password is stored as a salted Argon2id hash, never in clear.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn create(
        &mut self,
        name: UserName,
        password: &str,
        salt: [u8; 16],
        memory_kib: u32,
    ) -> Credential {
        let secret = hash_password(password, salt, memory_kib)
            .map(Secret::Hashed)
            .unwrap_or_else(|| Secret::Plain(password.to_owned()));
        self.secrets.insert(name.clone(), secret.clone());
        Credential { name, secret }
    }
}

fn hash_password(password: &str, salt: [u8; 16], memory_kib: u32) -> Option<String> {
    let salt = SaltString::encode_b64(&salt).ok()?;
    let params = Params::new(memory_kib.max(Params::MIN_M_COST), 2, 1, None).ok()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_passwords_verify() {
        let yoda = UserName::new("yoda").unwrap();
        let bob = UserName::new("bob").unwrap();
        let mut a = Accounts::new(vec![Credential {
            name: yoda.clone(),
            secret: Secret::Plain("jedi".into()),
        }]);
        assert!(a.verify(&yoda, "jedi"));
        assert!(!a.verify(&yoda, "sith"));
        let c = a.create(bob.clone(), "s3cret pass", [7; 16], 64);
        assert!(matches!(&c.secret, Secret::Hashed(h) if h.starts_with("$argon2id$")));
        assert!(a.verify(&bob, "s3cret pass"));
        assert!(!a.verify(&bob, "s3cret"));
        assert!(!a.verify(&UserName::new("nobody").unwrap(), ""));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new_password("r2d2").is_ok());
        assert_eq!(check_new_password(""), Err(PasswordError::Empty));
        assert_eq!(check_new_password(" x"), Err(PasswordError::OuterSpace));
        assert_eq!(check_new_password("a\u{1b}b"), Err(PasswordError::Control));
    }
}
