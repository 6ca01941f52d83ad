//! `huddle client`: connect to a server and talk to it from a terminal or a script.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use huddle_core::tls::HostPort;
use huddle_runtime_std::client::{ClientOptions, ClientSecurity, Ui, run_client};
use huddle_runtime_std::tls_files::known_hosts_path;

use crate::ui::{HistoryConfig, PlainUi, TermConfig, TermUi};

/// Arguments of `huddle client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's IP address or host name.
    #[arg(default_value = "127.0.0.1")]
    pub server_ip: String,
    /// The server's TCP port.
    #[arg(default_value_t = 4000)]
    pub server_port: u16,
    /// The UDP port to receive video uploads on (0 picks a free one).
    #[arg(default_value_t = 0)]
    pub udp_port: u16,
    /// The UDP port to tell the server (and so presenters) instead of the one this client
    /// listens on: for a client behind a NAT or relay that forwards another port to it.
    #[arg(long, value_name = "PORT")]
    pub public_udp_port: Option<u16>,
    /// Folder where received uploads are saved.
    #[arg(long = "dir", value_name = "DOWNLOADS", default_value = ".")]
    pub downloads: PathBuf,
    /// Largest UDP datagram for uploads, in bytes: the default fits a 1500-byte MTU; on
    /// loopback or a jumbo-frame LAN up to 65507 is faster.
    #[arg(long, value_name = "BYTES", default_value_t = huddle_core::transfer::MTU_DATAGRAM,
          value_parser = clap::value_parser!(usize))]
    pub datagram_size: usize,
    /// Which runtime drives the client.
    #[arg(long, value_enum, default_value_t = crate::Runtime::Std)]
    pub runtime: crate::Runtime,
    /// Lose this share (in percent) of the datagrams this client sends, at random but
    /// reproducibly (seeded): to see how uploads cope with a lossy network over loopback,
    /// which loses nothing. 0 (the default) loses nothing.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub emulate_loss: f64,
    /// Seed of the emulated losses.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub emulate_seed: u64,
    /// End each upload's and download's closing line with its counters (time in ms,
    /// datagrams, repeats, losses, memory held).
    #[arg(long)]
    pub transfer_stats: bool,
    /// Send and receive uploads unencrypted (the handshake is still sealed), only to measure
    /// what encryption costs: `huddle bench udp` runs both ways. Both clients must use it; a
    /// normal client refuses such an upload. Never for real use: anyone on the path can read
    /// the file.
    #[arg(long, hide = true)]
    pub bench_clear_transfers: bool,
    /// Cap the rate all uploads together send at, per second (e.g. 5M, 500K), shared
    /// equally by those running: to leave room on a slow uplink. No cap by default.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_rate: Option<u64>,
    /// Most uploads this client runs at once; another UPD waits its turn (up to 256 wait).
    #[arg(long, value_name = "N", default_value_t = huddle_core::transfer::TransferConfig::default().max_outgoing)]
    pub max_uploads: usize,
    /// Most downloads this client receives at once; more are refused and their presenters
    /// told why.
    #[arg(long, value_name = "N", default_value_t = huddle_core::transfer::TransferConfig::default().max_incoming)]
    pub max_downloads: usize,
    /// What to do with an incoming upload from someone not in --trust: take it, ask (y/n,
    /// or ACCEPT/DECLINE; declined after 2 minutes without an answer), or decline it
    /// [default: ask at a terminal, always when piped, so scripts keep working].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub accept: Option<AcceptArg>,
    /// Decline incoming uploads larger than this, from anyone (e.g. 500M, 2G, 1.5GiB;
    /// plain numbers are bytes).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_upload: Option<u64>,
    /// Take uploads from these presenters without asking (comma-separated user names; still
    /// within --max-upload).
    #[arg(long, value_name = "USERS", value_delimiter = ',', value_parser = parse_user)]
    pub trust: Vec<huddle_core::UserName>,
    /// TLS on the link to the server.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The interactive terminal.
    #[command(flatten)]
    pub terminal: TerminalArgs,
}

/// `--accept`: the policy for uploads from presenters not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcceptArg {
    /// Take every upload.
    Always,
    /// Ask each time.
    Ask,
    /// Decline them (only --trust presenters get through).
    Never,
}

/// A size as a person writes it: `500M`, `2G`, `1.5GiB`, `300MB`, `1024` (bytes). K, M, G and
/// T are binary (KiB, MiB…), as the client shows sizes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500M, 2G, 1048576)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is not a size this client can hold"));
    }
    Ok(bytes as u64)
}

fn parse_user(s: &str) -> Result<huddle_core::UserName, String> {
    huddle_core::UserName::new(s.trim()).map_err(|e| format!("{s:?}: {e}"))
}

/// How the client protects its link to the server. By default it upgrades with STARTTLS
/// and trusts a CA-signed certificate for the host, or pins a self-signed one on first use
/// (as ssh does); a server on loopback is encrypted but any certificate is accepted.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Do not use TLS: user name, password and everything else cross the network in clear.
    /// For testing only.
    #[arg(long)]
    pub insecure: bool,
    /// The file of pinned server certificates [default: $XDG_CONFIG_HOME/huddle/known_hosts,
    /// else ~/.config/huddle/known_hosts].
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub known_hosts: Option<PathBuf>,
    /// Judge a server on a loopback address like any other (pinned on first use, refused if
    /// its certificate changes): for a port forwarded to a remote server (ssh -L).
    #[arg(long, conflicts_with = "insecure")]
    pub verify_loopback: bool,
}

impl TlsArgs {
    fn security(&self, host: &str, port: u16) -> anyhow::Result<ClientSecurity> {
        if self.insecure {
            return Ok(ClientSecurity::Insecure);
        }
        let server = HostPort::new(host, port)
            .with_context(|| format!("the server address {host:?} cannot be checked by TLS"))?;
        let known_hosts = known_hosts_path(self.known_hosts.as_deref())?;
        Ok(ClientSecurity::Tls {
            server,
            known_hosts,
            verify_loopback: self.verify_loopback,
        })
    }
}

/// Options of the interactive terminal; a piped client ignores them (it keeps no history and
/// rings no bell).
#[derive(Debug, Args)]
#[command(next_help_heading = "Terminal")]
pub struct TerminalArgs {
    /// Keep command history in FILE [default: $XDG_CONFIG_HOME/huddle/history, else
    /// ~/.config/huddle/history].
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Keep no history file: Up and Down recall this run's commands only.
    #[arg(long, conflicts_with = "history")]
    pub no_history: bool,
    /// No terminal bell when someone mentions your name.
    #[arg(long)]
    pub no_bell: bool,
}

impl TerminalArgs {
    fn config(&self) -> TermConfig {
        let defaults = HistoryConfig::default();
        let path = if self.no_history {
            None
        } else {
            self.history.clone().or(defaults.path.clone())
        };
        TermConfig {
            colour: crate::ui::Palette::colour_from_env(),
            bell: !self.no_bell,
            history: HistoryConfig { path, ..defaults },
            ..TermConfig::default()
        }
    }
}

fn resolve(ip: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (ip, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the server address {ip:?}"))?
        .next()
        .with_context(|| format!("the server address {ip:?} resolves to nothing"))
}

/// Whether to draw the rich terminal: a person on both ends (input and output are a terminal)
/// of a terminal that can move its cursor.
fn rich_terminal() -> bool {
    std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Run the client; returns the process exit code.
pub fn run(args: ClientArgs) -> anyhow::Result<i32> {
    let server = resolve(&args.server_ip, args.server_port)?;
    let interactive = std::io::stdin().is_terminal();
    let max = huddle_core::transfer::MAX_DATAGRAM;
    if !(512..=max).contains(&args.datagram_size) {
        anyhow::bail!(
            "--datagram-size must be between 512 and {max} bytes, not {}",
            args.datagram_size
        );
    }
    if args.max_uploads == 0 || args.max_downloads == 0 {
        anyhow::bail!("--max-uploads and --max-downloads must be at least 1");
    }
    // A folder that does not exist yet is created at the first download; anything else that
    // is not a folder would fail every download, so say so now.
    if let Ok(meta) = std::fs::metadata(&args.downloads)
        && !meta.is_dir()
    {
        anyhow::bail!(
            "--dir {} is not a folder: downloads need a folder to be saved in",
            args.downloads.display()
        );
    }
    let transfer = huddle_core::transfer::TransferConfig {
        max_datagram: args.datagram_size,
        max_outgoing: args.max_uploads,
        max_incoming: args.max_downloads,
        max_rate: args.max_rate.filter(|&r| r > 0),
        protection: if args.bench_clear_transfers {
            huddle_core::transfer::Protection::Clear
        } else {
            huddle_core::transfer::Protection::Encrypted
        },
        seed: u64::from_le_bytes(seed()),
        ..Default::default()
    };
    if !(0.0..100.0).contains(&args.emulate_loss) {
        anyhow::bail!(
            "--emulate-loss must be at least 0 and below 100 (percent), not {}",
            args.emulate_loss
        );
    }
    let emulate = (args.emulate_loss > 0.0).then(|| huddle_core::transfer::netem::NetemConfig {
        latency_ms: 0,
        loss: args.emulate_loss / 100.0,
        seed: args.emulate_seed,
        ..Default::default()
    });
    let accept = match args.accept {
        Some(AcceptArg::Always) => huddle_core::client::AcceptPolicy::Always,
        Some(AcceptArg::Ask) => huddle_core::client::AcceptPolicy::Ask,
        Some(AcceptArg::Never) => huddle_core::client::AcceptPolicy::Never,
        // A person is asked; a script gets what it got before consent existed.
        None if interactive => huddle_core::client::AcceptPolicy::Ask,
        None => huddle_core::client::AcceptPolicy::Always,
    };
    let consent = huddle_core::client::ConsentPolicy {
        accept,
        max_upload: args.max_upload,
        trusted: args.trust.clone(),
    };
    let opts = ClientOptions {
        server,
        udp_port: args.udp_port,
        public_udp_port: args.public_udp_port.filter(|&p| p != 0),
        downloads: args.downloads,
        interactive,
        transfer,
        emulate,
        transfer_stats: args.transfer_stats,
        consent,
        security: args.tls.security(&args.server_ip, args.server_port)?,
    };
    let term = if rich_terminal() {
        Some(Arc::new(
            TermUi::new(args.terminal.config()).context("cannot set up the terminal")?,
        ))
    } else {
        None
    };
    let ui: Arc<dyn Ui> = match &term {
        Some(t) => Arc::clone(t) as Arc<dyn Ui>,
        None => Arc::new(PlainUi::new()),
    };
    let status = match args.runtime {
        crate::Runtime::Std => run_client(opts, ui).map_err(anyhow::Error::from),
        crate::Runtime::Smol => {
            huddle_runtime_smol::client::run_client(opts, ui).map_err(anyhow::Error::from)
        }
    };
    // The terminal goes back to the shell before anything else is printed.
    if let Some(t) = &term {
        t.close();
    }
    Ok(status?.code())
}

fn seed() -> [u8; 8] {
    let mut b = [0u8; 8];
    // Only the rate controller's probing phase uses it: a fixed seed would be fine too.
    let _ = getrandom::getrandom(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("300MB"), Ok(300 << 20));
        assert_eq!(parse_size(" 7k "), Ok(7 << 10));
        for bad in ["", "M", "-5M", "1.2.3G", "5X", "99999999999T", "NaN"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
