//! Password hashing as work items: the core decides *what* to hash, a driver decides *where*
//! (a small pool of worker threads, so a 20-30 ms Argon2 hash never stalls the thread that
//! serves everyone else) and hands the result back as an input.
//!
//! The work itself is pure computation, done here by [`HashJob::run`], so every runtime and
//! the simulator compute exactly the same thing. Argon2's working memory (19 MiB by default)
//! comes from a [`HashMemory`] the worker keeps and reuses, so a thousand sign-ups cost one
//! buffer per worker, not a thousand allocations the allocator may never give back.

use std::fmt;

use argon2::password_hash::{Output as HashOutput, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Most Argon2 memory a stored hash may ask for when it is checked, in KiB (256 MiB): a
/// damaged or hostile `credentials.txt` line must not make the server allocate gigabytes.
pub const MAX_HASH_MEMORY_KIB: u32 = 256 * 1024;

/// Names one piece of hashing work, so its result finds its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

#[derive(Clone, PartialEq, Eq)]
enum Work {
    /// Hash a new password with a fresh salt: sign-up.
    Derive {
        password: String,
        salt: [u8; 16],
        memory_kib: u32,
    },
    /// Check a password against a stored PHC string: login.
    Verify { password: String, phc: String },
}

/// A password to hash or check, off the core's thread.
#[derive(Clone, PartialEq, Eq)]
pub struct HashJob {
    id: JobId,
    work: Work,
}

impl fmt::Debug for HashJob {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.work {
            Work::Derive { .. } => "derive",
            Work::Verify { .. } => "verify",
        };
        f.debug_struct("HashJob")
            .field("id", &self.id)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// What a [`HashJob`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashResult {
    /// The PHC string of a new hash, or `None` if hashing failed (the account then keeps the
    /// password in clear, as `credentials.txt` allows, rather than not being created).
    Derived(Option<String>),
    /// Whether the password matched.
    Verified(bool),
}

/// The result of a job, to hand back with [`super::Input::Hashed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashDone {
    /// Which job.
    pub id: JobId,
    /// What it found.
    pub result: HashResult,
}

/// Argon2 working memory, kept by a worker from one job to the next.
#[derive(Debug, Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl HashMemory {
    /// No memory yet; it grows to the largest job seen and stays there.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::default());
        }
        &mut self.blocks[..count]
    }
}

impl HashJob {
    pub(crate) fn derive(id: JobId, password: String, salt: [u8; 16], memory_kib: u32) -> Self {
        Self {
            id,
            work: Work::Derive {
                password,
                salt,
                memory_kib,
            },
        }
    }

    pub(crate) fn verify(id: JobId, password: String, phc: String) -> Self {
        Self {
            id,
            work: Work::Verify { password, phc },
        }
    }

    /// Which job this is.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Do the work, with `memory` as Argon2's working memory.
    pub fn run(&self, memory: &mut HashMemory) -> HashDone {
        let result = match &self.work {
            Work::Derive {
                password,
                salt,
                memory_kib,
            } => HashResult::Derived(derive(password, salt, *memory_kib, memory)),
            Work::Verify { password, phc } => HashResult::Verified(verify(password, phc, memory)),
        };
        HashDone {
            id: self.id,
            result,
        }
    }
}

/// `password` in Unicode NFC: `é` typed as one code point or as `e` and a combining accent
/// is the same password, whatever keyboard or system typed it.
pub fn nfc(password: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization;
    if unicode_normalization::is_nfc(password) {
        std::borrow::Cow::Borrowed(password)
    } else {
        std::borrow::Cow::Owned(password.nfc().collect())
    }
}

/// Argon2id, 2 passes, 1 lane: the parameters of every hash the server creates, of the
/// password in NFC.
fn derive(
    password: &str,
    salt: &[u8; 16],
    memory_kib: u32,
    memory: &mut HashMemory,
) -> Option<String> {
    let params = Params::new(
        memory_kib.clamp(Params::MIN_M_COST, MAX_HASH_MEMORY_KIB),
        2,
        1,
        None,
    )
    .ok()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::encode_b64(salt).ok()?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).ok()?;
    let blocks = memory.blocks(params.block_count());
    let password = nfc(password);
    let output = HashOutput::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *blocks)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .ok()?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().ok()?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Some(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (any Argon2 variant and version it names):
/// in NFC, or as typed for a hash made before passwords were normalised.
fn verify(password: &str, phc: &str, memory: &mut HashMemory) -> bool {
    let normal = nfc(password);
    verify_exactly(&normal, phc, memory)
        || (normal != password && verify_exactly(password, phc, memory))
}

fn verify_exactly(password: &str, phc: &str, memory: &mut HashMemory) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_HASH_MEMORY_KIB {
        return false;
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = memory.blocks(params.block_count());
    let computed = HashOutput::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *blocks)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|c| c == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    fn run(job: HashJob, memory: &mut HashMemory) -> HashResult {
        job.run(memory).result
    }

    #[test]
    fn a_derived_hash_verifies_with_the_reference_implementation_and_ours() {
        let mut memory = HashMemory::new();
        let HashResult::Derived(Some(phc)) = run(
            HashJob::derive(JobId(1), "s3cret pass".into(), [7; 16], 64),
            &mut memory,
        ) else {
            panic!("no hash")
        };
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"s3cret pass", &parsed)
                .is_ok()
        );
        let ok = run(
            HashJob::verify(JobId(2), "s3cret pass".into(), phc.clone()),
            &mut memory,
        );
        assert_eq!(ok, HashResult::Verified(true));
        let bad = run(HashJob::verify(JobId(3), "s3cret".into(), phc), &mut memory);
        assert_eq!(bad, HashResult::Verified(false));
    }

    #[test]
    fn the_working_memory_is_reused_not_grown_per_job() {
        let mut memory = HashMemory::new();
        for i in 0..5 {
            run(
                HashJob::derive(JobId(i), format!("pw{i}"), [i as u8; 16], 256),
                &mut memory,
            );
        }
        assert_eq!(memory.bytes(), 256 * 1024);
    }

    #[test]
    fn damaged_or_greedy_stored_hashes_fail_without_allocating() {
        let mut memory = HashMemory::new();
        for phc in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$v=19$m=64,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let r = run(
                HashJob::verify(JobId(0), "x".into(), phc.into()),
                &mut memory,
            );
            assert_eq!(r, HashResult::Verified(false), "{phc}");
        }
        assert_eq!(memory.bytes(), 0);
    }

    #[test]
    fn a_job_never_shows_its_password() {
        let job = HashJob::derive(JobId(9), "hunter2".into(), [0; 16], 64);
        assert!(!format!("{job:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod nfc_tests {
    use super::*;

    #[test]
    fn a_password_is_the_same_in_any_unicode_form_and_old_hashes_still_verify() {
        let composed = "caf\u{e9} cr\u{e8}me";
        let decomposed = "cafe\u{301} cre\u{300}me";
        let mut memory = HashMemory::new();
        let HashResult::Derived(Some(phc)) =
            HashJob::derive(JobId(1), decomposed.into(), [3; 16], 64)
                .run(&mut memory)
                .result
        else {
            panic!("no hash")
        };
        for typed in [composed, decomposed] {
            let r = HashJob::verify(JobId(2), typed.into(), phc.clone()).run(&mut memory);
            assert_eq!(r.result, HashResult::Verified(true), "{typed:?}");
        }
        // A hash made from the decomposed bytes themselves (before normalising) still verifies
        // when the same bytes are typed.
        let old = PasswordHash::generate(
            Argon2::default(),
            decomposed.as_bytes(),
            SaltString::encode_b64(&[5; 16]).unwrap().as_salt(),
        )
        .unwrap()
        .to_string();
        let r = HashJob::verify(JobId(3), decomposed.into(), old).run(&mut memory);
        assert_eq!(r.result, HashResult::Verified(true));
        assert_eq!(nfc(decomposed), composed);
    }
}
