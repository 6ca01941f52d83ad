//! `huddle bench abuse`: what one hostile client costs everyone else. A probe client times
//! its `MSG` round trips (one every 20 ms) while, in turn:
//! 1. nothing else happens (the reference);
//! 2. one client floods posts as fast as the socket takes them;
//! 3. many clients sign up at once (Argon2 at the server's real cost);
//! 4. one client pipelines `RDM`s of a large board and reads nothing (the server's memory
//!    growth is reported too);
//! 5. an address other than loopback opens hundreds of sockets and never logs in (a fresh
//!    client's login time is reported).
//!
//! The server is a child process, this build or another (`--server-bin`), with its default
//! limits unless `--server-arg` says otherwise. Figures, not verdicts.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::proc::{ServerChild, load, raise_nofile, scratch};

/// How long the probe waits for one reply before it gives up on the phase.
const PROBE_PATIENCE: Duration = Duration::from_secs(10);

/// Options of `huddle bench abuse`.
#[derive(Debug, Args)]
pub struct AbuseArgs {
    /// The server runtime (std or smol).
    #[arg(long, default_value = "smol")]
    runtime: String,
    /// The huddle binary to run as the server (default: this one), to compare builds.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// More arguments for the server (repeat for each).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// How long each phase lasts, in seconds.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Clients signing up at once in the sign-up phase.
    #[arg(long, default_value_t = 8)]
    signers: usize,
    /// Posts on the board for the RDM phase.
    #[arg(long, default_value_t = 200_000)]
    board: usize,
    /// Sockets opened from 127.0.0.2 in the last phase.
    #[arg(long, default_value_t = 500)]
    sockets: usize,
}

/// Run the benchmark and print its figures.
pub fn run(args: AbuseArgs) -> anyhow::Result<()> {
    raise_nofile();
    let dir = scratch("abuse")?;
    let result = measure(&args, &dir);
    let _ = fs::remove_dir_all(&dir);
    result.map(|_| ())
}

fn measure(args: &AbuseArgs, dir: &std::path::Path) -> anyhow::Result<String> {
    let mut accounts = String::from("probe probe\nflood flood\nreader reader\nfresh fresh\n");
    for i in 0..10 {
        let _ = writeln!(accounts, "probe{i} probe");
    }
    for i in 0..64 {
        let _ = writeln!(accounts, "u{i} p{i}");
    }
    fs::write(dir.join("credentials.txt"), accounts)?;
    let mut log = String::new();
    for i in 1..=args.board {
        let _ = writeln!(
            log,
            "{i}; 01 Nov 2026 10:00:00; u1; post number {i} of the big board {}; no",
            "x".repeat(60)
        );
    }
    let board = log;
    // Each phase gets a fresh server, so what one leaves behind (a flood's backlog) does not
    // count against the next.
    let fresh_server = || -> anyhow::Result<(ServerChild, Client)> {
        fs::write(dir.join("messagelog.txt"), &board)?;
        let _ = fs::remove_file(dir.join("inbox.txt"));
        let server = ServerChild::start(
            args.server_bin.as_deref(),
            &args.runtime,
            dir,
            &args.server_args,
        )?;
        let mut probe = Client::login(server.addr, "probe", "probe")?;
        // The catch-up of the big board goes first.
        probe.round_trip()?;
        Ok((server, probe))
    };
    let phase = Duration::from_secs_f64(args.secs);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench abuse: {} server{}; load {}",
        args.runtime,
        args.server_bin
            .as_ref()
            .map_or(String::new(), |b| format!(" ({})", b.display())),
        load()
    );
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>10}  and",
        "while …", "MSG p50", "MSG p99", "MSG max"
    );
    print!("{out}");
    // 1. Quiet.
    let (server, mut probe) = fresh_server()?;
    let addr = server.addr;
    let mut note = String::new();
    let quiet = sample(&mut probe, addr, phase, &mut note)?;
    row(&mut out, "nothing else happens", &quiet, note);

    drop(server);

    // 2. A flood of posts.
    let (server, mut probe) = fresh_server()?;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        let mut c = Client::login(addr, "flood", "flood")?;
        thread::spawn(move || -> (u64, Duration) {
            let line = "MSG flood flood flood flood\n".repeat(256);
            // A held-back write must not outlast the phase.
            let _ = c.writer.set_write_timeout(Some(Duration::from_millis(50)));
            let started = Instant::now();
            let reader = c.reader.get_ref().try_clone();
            // Read (and count) the replies, so the flooder is not the one held back.
            let counter = thread::spawn(move || {
                let mut n = 0u64;
                if let Ok(s) = reader {
                    let mut r = BufReader::new(s);
                    let mut l = String::new();
                    while r.read_line(&mut l).unwrap_or(0) > 0 {
                        n += u64::from(l.starts_with("250 "));
                        l.clear();
                    }
                }
                n
            });
            let mut rest: &[u8] = line.as_bytes();
            while !stop.load(Ordering::Relaxed) {
                match c.writer.write(rest) {
                    Ok(n) => {
                        rest = &rest[n..];
                        if rest.is_empty() {
                            rest = line.as_bytes();
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let elapsed = started.elapsed();
            let _ = c.writer.shutdown(std::net::Shutdown::Both);
            (counter.join().unwrap_or(0), elapsed)
        })
    };
    let mut note = String::new();
    let flooded = sample(&mut probe, addr, phase, &mut note)?;
    stop.store(true, Ordering::Relaxed);
    let (accepted, lasted) = flood.join().unwrap_or((0, Duration::from_secs(1)));
    row(
        &mut out,
        "one client floods posts",
        &flooded,
        format!(
            "{accepted} flood posts answered in {:.1} s{note}",
            lasted.as_secs_f64()
        ),
    );
    drop(server);

    // 3. Sign-ups.
    let (server, mut probe) = fresh_server()?;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let signers: Vec<_> = (0..args.signers)
        .map(|w| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("s{w}x{n}");
                    match sign_up(addr, &name) {
                        Ok(()) => n += 1,
                        Err(_) => break,
                    }
                }
                n
            })
        })
        .collect();
    let mut note = String::new();
    let signing = sample(&mut probe, addr, phase, &mut note)?;
    stop.store(true, Ordering::Relaxed);
    let signed: u64 = signers.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    row(
        &mut out,
        &format!("{} clients sign up at once", args.signers),
        &signing,
        format!("{:.1} sign-ups a second{note}", signed as f64 / args.secs),
    );

    drop(server);

    // 4. Pipelined RDMs, unread.
    let (server, mut probe) = fresh_server()?;
    let addr = server.addr;
    let rss0 = server.rss_kib();
    let mut reader = Client::login(addr, "reader", "reader")?;
    reader.round_trip()?;
    reader
        .writer
        .write_all("RDM 01 Jan 2000 00:00:00\n".repeat(8).as_bytes())?;
    let mut note = String::new();
    let listing = sample(&mut probe, addr, phase, &mut note)?;
    let rss1 = server.rss_kib();
    row(
        &mut out,
        &format!("8 RDMs of {} posts are not read", args.board),
        &listing,
        format!(
            "server RSS +{:.1} MiB{note}",
            rss1.saturating_sub(rss0) as f64 / 1024.0
        ),
    );
    drop(reader);

    drop(server);

    // 5. Sockets that never log in, from 127.0.0.2.
    let (server, mut probe) = fresh_server()?;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..args.sockets {
        match connect_from("127.0.0.2", addr) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    let opened = held.len();
    let started = Instant::now();
    let fresh = Client::login(addr, "fresh", "fresh");
    let login = started.elapsed();
    let mut note = String::new();
    let crowded = sample(&mut probe, addr, phase, &mut note)?;
    row(
        &mut out,
        &format!("{opened} sockets from 127.0.0.2 never log in"),
        &crowded,
        match fresh {
            Ok(_) => format!(
                "a fresh login took {:.2} ms{note}",
                login.as_secs_f64() * 1000.0
            ),
            Err(e) => format!("a fresh login failed: {e:#}{note}"),
        },
    );
    drop(held);
    drop(server);
    let _ = writeln!(out, "load after: {}", load());
    println!("load after: {}", load());
    Ok(out)
}

/// Sample with the probe; a probe that failed is logged in again for the next phase.
fn sample(
    probe: &mut Client,
    addr: SocketAddr,
    d: Duration,
    and: &mut String,
) -> anyhow::Result<Vec<Duration>> {
    let (v, err) = probe.sample(d);
    if let Some(e) = err {
        let _ = write!(
            and,
            " (the probe gave up: {e}; no reply within {} s)",
            PROBE_PATIENCE.as_secs()
        );
        // A fresh probe under another name: the stuck one may still be logged in.
        probe.generation += 1;
        let name = format!("probe{}", probe.generation % 10);
        let generation = probe.generation;
        *probe = Client::login(addr, &name, "probe").context("the probe cannot log in again")?;
        probe.generation = generation;
    }
    Ok(v)
}

/// Append a row, and print it at once: a phase that kills the server still leaves the
/// rows before it.
fn row(out: &mut String, what: &str, rtts: &[Duration], and: String) {
    let before = out.len();
    row_text(out, what, rtts, and);
    print!("{}", &out[before..]);
    let _ = std::io::stdout().flush();
}

fn row_text(out: &mut String, what: &str, rtts: &[Duration], and: String) {
    let q = |p: f64| -> f64 {
        let mut v = rtts.to_vec();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i].as_secs_f64() * 1000.0
    };
    let _ = writeln!(
        out,
        "{:<44} {:>8.2}ms {:>8.2}ms {:>8.2}ms  {}",
        what,
        q(0.5),
        q(0.99),
        q(1.0),
        and
    );
}

/// A logged-in raw client.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// How many probes were given up on before this one.
    generation: u32,
}

impl Client {
    fn login(addr: SocketAddr, user: &str, password: &str) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(PROBE_PATIENCE))?;
        let mut c = Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            generation: 0,
        };
        c.reply()?;
        writeln!(c.writer, "{user}\n{password}")?;
        let r = c.reply()?;
        let r = if r.starts_with("332") { c.reply()? } else { r };
        if !r.starts_with("230") {
            bail!("login of {user} refused: {r}");
        }
        Ok(c)
    }

    /// The next reply's last line, events skipped; an error after [`PROBE_PATIENCE`].
    fn reply(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + PROBE_PATIENCE;
        loop {
            if Instant::now() > deadline {
                bail!("no reply among the events pushed meanwhile");
            }
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the server closed the connection");
            }
            if line.starts_with("* ") {
                continue;
            }
            if line.as_bytes().get(3) == Some(&b' ') {
                return Ok(line);
            }
        }
    }

    fn round_trip(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        writeln!(self.writer, "MSG probe")?;
        let r = self.reply()?;
        if !r.starts_with("250") {
            bail!("the probe's post was refused: {r}");
        }
        Ok(t.elapsed())
    }

    /// MSG round trips, one every 20 ms, for `d`; and the error that stopped them, if any.
    fn sample(&mut self, d: Duration) -> (Vec<Duration>, Option<String>) {
        let end = Instant::now() + d;
        let mut v = Vec::new();
        while Instant::now() < end {
            match self.round_trip() {
                Ok(t) => v.push(t),
                Err(e) => return (v, Some(format!("{e:#}"))),
            }
            thread::sleep(Duration::from_millis(20));
        }
        (v, None)
    }
}

fn sign_up(addr: SocketAddr, name: &str) -> anyhow::Result<()> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(PROBE_PATIENCE))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    writeln!(w, "{name}\npassword of {name}\nOUT")?;
    let mut all = String::new();
    r.read_to_string(&mut all)?;
    if !all.contains("\n230 ") && !all.contains("230 ") {
        bail!("sign-up of {name} failed: {all}");
    }
    Ok(())
}

fn connect_from(ip: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{ip}:0")
        .parse()
        .map_err(|_| std::io::Error::other("bad address"))?;
    socket.bind(&local.into())?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}
