//! What the server operator chooses at start.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::time::Zone;
use crate::tls::ServerTls;

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

/// What to do at start with damaged lines in the data files (see [`crate::store::folder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDamage {
    /// Refuse to start, naming each file, line and problem: nothing is changed until the
    /// operator decides (the default, since a damaged line may be an account or a post).
    #[default]
    Refuse,
    /// Move each damaged line, byte for byte, to `<file>.rejected`, keep a copy of the file as
    /// it was, and start (`huddle server --repair`).
    Repair,
}

/// From which addresses a user name and password may be sent in clear, before `STARTTLS`.
///
/// Passwords, private messages and the secrets of uploads cross the text link; in clear,
/// anyone on the path reads them. Loopback never leaves the machine, so `nc 127.0.0.1 4000`
/// and local scripts keep working in clear; everyone else must upgrade first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaintextLogin {
    /// Only from loopback addresses (127.0.0.0/8, ::1): the default.
    #[default]
    LoopbackOnly,
    /// From anywhere (`huddle server --allow-plaintext`): for a trusted network, or clients
    /// that cannot do TLS.
    Anywhere,
    /// From nowhere, loopback included (`huddle server --require-tls`): for a server behind a
    /// proxy or tunnel on the same machine, whose remote clients all arrive from loopback.
    Nowhere,
}

impl PlaintextLogin {
    /// Whether a peer at `ip` may log in without TLS.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            PlaintextLogin::LoopbackOnly => crate::tls::is_loopback(ip),
            PlaintextLogin::Anywhere => true,
            PlaintextLogin::Nowhere => false,
        }
    }
}

/// Server settings: what the operator chooses and every limit the server enforces, each with
/// its default and the reason for it.
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
    /// Most posts replayed at login; older ones are announced with a hint to use `RDM` (100).
    pub backlog_limit: usize,
    /// Uploads introduced on one connection that wait for its client's report of their
    /// outcome (`XFR`), for the console's narration (64: more than the client runs at once
    /// by default, 16). Beyond it the oldest is forgotten and its outcome not narrated, so a
    /// client that never reports cannot grow the server.
    pub max_unreported_uploads: usize,
    /// Seed for the salts of new password hashes and the secrets of uploads. A runtime seeds it
    /// from the OS; tests and simulations fix it to replay exactly.
    pub rng_seed: [u8; 32],
    /// How long a connection may take to log in before it is closed (ms; a minute: enough to
    /// type a name and a password, short enough that sockets left at the prompt come back).
    pub login_timeout_millis: u64,
    /// Argon2 memory cost in KiB for new password hashes (19 MiB, OWASP's minimum for
    /// Argon2id; lower in tests to keep them fast).
    pub hash_memory_kib: u32,
    /// Damaged lines in the data files: refuse to start, or repair.
    pub on_damage: OnDamage,
    /// The server's certificate and key, read by the runtime at start (`--tls-cert` /
    /// `--tls-key`, or the self-signed pair of the data folder). With it the greeting offers
    /// `STARTTLS`; without it (`None`, the default of a bare core) the server speaks in clear
    /// only. The handshake deadline is in its [`TlsLimits`](crate::tls::TlsLimits).
    pub tls: Option<ServerTls>,
    /// Who may log in without TLS (loopback only, by default).
    pub plaintext_login: PlaintextLogin,
    /// Threads a runtime gives to password hashing (2). Each holds one Argon2 working memory
    /// (`hash_memory_kib`) and reuses it, so this bounds both the CPU hashing may take from
    /// serving and the memory it keeps.
    pub hash_workers: usize,
    /// A connection that sends more than this many bytes without a newline is closed with
    /// `421`: a line longer than `MAX_LINE` is refused with `503` as soon as it passes the
    /// limit, but a peer that keeps going for a whole MiB is not speaking the protocol (1 MiB).
    pub runaway_line_bytes: u64,

    // ----- flow control -----
    /// Above this many unsent bytes for a connection, the server stops taking its requests
    /// and produces no more of its listings until the output drains (256 KiB: many screens of
    /// text, a fraction of a socket buffer's worth of latency).
    pub output_high_water: usize,
    /// Requests are taken again once a backed-up connection has at most this many unsent
    /// bytes (64 KiB; the gap keeps the server from flapping on every write).
    pub output_low_water: usize,
    /// A connection with more unsent bytes than this — only others' events can put it there,
    /// its own requests stop at the high-water mark — is cut off as too far behind, so
    /// memory is bounded by connections × this limit (16 MiB: minutes of a busy board).
    pub max_unsent_bytes: usize,
    /// A connection whose output makes no progress for this long is cut off, so a peer that
    /// stopped reading cannot hold its socket and queue forever (ms; 30 s).
    pub write_timeout_millis: u64,
    /// Bytes of a connection's input held (unparsed requests and an unfinished line) before
    /// the server stops reading from it (64 KiB: eight maximal lines).
    pub max_input_buffer: usize,
    /// Bytes a runtime reads from a socket at a time (16 KiB; taken within
    /// 1..=[`MAX_READ_CHUNK`], see [`ServerConfig::read_chunk`]).
    pub read_chunk_bytes: usize,
    /// The kernel send buffer a runtime asks for on each client socket (`SO_SNDBUF`; 0 keeps
    /// the system's autotuning). 128 KiB: the core queues and accounts for output itself, so
    /// a socket needs only enough to keep the wire busy — and a bounded one keeps a stuck
    /// client from parking megabytes in the kernel, and "written" close to "delivered".
    pub tcp_send_buffer_bytes: usize,

    // ----- batching -----
    /// Most inputs taken in one batch before its outputs go out (1024), so a busy server
    /// still answers often.
    pub max_batch_inputs: usize,
    /// Most request lines handled in one batch (1024): the replies of a batch wait for its
    /// group commit, so a batch must stay short.
    pub max_batch_lines: usize,
    /// Most bytes of events fanned out to each client in one batch (256 KiB): once a batch
    /// has pushed that much, further posts wait for the next batch, so the burst a reading
    /// client sees stays far below `max_unsent_bytes`.
    pub max_batch_fanout_bytes: usize,
    /// Request lines one connection may have handled before the next connection's turn in
    /// a batch (64), so one pipelining client cannot delay everyone else's requests.
    pub lines_per_turn: usize,

    // ----- fair shares -----
    /// Posts, private messages, edits, deletes and uploads a user may send at once before
    /// being slowed down (200).
    pub post_burst: u32,
    /// After the burst, how many a second a user may send; the excess is delayed (50/s:
    /// far beyond anyone typing, far below a flood).
    pub post_rate_per_sec: u32,
    /// A user who has been over the rate for this long without a break has further such
    /// commands refused with `450` until they slow down (ms; 30 s).
    pub throttle_refuse_after_millis: u64,
    /// Sign-ups an address may make in a minute (5; a burst of that many, then one every
    /// 12 s).
    pub signups_per_ip_per_minute: u32,
    /// Connections an address may hold that have not logged in (8).
    pub max_unauthenticated_per_ip: usize,
    /// Most connections the server holds at once (10,000 by default; the binary sets it from
    /// the open-file limit). Beyond it a connection gets `421` and is closed.
    pub max_connections: usize,
    /// Failed logins an address (other than the exempt ones) may make, across all user names,
    /// before its further passwords are slowed down (10: plenty for people who mistype;
    /// DESIGN §3's per-name lockout applies to every address besides).
    pub guess_free_failures: u32,
    /// After the free failures, how long the next password from that address waits before it
    /// is checked (ms; 1 s), doubling with each further failure: one address then gets about
    /// sixty guesses an hour instead of thousands, and cannot keep even one account locked.
    pub guess_delay_millis: u64,
    /// The longest such wait (ms; 60 s).
    pub guess_max_delay_millis: u64,
    /// An address whose last failed login is this old starts afresh (ms; 15 min).
    pub guess_forget_millis: u64,

    // ----- liveness -----
    /// A logged-in connection that sends nothing for this long is sent `* PING <token>`,
    /// which a huddle client answers by itself (ms; 30 s; 0 turns the keepalive off).
    pub keepalive_idle_millis: u64,
    /// After a ping, a connection from which nothing at all arrives for this long is closed
    /// and its user logged out, so a dead or half-open connection frees its name within
    /// `keepalive_idle_millis + keepalive_timeout_millis` of its last byte (ms; 20 s: 50 s in
    /// all, "about a minute", and far above any round trip).
    pub keepalive_timeout_millis: u64,

    // ----- storage -----
    /// While the data folder cannot be written (full disk, read-only mount), the server is
    /// read-only and tries a harmless write this often; the first that succeeds ends
    /// read-only mode (ms; 5 s: space that returns is used within seconds, and a failing
    /// write every few seconds costs nothing).
    pub store_probe_millis: u64,

    /// Addresses the per-address limits do not apply to (127.0.0.1 and ::1 by default, so
    /// local tools and tests are not throttled). Per-user rate limits apply to everyone.
    pub exempt: Vec<IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            attempts: Attempts::default(),
            block_millis: 10_000,
            allow_signup: true,
            zone: Zone::UTC,
            backlog_limit: 100,
            max_unreported_uploads: 64,
            rng_seed: [0; 32],
            hash_memory_kib: 19 * 1024,
            hash_workers: 2,
            on_damage: OnDamage::Refuse,
            tls: None,
            plaintext_login: PlaintextLogin::default(),
            login_timeout_millis: 60 * 1000,
            runaway_line_bytes: 1024 * 1024,
            output_high_water: 256 * 1024,
            output_low_water: 64 * 1024,
            max_unsent_bytes: 16 * 1024 * 1024,
            write_timeout_millis: 30_000,
            max_input_buffer: 64 * 1024,
            read_chunk_bytes: 16 * 1024,
            tcp_send_buffer_bytes: 128 * 1024,
            max_batch_inputs: 1024,
            max_batch_lines: 1024,
            max_batch_fanout_bytes: 256 * 1024,
            lines_per_turn: 64,
            post_burst: 200,
            post_rate_per_sec: 50,
            throttle_refuse_after_millis: 30_000,
            signups_per_ip_per_minute: 5,
            max_unauthenticated_per_ip: 8,
            max_connections: 10_000,
            guess_free_failures: 10,
            guess_delay_millis: 1_000,
            guess_max_delay_millis: 60_000,
            guess_forget_millis: 15 * 60_000,
            keepalive_idle_millis: 30_000,
            keepalive_timeout_millis: 20_000,
            store_probe_millis: 5_000,
            exempt: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// The largest socket read a runtime makes: its read buffer is this big (64 KiB, the most one
/// TCP read returns on loopback with the default buffers).
pub const MAX_READ_CHUNK: usize = 64 * 1024;

impl ServerConfig {
    /// The bytes a runtime reads at a time: [`ServerConfig::read_chunk_bytes`] within
    /// 1..=[`MAX_READ_CHUNK`], the same in every runtime.
    pub fn read_chunk(&self) -> usize {
        self.read_chunk_bytes.clamp(1, MAX_READ_CHUNK)
    }

    /// Refuse settings under which the server would not work as documented, rather than
    /// quietly serve with a different value than the operator asked for: a zero that would
    /// stall a loop or refuse every post, a low-water mark above its high-water mark, an input
    /// buffer too small for one whole line (the connection would pause for ever). [`Server::new`]
    /// calls it, so every runtime and the simulations refuse the same settings.
    ///
    /// [`Server::new`]: super::Server::new
    pub fn check(&self) -> Result<(), ConfigError> {
        let at_least_one: [(&'static str, u64); 13] = [
            ("the most inputs in one batch", self.max_batch_inputs as u64),
            (
                "the most request lines in one batch",
                self.max_batch_lines as u64,
            ),
            (
                "the most event bytes per client in one batch",
                self.max_batch_fanout_bytes as u64,
            ),
            (
                "the request lines per connection's turn",
                self.lines_per_turn as u64,
            ),
            ("the post burst", u64::from(self.post_burst)),
            (
                "the post rate (a second)",
                u64::from(self.post_rate_per_sec),
            ),
            ("the password-hashing threads", self.hash_workers as u64),
            ("the keepalive timeout", self.keepalive_timeout_millis),
            ("the storage probe interval", self.store_probe_millis),
            ("the most connections", self.max_connections as u64),
            ("the socket read size", self.read_chunk_bytes as u64),
            // 0 would close every connection at once, before anyone could log in.
            ("the login timeout", self.login_timeout_millis),
            // 0 would refuse every sign-up with a wait that never ends (`--no-signup` is
            // the way to turn sign-up off).
            (
                "the sign-ups an address may make a minute",
                u64::from(self.signups_per_ip_per_minute),
            ),
        ];
        if let Some((setting, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero { setting });
        }
        if self.read_chunk_bytes > MAX_READ_CHUNK {
            return Err(ConfigError::ReadChunkTooLarge {
                asked: self.read_chunk_bytes,
            });
        }
        if self.output_low_water > self.output_high_water {
            return Err(ConfigError::LowWaterAboveHighWater {
                low: self.output_low_water,
                high: self.output_high_water,
            });
        }
        if self.output_high_water > self.max_unsent_bytes {
            return Err(ConfigError::HighWaterAboveCutOff {
                high: self.output_high_water,
                cut: self.max_unsent_bytes,
            });
        }
        let line = crate::proto::MAX_LINE + 1;
        if self.max_input_buffer < line {
            return Err(ConfigError::InputBufferBelowLine {
                asked: self.max_input_buffer,
                line,
            });
        }
        if self.runaway_line_bytes < line as u64 {
            return Err(ConfigError::RunawayBelowLine {
                asked: self.runaway_line_bytes,
                line,
            });
        }
        if self.guess_delay_millis > self.guess_max_delay_millis {
            return Err(ConfigError::GuessDelayAboveMax {
                first: self.guess_delay_millis,
                max: self.guess_max_delay_millis,
            });
        }
        let memory = argon2::Params::MIN_M_COST..=super::passwords::MAX_HASH_MEMORY_KIB;
        if !memory.contains(&self.hash_memory_kib) {
            return Err(ConfigError::HashMemory {
                asked: self.hash_memory_kib,
                min: *memory.start(),
                max: *memory.end(),
            });
        }
        Ok(())
    }
}

/// A server setting outside what the server can work with ([`ServerConfig::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count or a time that must be at least 1 was 0.
    #[error("{setting} must be at least 1, not 0")]
    Zero {
        /// Which setting, in words.
        setting: &'static str,
    },
    /// A socket read larger than the runtimes' read buffer.
    #[error("the socket read size is at most {MAX_READ_CHUNK} bytes, not {asked}")]
    ReadChunkTooLarge {
        /// What was asked for.
        asked: usize,
    },
    /// Reading would resume above the mark where it pauses.
    #[error(
        "the output low-water mark ({low} bytes) must not be above the high-water mark ({high} bytes)"
    )]
    LowWaterAboveHighWater {
        /// The low-water mark.
        low: usize,
        /// The high-water mark.
        high: usize,
    },
    /// A connection would be cut off for the output of its own requests.
    #[error(
        "the output high-water mark ({high} bytes) must not be above the unsent bytes that cut a connection off ({cut})"
    )]
    HighWaterAboveCutOff {
        /// The high-water mark.
        high: usize,
        /// The cut-off.
        cut: usize,
    },
    /// A connection's input buffer cannot hold one whole line: it would pause for ever.
    #[error("the input buffer ({asked} bytes) must hold at least one whole line ({line} bytes)")]
    InputBufferBelowLine {
        /// What was asked for.
        asked: usize,
        /// The longest line with its newline.
        line: usize,
    },
    /// Every line longer than this closes the connection, even one the server allows.
    #[error(
        "the runaway-line limit ({asked} bytes) must be at least one whole line ({line} bytes)"
    )]
    RunawayBelowLine {
        /// What was asked for.
        asked: u64,
        /// The longest line with its newline.
        line: usize,
    },
    /// The first guessing delay is longer than the longest.
    #[error("the first guessing delay ({first} ms) must not be longer than the longest ({max} ms)")]
    GuessDelayAboveMax {
        /// The first delay.
        first: u64,
        /// The longest delay.
        max: u64,
    },
    /// Argon2 memory outside what the server creates and accepts.
    #[error("the password-hash memory must be from {min} to {max} KiB, not {asked}")]
    HashMemory {
        /// What was asked for.
        asked: u32,
        /// The least Argon2 takes.
        min: u32,
        /// The most the server accepts in a stored hash.
        max: u32,
    },
}

#[cfg(test)]
mod read_chunk_tests {
    use super::*;

    #[test]
    fn the_read_chunk_is_within_one_byte_and_the_runtimes_buffer() {
        let with = |n| ServerConfig {
            read_chunk_bytes: n,
            ..ServerConfig::default()
        };
        assert_eq!(with(0).read_chunk(), 1);
        assert_eq!(with(16 * 1024).read_chunk(), 16 * 1024);
        assert_eq!(with(usize::MAX).read_chunk(), MAX_READ_CHUNK);
    }

    #[test]
    fn the_defaults_pass_and_each_unworkable_setting_is_refused_with_its_reason() {
        assert_eq!(ServerConfig::default().check(), Ok(()));
        let refused = |change: fn(&mut ServerConfig)| {
            let mut c = ServerConfig::default();
            change(&mut c);
            c.check().err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert_eq!(
            refused(|c| c.post_rate_per_sec = 0),
            "the post rate (a second) must be at least 1, not 0"
        );
        assert!(refused(|c| c.max_batch_lines = 0).contains("batch"));
        assert!(refused(|c| c.lines_per_turn = 0).contains("turn"));
        assert!(refused(|c| c.hash_workers = 0).contains("hashing threads"));
        assert!(refused(|c| c.keepalive_timeout_millis = 0).contains("keepalive"));
        assert!(refused(|c| c.max_connections = 0).contains("connections"));
        assert_eq!(
            refused(|c| c.login_timeout_millis = 0),
            "the login timeout must be at least 1, not 0"
        );
        assert!(refused(|c| c.signups_per_ip_per_minute = 0).contains("sign-ups"));
        assert!(refused(|c| c.read_chunk_bytes = MAX_READ_CHUNK + 1).contains("at most"));
        assert!(refused(|c| c.output_low_water = c.output_high_water + 1).contains("low-water"));
        assert!(refused(|c| c.max_unsent_bytes = c.output_high_water - 1).contains("cut"));
        assert!(refused(|c| c.max_input_buffer = crate::proto::MAX_LINE).contains("whole line"));
        assert!(refused(|c| c.runaway_line_bytes = 100).contains("runaway"));
        assert!(
            refused(|c| c.guess_delay_millis = c.guess_max_delay_millis + 1).contains("guessing")
        );
        assert!(refused(|c| c.hash_memory_kib = 0).contains("from 8 to"));
        // The edges themselves are allowed.
        let mut c = ServerConfig::default();
        c.output_low_water = c.output_high_water;
        c.max_unsent_bytes = c.output_high_water;
        c.max_input_buffer = crate::proto::MAX_LINE + 1;
        c.runaway_line_bytes = crate::proto::MAX_LINE as u64 + 1;
        c.guess_delay_millis = c.guess_max_delay_millis;
        c.hash_memory_kib = 8;
        c.read_chunk_bytes = MAX_READ_CHUNK;
        assert_eq!(c.check(), Ok(()));
    }
}
