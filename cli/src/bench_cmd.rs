//! `huddle bench …`: measurements that print figures, for the README and for choosing a
//! runtime. Nothing here passes or fails; each benchmark stops by itself and uses loopback
//! only.
//!
//! One nested subcommand per benchmark, each in its own module under `bench_cmd/`.

mod abuse;
mod chat;
mod idle;
mod link;
mod proc;
mod udp;

use clap::{Args, Subcommand};

/// Options of `huddle bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Bench,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Bench {
    /// Memory per idle logged-in client and a fresh client's MSG round trip, per server
    /// runtime.
    Idle(idle::IdleArgs),
    /// Goodput of a file between two `huddle client` processes through a `huddle server` over
    /// loopback UDP, next to a TCP copy of it, with and without seeded loss: CPU per side,
    /// datagrams and repeats, the receiver's memory.
    Udp(udp::UdpArgs),
    /// Fan-out: N clients, K senders × M posts, unpaced and paced; deliveries a second,
    /// send → receive latency, server CPU per 1,000 deliveries, memory per connection; then
    /// connections a second and server CPU per connection. `--tls`: every client upgrades
    /// (the handshake's cost, encrypted fan-out).
    Chat(chat::ChatArgs),
    /// What one hostile client costs the others: a probe's MSG round trips during a flood,
    /// a sign-up storm, unread RDMs of a big board, sockets that never log in.
    Abuse(abuse::AbuseArgs),
}

/// Run the chosen benchmark and print its figures.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        Bench::Idle(args) => idle::run(args),
        Bench::Udp(args) => udp::run(args),
        Bench::Chat(args) => chat::run(args),
        Bench::Abuse(args) => abuse::run(args),
    }
}
