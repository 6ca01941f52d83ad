//! The `huddle` binary: `huddle server …` and `huddle client …`.
//!
//! Kept small on purpose: each subcommand lives in its own module, which parses its options
//! with clap and hands a runtime everything it needs.

mod server_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// huddle: a videoconferencing-and-messaging server and command-line client.
#[derive(Debug, Parser)]
#[command(name = "huddle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server: accounts, posts, private messages, the data folder.
    Server(server_cmd::ServerArgs),
    /// Connect to a server (not yet available in this build).
    Client {
        /// Arguments for the client.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server_cmd::run(args),
        Command::Client { .. } => Err(anyhow::anyhow!(
            "the huddle client is not yet available in this build"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle: {e:#}");
            ExitCode::FAILURE
        }
    }
}
