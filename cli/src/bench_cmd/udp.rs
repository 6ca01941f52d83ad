//! `huddle bench udp`: a file between two real `huddle client` processes through a real
//! `huddle server` over loopback — the path users run — next to a plain TCP copy of the same
//! file, with and without seeded loss.
//!
//! Each run starts a fresh pair of clients (yoda presents, luke receives) with
//! `--transfer-stats`, and for the lossy runs `--emulate-loss` on both (data and ACKs are
//! lost), which passes every datagram a client sends through the core's seeded `netem`. It
//! types `UPD luke <file>` into yoda's client and waits for both closing lines. Figures:
//! goodput from the presenter's own clock (upload start to the receiver's confirmation of the
//! verified, fsynced file), CPU seconds of each client process during the run
//! (`/proc/<pid>/stat`), the presenter's datagrams, repeats and losses, the receiver's peak
//! resident memory (`VmHWM`) and the most out-of-order data its core held. Every size is also
//! run once with both clients in the benchmark-only clear mode (`--bench-clear-transfers`:
//! the handshake sealed, the file's datagrams not encrypted), so one run reports what
//! encryption costs. Nothing here asserts anything about time: it prints figures to compare.

mod child;
mod floor;
mod reference;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use self::child::{ClientSetup, Proc};
use self::reference::{TcpCopy, same, tcp_copy, write_content};

/// Datagram sizes measured unless `--datagram-size` says otherwise: the default (a 1500-byte
/// MTU) and the large datagrams loopback allows.
const DEFAULT_SIZES: [usize; 2] = [huddle_core::transfer::MTU_DATAGRAM, 65_000];

/// Options of `huddle bench udp`.
#[derive(Debug, Args)]
pub struct UdpArgs {
    /// File size in MiB.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Share of the datagrams each client loses (seeded) in the lossy runs, in percent.
    #[arg(long, default_value_t = 5.0)]
    loss_percent: f64,
    /// Datagram sizes to measure, in bytes (comma-separated; default 1452 and 65000).
    #[arg(long, value_delimiter = ',')]
    datagram_size: Vec<usize>,
    /// Which runtime drives the two clients (the server runs on smol).
    #[arg(long, value_enum, default_value_t = crate::Runtime::Std)]
    runtime: crate::Runtime,
    /// Rounds of every run; each row is the best of its rounds.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Folder for the files (default: /dev/shm where it exists, so the disk does not decide).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the file content and of the losses.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Skip the unencrypted comparison runs.
    #[arg(long)]
    no_clear: bool,
}

/// One row of the report: which datagram size, loss and protection.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Case {
    datagram: usize,
    loss: f64,
    clear: bool,
}

/// One upload's figures.
#[derive(Debug, Clone, Default)]
struct Run {
    secs: f64,
    sender_cpu: Option<f64>,
    receiver_cpu: Option<f64>,
    datagrams: u64,
    repeated: u64,
    lost: u64,
    receiver_peak_rss: Option<u64>,
    held_peak: u64,
    /// Receive-buffer blocks the receiver allocated (the others were reused).
    buffers: u64,
    srtt_ms: u64,
    probe_timeouts: u64,
    /// Longest probe timeout the presenter waited (ms): a stall, not a rate.
    longest_wait_ms: u64,
    /// ACKs the receiver sent.
    acks: u64,
}

/// Run the benchmark; it prints its own report.
pub fn run(args: UdpArgs) -> anyhow::Result<()> {
    if !(0.0..100.0).contains(&args.loss_percent) {
        bail!(
            "--loss-percent must be at least 0 and below 100, not {}",
            args.loss_percent
        );
    }
    let max = huddle_core::transfer::MAX_DATAGRAM;
    let sizes = if args.datagram_size.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        args.datagram_size.clone()
    };
    if let Some(bad) = sizes.iter().find(|s| !(512..=max).contains(*s)) {
        bail!("--datagram-size must be between 512 and {max} bytes, not {bad}");
    }
    if args.mib == 0 || args.rounds == 0 {
        bail!("--mib and --rounds must be at least 1");
    }
    let base = args.dir.clone().unwrap_or_else(default_dir);
    let dir = base.join(format!("huddle-bench-udp-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = measure(&args, &sizes, &dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

/// A memory-backed folder if there is one: the benchmark measures transports, not disks.
fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn runtime_name(r: crate::Runtime) -> &'static str {
    match r {
        crate::Runtime::Std => "std",
        crate::Runtime::Smol => "smol",
    }
}

fn measure(args: &UdpArgs, sizes: &[usize], dir: &Path) -> anyhow::Result<()> {
    let size = args.mib << 20;
    let src = dir.join("clip.mp4");
    let hash = write_content(&src, size, args.seed).context("cannot write the test file")?;
    fs::write(dir.join("credentials.txt"), "yoda jedi\nluke r2d2\n")?;
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "huddle bench udp: {} MiB over loopback, {} clients through a smol server; load average {} ({cpus} CPUs)",
        args.mib,
        runtime_name(args.runtime),
        load.join(" ")
    );
    println!(
        "MB = 10^6 bytes; CPU = user + system seconds of each client process during the upload; \
         best of {} round(s)",
        args.rounds
    );

    let mut tcp: Option<TcpCopy> = None;
    for _ in 0..args.rounds {
        let dst = dir.join("tcp-copy");
        let t = tcp_copy(&src, &dst).context("the TCP copy failed")?;
        if !same(&dst, &hash)? {
            bail!("the TCP copy differs from the original");
        }
        fs::remove_file(&dst)?;
        if tcp.as_ref().is_none_or(|b| t.secs < b.secs) {
            tcp = Some(t);
        }
    }
    let tcp = tcp.context("no TCP round")?;

    let (mut server, addr) = child::server("smol", dir)?;
    let mut cases = Vec::new();
    for &datagram in sizes {
        for loss in [0.0, args.loss_percent] {
            let case = Case {
                datagram,
                loss,
                clear: false,
            };
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
        if !args.no_clear {
            cases.push(Case {
                datagram,
                loss: 0.0,
                clear: true,
            });
        }
    }
    let mut rows = Vec::new();
    for case in cases {
        let mut best: Option<Run> = None;
        for round in 0..args.rounds {
            let setup = ClientSetup {
                runtime: runtime_name(args.runtime),
                server: addr,
                downloads: &dir.join("downloads"),
                datagram_size: case.datagram,
                loss_percent: case.loss,
                seed: args.seed ^ u64::from(round),
                clear: case.clear,
            };
            let r = upload(&setup, &src, &hash)
                .with_context(|| format!("the {}-byte run failed", case.datagram))?;
            if best.as_ref().is_none_or(|b| r.secs < b.secs) {
                best = Some(r);
            }
        }
        rows.push((case, best.unwrap_or_default()));
    }
    server.finish();
    let payloads: Vec<usize> = sizes
        .iter()
        .map(|&d| huddle_core::transfer::datagram::payload_capacity(d))
        .collect();
    let floor = floor::measure(&payloads);
    report(size, &tcp, &rows);
    report_floor(size, &tcp, sizes, &floor);
    Ok(())
}

/// One upload from yoda's client to luke's; both are fresh processes.
fn upload(setup: &ClientSetup<'_>, src: &Path, hash: &blake3::Hash) -> anyhow::Result<Run> {
    let _ = fs::remove_dir_all(setup.downloads);
    fs::create_dir_all(setup.downloads)?;
    let mut luke = child::client(setup, "luke", "r2d2")?;
    let yoda_dir = setup.downloads.with_extension("yoda");
    fs::create_dir_all(&yoda_dir)?;
    let yoda_setup = ClientSetup {
        downloads: &yoda_dir,
        seed: setup.seed ^ 0x5eed,
        ..*setup
    };
    let mut yoda = child::client(&yoda_setup, "yoda", "jedi")?;
    let cpu = |p: &Proc| child::cpu_secs(p.pid());
    let (yoda_cpu0, luke_cpu0) = (cpu(&yoda), cpu(&luke));

    yoda.send(&format!("UPD luke {}", src.display()))?;
    let sent = yoda.wait_for("has been uploaded to luke", &["failed", "Cannot"])?;
    let received = luke.wait_for("saved as yoda_clip.mp4", &["failed", "Cannot"])?;
    let (yoda_cpu1, luke_cpu1) = (cpu(&yoda), cpu(&luke));
    let peak = child::status_bytes(luke.pid(), "VmHWM:");

    let sender = counters(&sent);
    let receiver = counters(&received);
    yoda.send("OUT")?;
    luke.send("OUT")?;
    yoda.finish();
    luke.finish();
    if !same(&setup.downloads.join("yoda_clip.mp4"), hash)? {
        bail!("the received file differs from the original");
    }
    let _ = fs::remove_dir_all(setup.downloads);
    let _ = fs::remove_dir_all(&yoda_dir);
    let ms = *sender
        .first()
        .context("no timing in the presenter's line")?;
    Ok(Run {
        secs: (ms as f64 / 1000.0).max(1e-3),
        sender_cpu: yoda_cpu1.zip(yoda_cpu0).map(|(a, b)| a - b),
        receiver_cpu: luke_cpu1.zip(luke_cpu0).map(|(a, b)| a - b),
        datagrams: sender.get(1).copied().unwrap_or(0),
        repeated: sender.get(2).copied().unwrap_or(0),
        lost: sender.get(3).copied().unwrap_or(0),
        receiver_peak_rss: peak,
        held_peak: receiver.get(4).copied().unwrap_or(0),
        buffers: receiver.get(6).copied().unwrap_or(0),
        srtt_ms: sender.get(4).copied().unwrap_or(0),
        probe_timeouts: sender.get(5).copied().unwrap_or(0),
        longest_wait_ms: sender.get(6).copied().unwrap_or(0),
        acks: receiver.get(3).copied().unwrap_or(0),
    })
}

/// The numbers in the `[…]` counters a client adds to a closing line with
/// `--transfer-stats`, in order.
fn counters(line: &str) -> Vec<u64> {
    let Some(inside) = line
        .rsplit_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
    else {
        return Vec::new();
    };
    inside
        .split(", ")
        .filter_map(|field| {
            field
                .split_whitespace()
                .find_map(|word| word.parse::<u64>().ok())
        })
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn secs(s: Option<f64>) -> String {
    s.map_or("n/a".into(), |s| format!("{s:.2} s"))
}

fn report(size: u64, tcp: &TcpCopy, rows: &[(Case, Run)]) {
    let mb_s = |secs: f64| size as f64 / secs / 1e6;
    println!();
    println!(
        "{:<24} {:>9} {:>8} {:>10} {:>12} {:>10} {:>9} {:>7} {:>14} {:>10} {:>8} {:>5} {:>6} {:>9} {:>7}",
        "run",
        "MB/s",
        "time",
        "send CPU",
        "receive CPU",
        "datagrams",
        "repeated",
        "lost",
        "recv peak RSS",
        "held peak",
        "buffers",
        "srtt",
        "PTOs",
        "PTO wait",
        "ACKs"
    );
    println!(
        "{:<24} {:>9.1} {:>8} {:>10} {:>12} {:>10} {:>9} {:>7} {:>14} {:>10} {:>8} {:>5} {:>6} {:>9} {:>7}",
        "TCP copy (reference)",
        mb_s(tcp.secs),
        format!("{:.2} s", tcp.secs),
        secs(Some(tcp.sender_cpu)),
        secs(Some(tcp.receiver_cpu)),
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-"
    );
    for (case, r) in rows {
        let datagram = case.datagram;
        let loss = case.loss;
        let mode = if case.clear { ", clear" } else { "" };
        let what = if loss > 0.0 {
            format!("UDP {datagram} B, {loss}% loss{mode}")
        } else {
            format!("UDP {datagram} B{mode}")
        };
        println!(
            "{:<24} {:>9.1} {:>8} {:>10} {:>12} {:>10} {:>9} {:>7} {:>14} {:>10} {:>8} {:>5} {:>6} {:>9} {:>7}",
            what,
            mb_s(r.secs),
            format!("{:.2} s", r.secs),
            secs(r.sender_cpu),
            secs(r.receiver_cpu),
            r.datagrams,
            r.repeated,
            r.lost,
            r.receiver_peak_rss.map_or("n/a".into(), mib),
            mib(r.held_peak),
            r.buffers,
            format!("{} ms", r.srtt_ms),
            r.probe_timeouts,
            format!("{} ms", r.longest_wait_ms),
            r.acks
        );
    }
    println!();
    let find = |datagram: usize, loss: f64, clear: bool| {
        rows.iter()
            .find(|(c, _)| c.datagram == datagram && c.loss == loss && c.clear == clear)
            .map(|(_, r)| r.secs)
    };
    for (case, r) in rows {
        let datagram = case.datagram;
        let of_tcp = 100.0 * tcp.secs / r.secs;
        if case.clear {
            continue;
        }
        if case.loss > 0.0 {
            if let Some(base) = find(datagram, 0.0, false) {
                println!(
                    "UDP {datagram} B at {}% loss: {:.0} % of its lossless goodput, {of_tcp:.0} % of TCP",
                    case.loss,
                    100.0 * base / r.secs
                );
            }
            continue;
        }
        println!("UDP {datagram} B: {of_tcp:.0} % of the TCP copy's goodput");
        if let Some(clear) = find(datagram, 0.0, true) {
            println!(
                "UDP {datagram} B encrypted: {:.0} % of the same run unencrypted",
                100.0 * clear / r.secs
            );
        }
    }
}

/// What hashing and sealing alone cost each side here, and the goodput that leaves at most
/// (each side on a core of its own, doing the TCP copy's work plus that).
fn report_floor(size: u64, tcp: &TcpCopy, sizes: &[usize], floor: &floor::Floor) {
    println!();
    let tcp_side = tcp.sender_cpu.max(tcp.receiver_cpu);
    for &datagram in sizes {
        let payload = huddle_core::transfer::datagram::payload_capacity(datagram);
        let extra = floor.seconds(size, payload);
        let ceiling = tcp_side + extra;
        println!(
            "UDP {datagram} B floor: hashing (BLAKE3 {:.1} GB/s) and AES-256-GCM ({:.1} GB/s at \
             {payload} B) cost each side {extra:.2} s; with the TCP copy's {tcp_side:.2} s per \
             side that caps goodput near {:.0} MB/s ({:.0} % of the TCP copy)",
            floor.hash / 1e9,
            floor.seal_speed(payload) / 1e9,
            size as f64 / ceiling / 1e6,
            100.0 * tcp.secs / ceiling
        );
    }
}

#[cfg(test)]
mod tests {
    use super::counters;

    #[test]
    fn the_counters_of_a_closing_line_are_read_in_order() {
        let line = "clip.mp4 has been uploaded to luke (256.0 MiB in 1.4 s, 180.0 MiB/s) \
                    [1432 ms, 190650 datagrams sent, 12 repeated, 11 lost, srtt 1 ms, \
                    3 probe timeouts, longest wait 7 ms]";
        assert_eq!(counters(line), vec![1432, 190650, 12, 11, 1, 3, 7]);
        assert_eq!(counters("no counters"), Vec::<u64>::new());
    }
}
