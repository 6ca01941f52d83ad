//! Accounts: who exists, checking passwords, creating accounts at sign-up.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::passwords::nfc;
use crate::store::{Credential, Reason, Reserved, Secret};
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

/// Why a user name cannot be taken by a new account (on top of [`UserName`]'s own rules,
/// which every name, old or new, obeys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewNameError {
    /// A leading `.` or `-` (so `.` and `..` too): a user's uploads are saved as
    /// `<name>_<file>`, and such a prefix would make them hidden files or option-like names,
    /// which the file-name rule of transfers refuses. Accounts made before this rule keep
    /// working: it is checked at sign-up only.
    #[error(
        "a new user name may not start with '.' or '-' (files it sends are saved as <name>_<file>)"
    )]
    LeadingDotOrDash,
}

/// Check a user name chosen at sign-up.
pub fn check_new_name(name: &UserName) -> Result<(), NewNameError> {
    if name.as_str().starts_with(['.', '-']) {
        return Err(NewNameError::LeadingDotOrDash);
    }
    Ok(())
}

/// Every account the server knows, and the names nobody may take.
#[derive(Debug, Default)]
pub struct Accounts {
    secrets: HashMap<UserName, Secret>,
    /// Names without an account that are not free: their credentials line is damaged (the
    /// account may exist, with posts and private messages), or they wrote posts or have
    /// private messages waiting. Neither usable nor free until the operator restores the line.
    reserved: HashMap<UserName, Reason>,
    /// Every account's and reserved name's [`UserName::lookalike_key`], to refuse look-alikes
    /// at sign-up without recomputing the skeletons each time.
    looks: HashMap<String, UserName>,
}

impl Accounts {
    /// Accounts from `credentials.txt`, and the names kept `reserved`.
    pub fn new(credentials: Vec<Credential>, reserved: Vec<Reserved>) -> Self {
        let mut looks = HashMap::new();
        for name in credentials
            .iter()
            .map(|c| &c.name)
            .chain(reserved.iter().map(|r| &r.name))
        {
            looks
                .entry(name.lookalike_key())
                .or_insert_with(|| name.clone());
        }
        Self {
            secrets: credentials
                .into_iter()
                .map(|c| (c.name, c.secret))
                .collect(),
            reserved: reserved.into_iter().map(|r| (r.name, r.why)).collect(),
            looks,
        }
    }

    /// The account `name` means, with its name as it was created (`Yoda` means `yoda`).
    pub fn canonical(&self, name: &UserName) -> Option<&UserName> {
        self.secrets.get_key_value(name).map(|(k, _)| k)
    }

    /// An account (or reserved name) that `name` could be mistaken for on screen, by their
    /// TR39 confusable skeletons; `None` if `name` looks like nobody else.
    pub fn lookalike(&self, name: &UserName) -> Option<&UserName> {
        self.looks.get(&name.lookalike_key())
    }

    /// Why `name` is reserved, if it is: no account can be used or created under it.
    pub fn reserved(&self, name: &UserName) -> Option<Reason> {
        if self.secrets.contains_key(name) {
            return None;
        }
        self.reserved.get(name).copied()
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
            Some(Secret::Plain(p)) => constant_time_eq(nfc(p).as_bytes(), nfc(password).as_bytes()),
            Some(Secret::Hashed(h)) => match PasswordHash::new(h) {
                Ok(parsed) => Argon2::default()
                    .verify_password(nfc(password).as_bytes(), &parsed)
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
        self.looks
            .entry(name.lookalike_key())
            .or_insert_with(|| name.clone());
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
        self.insert(name.clone(), secret.clone());
        Credential { name, secret }
    }
}

fn hash_password(password: &str, salt: [u8; 16], memory_kib: u32) -> Option<String> {
    let salt = SaltString::encode_b64(&salt).ok()?;
    let params = Params::new(memory_kib.max(Params::MIN_M_COST), 2, 1, None).ok()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon
        .hash_password(nfc(password).as_bytes(), &salt)
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
        let mut a = Accounts::new(
            vec![Credential {
                name: yoda.clone(),
                secret: Secret::Plain("jedi".into()),
            }],
            Vec::new(),
        );
        assert!(a.verify(&yoda, "jedi"));
        assert!(!a.verify(&yoda, "sith"));
        let c = a.create(bob.clone(), "s3cret pass", [7; 16], 64);
        assert!(matches!(&c.secret, Secret::Hashed(h) if h.starts_with("$argon2id$")));
        assert!(a.verify(&bob, "s3cret pass"));
        assert!(!a.verify(&bob, "s3cret"));
        assert!(!a.verify(&UserName::new("nobody").unwrap(), ""));
    }

    #[test]
    fn names_are_found_without_regard_to_case_and_look_alikes_are_named() {
        let n = |s: &str| UserName::new(s).unwrap();
        let mut a = Accounts::new(
            vec![Credential {
                name: n("leia"),
                secret: Secret::Plain("x".into()),
            }],
            vec![Reserved {
                name: n("han"),
                why: Reason::DamagedLine,
            }],
        );
        assert_eq!(a.canonical(&n("LEIA")).map(UserName::as_str), Some("leia"));
        assert!(a.exists(&n("Leia")));
        assert_eq!(a.lookalike(&n("Ieia")).map(UserName::as_str), Some("leia"));
        assert_eq!(a.lookalike(&n("H4n")), None);
        assert_eq!(a.lookalike(&n("HAN")).map(UserName::as_str), Some("han"));
        assert_eq!(a.lookalike(&n("luke")), None);
        a.create(n("Luke"), "pw", [1; 16], 64);
        assert_eq!(a.lookalike(&n("1uke")).map(UserName::as_str), Some("Luke"));
        assert!(a.verify(&n("luke"), "pw"));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new_password("r2d2").is_ok());
        assert_eq!(check_new_password(""), Err(PasswordError::Empty));
        assert_eq!(check_new_password(" x"), Err(PasswordError::OuterSpace));
        assert_eq!(check_new_password("a\u{1b}b"), Err(PasswordError::Control));
    }
}
