//! `huddle bench chat`: how fast a server fans posts out, measured by a compiled load
//! generator against a server child process (this build, or another with `--server-bin`,
//! to compare before and after).
//!
//! 1. N accounts with plain passwords in a data folder in `/dev/shm`; the server starts;
//!    its memory is read;
//! 2. N clients log in, in waves; once quiet, the memory again: the difference over N is
//!    the memory per connection;
//! 3. **unpaced**: K of the clients each send M posts as fast as the server takes them;
//!    every client counts the `* POST` lines it receives; the time from the first send to
//!    the last delivery gives deliveries a second, and the server's CPU time over that
//!    stretch the CPU per 1,000 deliveries;
//! 4. **paced**: the same K send a post every `1/rate` seconds; each post carries its send
//!    time, and a sample of receivers records send → receive latency (p50, p99);
//! 5. **connections**: H more clients connect and read the greeting, 50 at a time — with
//!    `--tls` each also upgrades (`STARTTLS`, the handshake, the greeting inside TLS): the
//!    server's CPU over that stretch, per connection, is the handshake's cost.
//!
//! With `--tls` every client upgrades as `huddle client` does, so the figures are those of an
//! encrypted fan-out: one sealed copy of each post per recipient, opened by each client.
//!
//! Every client is a task on one executor thread of this process; the server runs in its
//! own. Nothing here passes or fails: it prints figures, and says when posts went missing.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use smol::{Executor, Timer};

use super::link::{Link, find_line_starting};
use super::proc::{ServerChild, load, raise_nofile, scratch};

/// Options of `huddle bench chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Clients logged in; every one of them receives every post but its own.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of them post.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Posts each sender sends in the unpaced phase.
    #[arg(long, default_value_t = 2000)]
    posts: usize,
    /// Posts each sender sends in the paced phase (0 skips it).
    #[arg(long, default_value_t = 100)]
    paced_posts: usize,
    /// Posts a second each sender sends in the paced phase.
    #[arg(long, default_value_t = 10)]
    paced_rate: u32,
    /// Bytes of text per post (at least what the timestamps need).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The server runtime.
    #[arg(long, value_enum, default_value_t = Runtime::Smol)]
    runtime: Runtime,
    /// The huddle binary to run as the server (default: this one), to compare builds.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Lift the server's per-user rate limit (for a build that has one), so the unpaced
    /// phase measures fan-out rather than the limit.
    #[arg(long)]
    no_rate_limit: bool,
    /// More arguments for the server (repeat for each).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Use a server that is already running at this address (its data folder must hold the
    /// accounts `u0 p0`, `u1 p1`, …), e.g. one started under a profiler; its memory and CPU
    /// are then not measured.
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// Give up waiting for deliveries after this many seconds without progress.
    #[arg(long, default_value_t = 20)]
    patience_secs: u64,
    /// Every client upgrades with STARTTLS, as `huddle client` does.
    #[arg(long)]
    tls: bool,
    /// Connections opened (and, with --tls, upgraded) in the connection phase (0 skips it).
    #[arg(long, default_value_t = 500)]
    connections: usize,
}

/// The server runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// Threads and std::net.
    Std,
    /// smol and async-io.
    Smol,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Std => "std",
            Runtime::Smol => "smol",
        }
    }
}

/// The server measured: a child of this process, or one already running elsewhere.
enum Server {
    Child(ServerChild),
    External(SocketAddr),
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Child(c) => c.addr,
            Server::External(a) => *a,
        }
    }

    fn rss_kib(&self) -> u64 {
        match self {
            Server::Child(c) => c.rss_kib(),
            Server::External(_) => 0,
        }
    }

    fn cpu(&self) -> Duration {
        match self {
            Server::Child(c) => c.cpu(),
            Server::External(_) => Duration::ZERO,
        }
    }

    fn kill(&mut self) {
        if let Server::Child(c) = self {
            c.kill();
        }
    }
}

/// Receivers whose latencies are recorded (all of them would cost the generator too much).
const SAMPLED: usize = 16;

/// What one client has seen.
#[derive(Default)]
struct Seen {
    posts: AtomicU64,
    replies: AtomicU64,
    /// Send → receive latencies in microseconds, for sampled clients while recording.
    latencies: Mutex<Vec<u32>>,
    /// The connection ended.
    closed: AtomicBool,
}

/// The clients and the executor they run on.
struct Crowd {
    executor: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    runner: Option<thread::JoinHandle<()>>,
    clients: Vec<Client>,
    epoch: Instant,
    recording: Arc<AtomicBool>,
}

struct Client {
    link: Arc<Link>,
    seen: Arc<Seen>,
}

/// Run the benchmark and print its figures.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let limit = raise_nofile();
    if limit > 0 && (limit as usize) < args.clients + 64 {
        bail!(
            "{} clients need about {} open files, but the limit is {limit}",
            args.clients,
            args.clients + 64
        );
    }
    if args.senders == 0 || args.senders > args.clients {
        bail!("--senders must be from 1 to --clients");
    }
    let dir = scratch("chat")?;
    let result = measure(&args, &dir);
    let _ = fs::remove_dir_all(&dir);
    let report = result?;
    print!("{report}");
    Ok(())
}

fn measure(args: &ChatArgs, dir: &std::path::Path) -> anyhow::Result<String> {
    let mut accounts = String::new();
    for i in 0..args.clients {
        let _ = writeln!(accounts, "u{i} p{i}");
    }
    fs::write(dir.join("credentials.txt"), accounts).context("cannot write credentials.txt")?;
    let mut extra = args.server_args.clone();
    if args.no_rate_limit {
        extra.extend(["--post-burst", "1000000000", "--post-rate", "1000000000"].map(String::from));
    }
    let mut server = match args.connect {
        Some(addr) => Server::External(addr),
        None => Server::Child(ServerChild::start(
            args.server_bin.as_deref(),
            args.runtime.name(),
            dir,
            &extra,
        )?),
    };
    thread::sleep(Duration::from_millis(200));
    let rss_before = server.rss_kib();
    let load_before = load();

    let mut crowd = Crowd::new();
    eprintln!("bench chat: logging {} clients in …", args.clients);
    let started = Instant::now();
    crowd.log_in(server.addr(), args.clients, args.tls)?;
    let login_secs = started.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(500));
    let rss_after = server.rss_kib();
    let per_conn_kb = (rss_after.saturating_sub(rss_before)) as f64 * 1.024 / args.clients as f64;

    let patience = Duration::from_secs(args.patience_secs);
    let body = |sender: usize, seq: usize, t: u64| -> String {
        let mut s = format!("b {sender} {seq} {t} ");
        while s.len() < args.size {
            s.push('x');
        }
        s
    };

    // Unpaced: every sender sends all its posts at once.
    eprintln!(
        "bench chat: unpaced, {} senders × {} posts …",
        args.senders, args.posts
    );
    let base = crowd.totals();
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    for s in 0..args.senders {
        let mut lines = String::new();
        for q in 0..args.posts {
            let _ = writeln!(lines, "MSG {}", body(s, q, 0));
        }
        crowd.send(s, lines.into_bytes());
    }
    let expected = expected_deliveries(args.clients, args.senders, args.posts);
    let (unpaced_got, unpaced_time) = crowd.wait_for(base.0 + expected, patience);
    let cpu1 = server.cpu();
    let unpaced = unpaced_got - base.0;
    let rate = unpaced as f64 / unpaced_time.max(Duration::from_millis(1)).as_secs_f64();
    let cpu_per_k = (cpu1 - cpu0).as_secs_f64() * 1000.0 / (unpaced.max(1) as f64 / 1000.0);
    let _ = t0;
    // Let the replies settle.
    crowd.wait_replies(base.1 + (args.senders * args.posts) as u64, patience);

    // Paced: a post every 1/rate seconds from each sender, with its send time.
    let mut paced_line = String::from("paced: skipped\n");
    if args.paced_posts > 0 {
        eprintln!(
            "bench chat: paced, {} senders × {} posts at {}/s each …",
            args.senders, args.paced_posts, args.paced_rate
        );
        let base = crowd.totals();
        let cpu0 = server.cpu();
        crowd.recording.store(true, Ordering::SeqCst);
        let gap = Duration::from_secs_f64(1.0 / f64::from(args.paced_rate.max(1)));
        let start = Instant::now() + Duration::from_millis(100);
        for s in 0..args.senders {
            let link = Arc::clone(&crowd.clients[s].link);
            let epoch = crowd.epoch;
            let n = args.paced_posts;
            let size = args.size;
            // Spread the senders over the gap so they do not all post at the same instant.
            let first = start + gap.mul_f64(s as f64 / args.senders as f64);
            crowd
                .executor
                .spawn(async move {
                    for q in 0..n {
                        Timer::at(first + gap * q as u32).await;
                        let t = epoch.elapsed().as_nanos() as u64;
                        let mut text = format!("b {s} {q} {t} ");
                        while text.len() < size {
                            text.push('x');
                        }
                        let line = format!("MSG {text}\n");
                        if link.write(line.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
        }
        let expected = expected_deliveries(args.clients, args.senders, args.paced_posts);
        let (got, _) = crowd.wait_for(base.0 + expected, patience + gap * args.paced_posts as u32);
        let cpu = (server.cpu() - cpu0).as_secs_f64() * 1000.0;
        crowd.recording.store(false, Ordering::SeqCst);
        let mut lat = crowd.latencies();
        lat.sort_unstable();
        let q = |p: f64| -> f64 {
            if lat.is_empty() {
                return f64::NAN;
            }
            let i = ((lat.len() - 1) as f64 * p).round() as usize;
            f64::from(lat[i]) / 1000.0
        };
        paced_line = format!(
            "paced:   {:>9} deliveries of {:>9}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples); server CPU {:.3} ms per 1,000 deliveries\n",
            got - base.0,
            expected,
            q(0.5),
            q(0.99),
            q(1.0),
            lat.len(),
            cpu / ((got - base.0).max(1) as f64 / 1000.0)
        );
    }
    let cut = crowd.closed();
    let connections_line = if args.connections > 0 {
        eprintln!(
            "bench chat: connections, {} clients{} …",
            args.connections,
            if args.tls { " with TLS handshakes" } else { "" }
        );
        connection_phase(&crowd, &server, args.connections, args.tls)?
    } else {
        "connect: skipped\n".to_string()
    };
    server.kill();
    drop(crowd);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench chat: {} server{}, {} clients{}, {} senders × {} posts of {} bytes; load {} (before)",
        args.runtime.name(),
        args.server_bin
            .as_ref()
            .map_or(String::new(), |b| format!(" ({})", b.display())),
        args.clients,
        if args.tls { " over TLS" } else { " in clear" },
        args.senders,
        args.posts,
        args.size,
        load_before
    );
    let _ = writeln!(
        out,
        "login:   {} clients in {:.1} s; RSS {:.1} MiB before, {:.1} MiB after: {:.2} kB per connection",
        args.clients,
        login_secs,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_conn_kb
    );
    let _ = writeln!(
        out,
        "unpaced: {:>9} deliveries of {:>9} in {:.2} s: {:.0} deliveries/s; server CPU {:.3} ms per 1,000 deliveries",
        unpaced,
        expected,
        unpaced_time.as_secs_f64(),
        rate,
        cpu_per_k
    );
    out.push_str(&paced_line);
    out.push_str(&connections_line);
    if cut > 0 {
        let _ = writeln!(
            out,
            "note:    {cut} client connections were closed during the run"
        );
    }
    let _ = writeln!(out, "load after: {}", load());
    Ok(out)
}

fn expected_deliveries(clients: usize, senders: usize, posts: usize) -> u64 {
    // Every post reaches every client but its author.
    (senders * posts * (clients - 1)) as u64
}

impl Crowd {
    fn new() -> Self {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let ex = Arc::clone(&executor);
        let runner = thread::spawn(move || {
            smol::block_on(ex.run(async {
                let _ = stopped.recv().await;
            }))
        });
        Crowd {
            executor,
            stop: Some(stop),
            runner: Some(runner),
            clients: Vec::new(),
            epoch: Instant::now(),
            recording: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Log `n` clients in, 50 at a time; each then reads and counts for good.
    fn log_in(&mut self, addr: SocketAddr, n: usize, tls: bool) -> anyhow::Result<()> {
        for wave in (0..n).collect::<Vec<_>>().chunks(50) {
            let tasks: Vec<_> = wave
                .iter()
                .map(|&i| self.executor.spawn(log_in_one(addr, i, tls)))
                .collect();
            for t in tasks {
                let (link, rest) = smol::block_on(t)?;
                let seen = Arc::new(Seen::default());
                let i = self.clients.len();
                self.executor
                    .spawn(read_loop(
                        Arc::clone(&link),
                        Arc::clone(&seen),
                        rest,
                        (i < SAMPLED).then(|| (Arc::clone(&self.recording), self.epoch)),
                    ))
                    .detach();
                self.clients.push(Client { link, seen });
            }
        }
        Ok(())
    }

    fn send(&self, client: usize, bytes: Vec<u8>) {
        let link = Arc::clone(&self.clients[client].link);
        self.executor
            .spawn(async move {
                let _ = link.write(&bytes).await;
            })
            .detach();
    }

    /// (posts received, replies received) by everyone.
    fn totals(&self) -> (u64, u64) {
        self.clients.iter().fold((0, 0), |(p, r), c| {
            (
                p + c.seen.posts.load(Ordering::Relaxed),
                r + c.seen.replies.load(Ordering::Relaxed),
            )
        })
    }

    /// Wait until `target` posts were received in all, or `patience` passes without any
    /// progress; returns the total and the time until the last one came.
    fn wait_for(&self, target: u64, patience: Duration) -> (u64, Duration) {
        let start = Instant::now();
        let mut last = (0, start);
        loop {
            let got = self.totals().0;
            if got != last.0 {
                last = (got, Instant::now());
            }
            if got >= target || last.1.elapsed() > patience {
                return (got, last.1.duration_since(start));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn wait_replies(&self, target: u64, patience: Duration) {
        let start = Instant::now();
        while self.totals().1 < target && start.elapsed() < patience {
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn latencies(&self) -> Vec<u32> {
        let mut all = Vec::new();
        for c in &self.clients {
            let mut l = c.seen.latencies.lock().unwrap_or_else(|p| p.into_inner());
            all.append(&mut l);
        }
        all
    }

    fn closed(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.seen.closed.load(Ordering::Relaxed))
            .count()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.clients.clear();
        self.stop = None;
        if let Some(r) = self.runner.take() {
            let _ = r.join();
        }
    }
}

/// Connect (and upgrade, with `tls`) and log in as `u{i}`; returns the link and any
/// plaintext read past the welcome.
async fn log_in_one(addr: SocketAddr, i: usize, tls: bool) -> anyhow::Result<(Arc<Link>, Vec<u8>)> {
    let (link, mut buf) = Link::connect(addr, tls)
        .await
        .with_context(|| format!("client {i} cannot connect"))?;
    link.write(format!("u{i}\np{i}\n").as_bytes()).await?;
    loop {
        if let Some(end) = find_line_starting(&buf, b"230 ") {
            return Ok((Arc::new(link), buf.split_off(end)));
        }
        if buf
            .windows(4)
            .any(|w| w == b"\n43" || w == b"\n42" || w == b"\n53")
            || buf.starts_with(b"43")
            || buf.starts_with(b"53")
        {
            bail!(
                "client {i}: login refused: {}",
                String::from_utf8_lossy(&buf).lines().last().unwrap_or("")
            );
        }
        let mut chunk = [0u8; 4096];
        if !link.read_into(&mut chunk, &mut buf).await? {
            bail!("client {i}: the server closed the connection at login");
        }
    }
}

/// Open `n` connections, 50 at a time, each reading the greeting (and with `tls`
/// upgrading); the server's CPU per connection over that stretch.
fn connection_phase(crowd: &Crowd, server: &Server, n: usize, tls: bool) -> anyhow::Result<String> {
    let addr = server.addr();
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let mut done = 0usize;
    while done < n {
        let wave = (n - done).min(50);
        let tasks: Vec<_> = (0..wave)
            .map(|_| {
                crowd
                    .executor
                    .spawn(async move { Link::connect(addr, tls).await })
            })
            .collect();
        for t in tasks {
            // Dropped at once: each connection is closed as soon as it is upgraded.
            smol::block_on(t).context("a connection of the connection phase failed")?;
        }
        done += wave;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu_ms = (server.cpu() - cpu0).as_secs_f64() * 1000.0;
    Ok(format!(
        "connect: {n} connections{} in {secs:.2} s: {:.0}/s; server CPU {:.3} ms per connection\n",
        if tls {
            " with a TLS handshake each (STARTTLS, TLS 1.3, X25519)"
        } else {
            " in clear (greeting only)"
        },
        n as f64 / secs.max(1e-9),
        cpu_ms / n.max(1) as f64
    ))
}

/// Read for good, counting `* POST` lines and replies; a sampled client also records the
/// latency of each post while `recording`.
async fn read_loop(
    link: Arc<Link>,
    seen: Arc<Seen>,
    mut carry: Vec<u8>,
    sample: Option<(Arc<AtomicBool>, Instant)>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut start = 0;
        let mut pongs = Vec::new();
        while let Some(nl) = carry[start..].iter().position(|&b| b == b'\n') {
            let line = &carry[start..start + nl];
            if let Some(token) = line.strip_prefix(b"* PING ") {
                // The server's keepalive: a real client answers it by itself, so do we.
                pongs.extend_from_slice(b"PONG ");
                pongs.extend_from_slice(token);
                pongs.push(b'\n');
            } else if line.starts_with(b"* POST ") {
                seen.posts.fetch_add(1, Ordering::Relaxed);
                if let Some((recording, epoch)) = &sample
                    && recording.load(Ordering::Relaxed)
                    && let Some(sent) = sent_at(line)
                    && sent > 0
                {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let us = (now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32;
                    seen.latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(us);
                }
            } else if line.first().is_some_and(u8::is_ascii_digit) && line.get(3) == Some(&b' ') {
                seen.replies.fetch_add(1, Ordering::Relaxed);
            }
            start += nl + 1;
        }
        carry.drain(..start);
        if !pongs.is_empty() && link.write(&pongs).await.is_err() {
            seen.closed.store(true, Ordering::Relaxed);
            return;
        }
        match link.read_into(&mut chunk, &mut carry).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                seen.closed.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// The send time in a post line `* POST n@id DD Mon YYYY HH:MM:SS user no b S Q T …`.
fn sent_at(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ').skip_while(|w| *w != "b");
    words.next()?;
    words.nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_is_read_from_a_post_line() {
        let line = b"* POST 12@40 01 Dec 2026 10:00:00 u3 no b 3 7 123456789 xxxx";
        assert_eq!(sent_at(line), Some(123_456_789));
        assert_eq!(sent_at(b"* POST 1 01 Dec 2026 10:00:00 u3 no hello"), None);
    }
}
