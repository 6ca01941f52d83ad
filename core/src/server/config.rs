//! What the server operator chooses at start.

use crate::time::Zone;

/// Consecutive failed logins that block a user name: 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts(u8);

/// `ATTEMPTS` outside 1..=5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ATTEMPTS must be a whole number from 1 to 5, not {0}")]
pub struct AttemptsError(pub String);

impl Attempts {
    /// The fewest attempts allowed.
    pub const MIN: u8 = 1;
    /// The most attempts allowed.
    pub const MAX: u8 = 5;

    /// Validate a number of attempts.
    pub fn new(n: u8) -> Result<Self, AttemptsError> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(AttemptsError(n.to_string()))
        }
    }

    /// Parse a command-line argument.
    pub fn parse(s: &str) -> Result<Self, AttemptsError> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(|n| Self::new(n).ok())
            .ok_or_else(|| AttemptsError(format!("{s:?}")))
    }

    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Attempts {
    fn default() -> Self {
        Self(3)
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Failed logins before a user name is blocked.
    pub attempts: Attempts,
    /// How long a blocked user name stays blocked, in milliseconds (10 s by default).
    pub block_millis: u64,
    /// Whether an unknown user name is offered sign-up.
    pub allow_signup: bool,
    /// The server's local time zone, for every timestamp shown or stored.
    pub zone: Zone,
    /// Most posts replayed at login; older ones are announced with a hint to use `RDM`.
    pub backlog_limit: usize,
    /// Seed for the salts of new password hashes and the secrets of uploads. A runtime seeds it
    /// from the OS; tests and simulations fix it to replay exactly.
    pub rng_seed: [u8; 32],
    /// How long a connection may take to log in before it is closed (ms).
    pub login_timeout_millis: u64,
    /// Argon2 memory cost in KiB for new password hashes (lower in tests to keep them fast).
    pub hash_memory_kib: u32,
    /// A connection that sends more than this many bytes without a newline is closed with
    /// `421`: a line longer than `MAX_LINE` is refused with `503` as soon as it passes the
    /// limit, but a peer that keeps going for a whole MiB is not speaking the protocol (1 MiB).
    pub runaway_line_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            attempts: Attempts::default(),
            block_millis: 10_000,
            allow_signup: true,
            zone: Zone::UTC,
            backlog_limit: 100,
            rng_seed: [0; 32],
            hash_memory_kib: 19 * 1024,
            login_timeout_millis: 5 * 60 * 1000,
            runaway_line_bytes: 1024 * 1024,
        }
    }
}
