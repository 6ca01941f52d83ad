//! `huddle client`: connect to a server and talk to it from a terminal or a script.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use huddle_runtime_std::client::{ClientOptions, Ui, run_client};

use crate::ui::{PlainUi, TermUi};

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
    /// Folder where received uploads are saved.
    #[arg(long = "dir", value_name = "DOWNLOADS", default_value = ".")]
    pub downloads: PathBuf,
    /// Which runtime drives the client.
    #[arg(long, value_enum, default_value_t = crate::Runtime::Std)]
    pub runtime: crate::Runtime,
}

fn resolve(ip: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (ip, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the server address {ip:?}"))?
        .next()
        .with_context(|| format!("the server address {ip:?} resolves to nothing"))
}

/// Run the client; returns the process exit code.
pub fn run(args: ClientArgs) -> anyhow::Result<i32> {
    let server = resolve(&args.server_ip, args.server_port)?;
    let interactive = std::io::stdin().is_terminal();
    let ui: Arc<dyn Ui> = if interactive {
        Arc::new(TermUi::new().context("cannot set up the terminal")?)
    } else {
        Arc::new(PlainUi::new())
    };
    let opts = ClientOptions {
        server,
        udp_port: args.udp_port,
        downloads: args.downloads,
        interactive,
    };
    let status = match args.runtime {
        crate::Runtime::Std => run_client(opts, ui)?,
        crate::Runtime::Smol => huddle_runtime_smol::client::run_client(opts, ui)?,
    };
    Ok(status.code())
}
