//! The `huddle` binary: `huddle server` and `huddle client`.

mod client_cmd;
mod ui;

use clap::{Parser, Subcommand, ValueEnum};

/// Which runtime drives the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// Threads and std::net.
    Std,
    /// smol and async-io.
    Smol,
}

/// huddle: videoconferencing and messaging — text over TCP, video files over UDP.
#[derive(Debug, Parser)]
#[command(name = "huddle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to a huddle server.
    Client(client_cmd::ClientArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Client(args) => client_cmd::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("huddle: {e:#}");
            std::process::exit(1);
        }
    }
}
