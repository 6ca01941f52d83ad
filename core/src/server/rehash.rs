//! Plaintext passwords in `credentials.txt` (as the original assignment's file holds them)
//! become Argon2id hashes at their first successful login: the password was just typed, so it
//! is hashed by the hash workers off the core's thread, the account's secret is replaced in
//! memory, and `credentials.txt` is rewritten whole — atomically, every other byte of it kept —
//! before anything that follows. The user does not wait for it: the login goes on at once.

use super::passwords::HashJob;
use super::{PendingHash, Server};
use crate::store::{Credential, DataFile, Persist, Secret, render_credential};
use crate::types::UserName;

impl Server {
    /// `name` just logged in with its plaintext password `plain`: hash it in the background.
    pub(super) fn rehash_later(&mut self, name: &UserName, plain: String) {
        let salt = self.random_bytes::<16>();
        let memory_kib = self.config.hash_memory_kib;
        let password = plain.clone();
        self.hash(
            |id| HashJob::derive(id, password, salt, memory_kib),
            PendingHash::Rehash {
                name: name.clone(),
                plain,
            },
        );
    }

    /// The hash of `name`'s plaintext password `plain` is ready: store it instead.
    pub(super) fn rehashed(&mut self, name: UserName, plain: &str, phc: String) {
        if !matches!(self.accounts.secret(&name), Some(Secret::Plain(p)) if p == plain) {
            // Changed meanwhile (or already rehashed by a second login): nothing to do.
            return;
        }
        let line = render_credential(&Credential {
            name: name.clone(),
            secret: Secret::Hashed(phc.clone()),
        });
        let Some(text) = replace_account_line(&self.credentials_text, &name, line.trim_end())
        else {
            return;
        };
        self.accounts.insert(name.clone(), Secret::Hashed(phc));
        self.credentials_text = text.clone();
        self.persist(Persist::Replace {
            file: DataFile::Credentials,
            text,
        });
        self.log(format!(
            "{name}'s password was stored in clear in credentials.txt: replaced by its Argon2id hash"
        ));
    }
}

/// `text` (the bytes of `credentials.txt`) with the first line of the account `name` replaced
/// by `line`, its line ending kept; every other byte unchanged. `None` if no line is `name`'s.
pub fn replace_account_line(text: &[u8], name: &UserName, line: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + line.len());
    let mut done = false;
    for raw in text.split_inclusive(|&b| b == b'\n') {
        let body_len = raw
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |i| i + 1);
        let (body, ending) = raw.split_at(body_len);
        let is_theirs = !done
            && body
                .iter()
                .position(|&b| b == b' ')
                .and_then(|sp| std::str::from_utf8(&body[..sp]).ok())
                .and_then(|n| UserName::new(n).ok())
                .is_some_and(|n| &n == name);
        if is_theirs {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(ending);
            done = true;
        } else {
            out.extend_from_slice(raw);
        }
    }
    done.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_accounts_first_line_changes_and_every_other_byte_is_kept() {
        let text: &[u8] = b"yoda jedi\r\nl\xffke bad\n\nluke r2d2\nluke again\nleia alderaan";
        let luke = UserName::new("Luke").unwrap();
        let out = replace_account_line(text, &luke, "luke $argon2id$x").unwrap();
        assert_eq!(
            out,
            b"yoda jedi\r\nl\xffke bad\n\nluke $argon2id$x\nluke again\nleia alderaan"
        );
        let leia = UserName::new("leia").unwrap();
        let out = replace_account_line(text, &leia, "leia $h").unwrap();
        assert!(out.ends_with(b"\nleia $h"));
        assert_eq!(
            replace_account_line(text, &UserName::new("han").unwrap(), "han $h"),
            None
        );
    }
}
