//! `huddle server [PORT] [ATTEMPTS] [--dir DIR] [--runtime std|smol] [--block-secs S]
//! [--no-signup] [--bind IP] [--repair]`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use huddle_core::server::{Attempts, OnDamage, ServerConfig};
use huddle_core::time::Zone;
use huddle_runtime_std::ServerOptions;

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
}

fn parse_attempts(s: &str) -> Result<Attempts, String> {
    Attempts::parse(s).map_err(|e| e.to_string())
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
    let mut rng_seed = [0u8; 32];
    getrandom::getrandom(&mut rng_seed)
        .map_err(|e| anyhow::anyhow!("cannot get random bytes from the system: {e}"))?;
    let config = ServerConfig {
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
        ..ServerConfig::default()
    };
    let opts = ServerOptions::new(SocketAddr::new(args.bind, args.port), &dir, config);
    // Both runtimes take the same options and return the same handle.
    let handle = match args.runtime {
        crate::Runtime::Std => huddle_runtime_std::spawn_server(opts),
        crate::Runtime::Smol => huddle_runtime_smol::spawn_server(opts),
    }
    .context("the server could not start")?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "huddle server listening on {} (data folder {}, {} attempts, blocked for {} s, sign-up {}, UTC offset {})",
        handle.local_addr(),
        dir.display(),
        args.attempts.get(),
        args.block_secs.as_secs_f64(),
        if args.no_signup { "off" } else { "on" },
        offset_text(zone),
    );
    let _ = out.flush();
    drop(out);
    handle.join().context("the server stopped")
}

/// The machine's UTC offset now, or UTC with a note if it cannot be read.
fn local_zone() -> Zone {
    match time::UtcOffset::current_local_offset() {
        Ok(offset) => Zone::from_offset_seconds(offset.whole_seconds()),
        Err(e) => {
            eprintln!("huddle: cannot read the local time zone ({e}); timestamps will be in UTC");
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
