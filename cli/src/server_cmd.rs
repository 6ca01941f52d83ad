//! `huddle server [PORT] [ATTEMPTS] [--dir DIR] [--runtime std|smol] [--block-secs S]
//! [--no-signup] [--bind IP] [--repair] [limits…]`: every limit of the core's `ServerConfig`
//! has a flag (`huddle server --help` lists them under "Limits").

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use huddle_core::server::{Attempts, OnDamage, PlaintextLogin, ServerConfig};
use huddle_core::time::Zone;
use huddle_runtime_std::{ServerOptions, TlsSource};

/// Options of `huddle server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TCP port to listen on (0 picks a free one; the startup line names it).
    #[arg(default_value_t = 4000)]
    port: u16,
    /// Consecutive failed logins (1 to 5) after which a user name is blocked.
    #[arg(default_value = "3", value_parser = parse_attempts)]
    attempts: Attempts,
    /// Data folder: credentials.txt, messagelog.txt, userlog.txt and the server's own state
    /// (default: the working directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Which runtime drives the server. smol by default: it holds 10,000 idle clients in a
    /// few kB each on 4 threads, where std needs two threads per client (`huddle bench idle`).
    #[arg(long, value_enum, default_value_t = crate::Runtime::Smol)]
    runtime: crate::Runtime,
    /// How long a user name stays blocked after too many failed logins, in seconds
    /// (fractions allowed).
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    block_secs: Duration,
    /// Refuse unknown user names instead of offering sign-up.
    #[arg(long)]
    no_signup: bool,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Start even if data files have damaged lines: move each one, byte for byte, to
    /// `<file>.rejected` (with the time and the reason) and keep a copy of the file as it was
    /// (`<file>.<time>.bak`). Without it the server refuses to start and lists them.
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// TLS on the text link: the greeting offers STARTTLS and clients upgrade. Without a given
/// certificate the server keeps a self-signed one in its data folder, created at first start;
/// it prints the certificate's fingerprint at every start, for users to compare with the one
/// their client shows on first use.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
struct TlsArgs {
    /// The certificate chain to present (PEM, leaf first), e.g. one signed by a certificate
    /// authority for the server's host name.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Accept user names and passwords in clear from every address, not only from loopback:
    /// for a trusted network or clients that cannot do TLS (anyone on the path reads them).
    #[arg(long)]
    allow_plaintext: bool,
    /// Accept user names and passwords only over TLS, from loopback too: for a server behind
    /// a proxy or tunnel on the same machine, whose remote clients all arrive from loopback.
    #[arg(long, conflicts_with = "allow_plaintext")]
    require_tls: bool,
}

impl TlsArgs {
    fn source(&self) -> TlsSource {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsSource::DataFolder,
        }
    }

    fn plaintext_login(&self) -> PlaintextLogin {
        if self.allow_plaintext {
            PlaintextLogin::Anywhere
        } else if self.require_tls {
            PlaintextLogin::Nowhere
        } else {
            PlaintextLogin::LoopbackOnly
        }
    }
}

fn defaults() -> ServerConfig {
    ServerConfig::default()
}

/// The server's limits; the defaults and their reasons are documented on `ServerConfig`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Seconds a connection may take to log in before it is closed.
    #[arg(long, default_value_t = defaults().login_timeout_millis as f64 / 1000.0, value_parser = seconds)]
    login_timeout_secs: f64,
    /// Seconds without a byte from a logged-in client before the server sends it a keepalive
    /// ping (0: no keepalive).
    #[arg(long, default_value_t = defaults().keepalive_idle_millis as f64 / 1000.0, value_parser = seconds)]
    keepalive_idle_secs: f64,
    /// Seconds after a keepalive ping within which the client must send something, or it is
    /// disconnected and its user logged out.
    #[arg(long, default_value_t = defaults().keepalive_timeout_millis as f64 / 1000.0, value_parser = seconds)]
    keepalive_timeout_secs: f64,
    /// While the data folder cannot be written (full disk, read-only mount), try a write
    /// this often, in seconds; the first that succeeds ends read-only mode.
    #[arg(long, default_value_t = defaults().store_probe_millis as f64 / 1000.0, value_parser = seconds)]
    store_probe_secs: f64,
    /// Seconds a client's output may make no progress before it is cut off.
    #[arg(long, default_value_t = defaults().write_timeout_millis as f64 / 1000.0, value_parser = seconds)]
    write_timeout_secs: f64,
    /// Unsent bytes above which a client's requests wait (backpressure).
    #[arg(long, default_value_t = defaults().output_high_water)]
    output_high_water: usize,
    /// Unsent bytes under which a backed-up client's requests are taken again.
    #[arg(long, default_value_t = defaults().output_low_water)]
    output_low_water: usize,
    /// Unsent bytes beyond which a client that fell behind others' events is cut off.
    #[arg(long, default_value_t = defaults().max_unsent_bytes)]
    max_unsent_bytes: usize,
    /// Bytes of a client's unhandled input held before the server stops reading it.
    #[arg(long, default_value_t = defaults().max_input_buffer)]
    max_input_buffer: usize,
    /// Bytes read from a socket at a time.
    #[arg(long, default_value_t = defaults().read_chunk_bytes)]
    read_chunk_bytes: usize,
    /// Kernel send buffer per client socket in bytes (0: the system's autotuning).
    #[arg(long, default_value_t = defaults().tcp_send_buffer_bytes)]
    tcp_send_buffer_bytes: usize,
    /// Bytes without a newline after which a connection is closed.
    #[arg(long, default_value_t = defaults().runaway_line_bytes)]
    runaway_line_bytes: u64,
    /// Most inputs in one batch (one group commit).
    #[arg(long, default_value_t = defaults().max_batch_inputs)]
    max_batch_inputs: usize,
    /// Most request lines handled in one batch.
    #[arg(long, default_value_t = defaults().max_batch_lines)]
    max_batch_lines: usize,
    /// Most bytes of events fanned out in one batch.
    #[arg(long, default_value_t = defaults().max_batch_fanout_bytes)]
    max_batch_fanout_bytes: usize,
    /// Requests one client has handled before the next client's turn.
    #[arg(long, default_value_t = defaults().lines_per_turn)]
    lines_per_turn: usize,
    /// Posts, private messages, edits, deletes and uploads a user may send at once.
    #[arg(long, default_value_t = defaults().post_burst)]
    post_burst: u32,
    /// After the burst, how many a second a user may send (the excess is delayed).
    #[arg(long, default_value_t = defaults().post_rate_per_sec)]
    post_rate: u32,
    /// Seconds over the rate after which such commands are refused (450).
    #[arg(long, default_value_t = defaults().throttle_refuse_after_millis as f64 / 1000.0, value_parser = seconds)]
    throttle_refuse_after_secs: f64,
    /// Sign-ups an address may make a minute.
    #[arg(long, default_value_t = defaults().signups_per_ip_per_minute)]
    signups_per_minute: u32,
    /// Connections an address may hold that have not logged in.
    #[arg(long, default_value_t = defaults().max_unauthenticated_per_ip)]
    max_unauthenticated_per_ip: usize,
    /// Most connections at once (default: the open-file limit, less a reserve).
    #[arg(long)]
    max_connections: Option<usize>,
    /// An address the per-address limits do not apply to (repeat for more; 127.0.0.1 and
    /// ::1 are always exempt unless --no-default-exempt).
    #[arg(long = "exempt", value_name = "IP")]
    exempt: Vec<IpAddr>,
    /// Do not exempt 127.0.0.1 and ::1 from the per-address limits.
    #[arg(long)]
    no_default_exempt: bool,
    /// Failed logins an address may make across all user names before its further passwords
    /// are slowed down (the exempt addresses are never counted).
    #[arg(long, default_value_t = defaults().guess_free_failures)]
    guess_free_failures: u32,
    /// Seconds the next password from such an address waits; doubles with each further
    /// failure.
    #[arg(long, default_value_t = defaults().guess_delay_millis as f64 / 1000.0, value_parser = seconds)]
    guess_delay_secs: f64,
    /// The longest such wait, in seconds.
    #[arg(long, default_value_t = defaults().guess_max_delay_millis as f64 / 1000.0, value_parser = seconds)]
    guess_max_delay_secs: f64,
    /// Seconds after its last failed login an address starts afresh.
    #[arg(long, default_value_t = defaults().guess_forget_millis as f64 / 1000.0, value_parser = seconds)]
    guess_forget_secs: f64,
    /// Threads hashing passwords.
    #[arg(long, default_value_t = defaults().hash_workers)]
    hash_workers: usize,
    /// Argon2 memory in KiB for new password hashes.
    #[arg(long, default_value_t = defaults().hash_memory_kib)]
    hash_memory_kib: u32,
    /// Most posts replayed at login.
    #[arg(long, default_value_t = defaults().backlog_limit)]
    backlog_limit: usize,
}

/// Descriptors kept for the listener, data files, hash workers and the reserve.
const SPARE_FDS: u64 = 64;

fn millis(secs: f64) -> u64 {
    Duration::try_from_secs_f64(secs)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl LimitArgs {
    fn apply(&self, config: &mut ServerConfig, nofile: u64) {
        config.login_timeout_millis = millis(self.login_timeout_secs);
        config.write_timeout_millis = millis(self.write_timeout_secs);
        config.keepalive_idle_millis = millis(self.keepalive_idle_secs);
        config.keepalive_timeout_millis = millis(self.keepalive_timeout_secs);
        config.store_probe_millis = millis(self.store_probe_secs);
        config.output_high_water = self.output_high_water;
        config.output_low_water = self.output_low_water;
        config.max_unsent_bytes = self.max_unsent_bytes;
        config.max_input_buffer = self.max_input_buffer;
        config.read_chunk_bytes = self.read_chunk_bytes;
        config.runaway_line_bytes = self.runaway_line_bytes;
        config.tcp_send_buffer_bytes = self.tcp_send_buffer_bytes;
        config.max_batch_inputs = self.max_batch_inputs;
        config.max_batch_lines = self.max_batch_lines;
        config.max_batch_fanout_bytes = self.max_batch_fanout_bytes;
        config.lines_per_turn = self.lines_per_turn;
        config.post_burst = self.post_burst;
        config.post_rate_per_sec = self.post_rate;
        config.throttle_refuse_after_millis = millis(self.throttle_refuse_after_secs);
        config.signups_per_ip_per_minute = self.signups_per_minute;
        config.max_unauthenticated_per_ip = self.max_unauthenticated_per_ip;
        config.max_connections = self.max_connections.unwrap_or_else(|| {
            if nofile > SPARE_FDS {
                usize::try_from(nofile - SPARE_FDS).unwrap_or(usize::MAX)
            } else {
                config.max_connections
            }
        });
        if self.no_default_exempt {
            config.exempt.clear();
        }
        config.exempt.extend(self.exempt.iter().copied());
        config.guess_free_failures = self.guess_free_failures;
        config.guess_delay_millis = millis(self.guess_delay_secs);
        config.guess_max_delay_millis = millis(self.guess_max_delay_secs);
        config.guess_forget_millis = millis(self.guess_forget_secs);
        config.hash_workers = self.hash_workers;
        config.hash_memory_kib = self.hash_memory_kib;
        config.backlog_limit = self.backlog_limit;
    }
}

fn parse_attempts(s: &str) -> Result<Attempts, String> {
    Attempts::parse(s).map_err(|e| e.to_string())
}

/// A number of seconds, 0 or more (fractions allowed): a negative or endless time is a typing
/// error, never a setting.
fn seconds(s: &str) -> Result<f64, String> {
    parse_secs(s).map(|d| d.as_secs_f64())
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds (e.g. 10 or 0.5)"))
}

/// Run the server until it stops.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    // First, while this process has a single thread: reading the local offset is only sound
    // then (the `time` crate refuses otherwise).
    let zone = local_zone();
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot find the working directory")?,
    };
    // Each client is a descriptor: take every one the system allows this process.
    let nofile = huddle_runtime_std::limits::raise_nofile().unwrap_or(0);
    let mut rng_seed = [0u8; 32];
    getrandom::getrandom(&mut rng_seed)
        .map_err(|e| anyhow::anyhow!("cannot get random bytes from the system: {e}"))?;
    let mut config = ServerConfig {
        attempts: args.attempts,
        block_millis: u64::try_from(args.block_secs.as_millis()).unwrap_or(u64::MAX),
        allow_signup: !args.no_signup,
        on_damage: if args.repair {
            OnDamage::Repair
        } else {
            OnDamage::Refuse
        },
        zone,
        rng_seed,
        plaintext_login: args.tls.plaintext_login(),
        ..ServerConfig::default()
    };
    args.limits.apply(&mut config, nofile);
    let max_connections = config.max_connections;
    let plaintext_login = config.plaintext_login;
    let mut opts = ServerOptions::new(SocketAddr::new(args.bind, args.port), &dir, config);
    opts.tls = args.tls.source();
    // Both runtimes take the same options and return the same handle.
    let handle = match args.runtime {
        crate::Runtime::Std => huddle_runtime_std::spawn_server(opts),
        crate::Runtime::Smol => huddle_runtime_smol::spawn_server(opts),
    }
    .context("the server could not start")?;
    // Before the line that says it listens: whoever waits for that line (a script, a test, a
    // supervisor) may signal the server at once, and must find the graceful stop in place.
    stop_on_signals(handle.stopper())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "huddle server listening on {} (data folder {}, {} attempts, blocked for {} s, sign-up {}, UTC offset {}, logins in clear {}, up to {} connections)",
        handle.local_addr(),
        dir.display(),
        args.attempts.get(),
        args.block_secs.as_secs_f64(),
        if args.no_signup { "off" } else { "on" },
        offset_text(zone),
        match plaintext_login {
            PlaintextLogin::LoopbackOnly => "from loopback only",
            PlaintextLogin::Anywhere => "from anywhere",
            PlaintextLogin::Nowhere => "from nowhere (TLS only)",
        },
        max_connections,
    );
    let _ = out.flush();
    drop(out);
    handle.join().context("the server stopped")?;
    say("huddle server stopped");
    Ok(())
}

/// A line on standard output that never panics: a closed pipe (`| head`, a log collector that
/// died) or a full disk must not kill the thread that prints it, least of all the one that
/// stops the server on a signal.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// SIGINT (Ctrl-C) and SIGTERM stop the server gracefully: it says so, tells every client
/// (`421`), makes everything durable and exits 0. A second signal while it does stops the
/// process at once (exit 130): every acknowledged change is durable already.
fn stop_on_signals(stopper: huddle_runtime_std::Stopper) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("cannot catch signals")?;
    std::thread::Builder::new()
        .name("huddle-signals".into())
        .spawn(move || {
            let mut forever = signals.forever();
            if let Some(sig) = forever.next() {
                say(&format!(
                    "huddle server: {}: shutting down",
                    signal_name(sig)
                ));
                stopper.stop();
            }
            if let Some(sig) = forever.next() {
                say(&format!(
                    "huddle server: {} again: stopping at once",
                    signal_name(sig)
                ));
                std::process::exit(130);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// The machine's UTC offset now, or UTC with a note if it cannot be read.
fn local_zone() -> Zone {
    match time::UtcOffset::current_local_offset() {
        Ok(offset) => Zone::from_offset_seconds(offset.whole_seconds()),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "huddle: cannot read the local time zone ({e}); timestamps will be in UTC"
            );
            Zone::UTC
        }
    }
}

fn offset_text(zone: Zone) -> String {
    let secs = zone.offset_seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
}
