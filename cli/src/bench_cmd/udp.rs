//! `huddle bench udp`: a file over loopback UDP with the std runtime, next to a plain TCP copy
//! of the same file in the same run, and again with seeded random loss.

use std::path::PathBuf;

use clap::Args;
use huddle_runtime_std::udp::bench::{BenchOptions, bench_udp};

/// Options of `huddle bench udp`.
#[derive(Debug, Args)]
pub struct UdpArgs {
    /// File size in MiB.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Share of datagrams the benchmark's sending wrapper drops in the lossy run, in percent.
    #[arg(long, default_value_t = 5.0)]
    loss_percent: f64,
    /// Largest datagram in bytes (loopback allows up to 65507).
    #[arg(long, default_value_t = 65_000)]
    datagram_size: usize,
    /// Rounds of (TCP, UDP, lossy UDP); each figure is the best of its rounds.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Folder for the files (default: /dev/shm where it exists, so the disk does not decide).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// fsync the received copies before the clock stops.
    #[arg(long)]
    fsync: bool,
    /// Seed of the file content and of the drops.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// Run the benchmark; it prints its own report.
pub fn run(args: UdpArgs) -> anyhow::Result<()> {
    if !(0.0..100.0).contains(&args.loss_percent) {
        anyhow::bail!(
            "--loss-percent must be at least 0 and below 100, not {}",
            args.loss_percent
        );
    }
    let max = huddle_core::transfer::MAX_DATAGRAM;
    if !(512..=max).contains(&args.datagram_size) {
        anyhow::bail!(
            "--datagram-size must be between 512 and {max} bytes, not {}",
            args.datagram_size
        );
    }
    if args.mib == 0 || args.rounds == 0 {
        anyhow::bail!("--mib and --rounds must be at least 1");
    }
    let opts = BenchOptions {
        size: args.mib << 20,
        dir: args.dir,
        loss: args.loss_percent / 100.0,
        seed: args.seed,
        max_datagram: args.datagram_size,
        rounds: args.rounds,
        fsync: args.fsync,
        ..BenchOptions::default()
    };
    bench_udp(&opts)?;
    Ok(())
}
