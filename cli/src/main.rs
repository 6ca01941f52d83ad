//! The `huddle` binary: `huddle server …`, `huddle client …` and `huddle bench …`.
//!
//! Kept small on purpose: each subcommand lives in its own module, which parses its options
//! with clap and hands a runtime everything it needs.

mod bench_cmd;
mod client_cmd;
mod server_cmd;
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
    /// Run a server: accounts, posts, private messages, the data folder.
    Server(server_cmd::ServerArgs),
    /// Connect to a huddle server.
    Client(client_cmd::ClientArgs),
    /// Measure: print figures for the README and for choosing a runtime.
    Bench(bench_cmd::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server_cmd::run(args).map(|()| 0),
        Command::Client(args) => client_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Never a panic, even with standard error closed: the exit code must stay 1.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("huddle: {}\n", describe(&e)),
            );
            std::process::exit(1);
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose text the message
/// already holds (an OS error shown in words by its wrapper) is not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.is_empty() {
            text = said;
        } else if !text.contains(&said) && !said.is_empty() {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}
