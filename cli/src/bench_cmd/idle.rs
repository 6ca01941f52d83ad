//! `huddle bench idle [--clients N] [--runtime std|smol|both] [--msgs M]`: how much memory a
//! server needs per logged-in idle client, and whether a fresh client still gets prompt
//! answers while they are all connected.
//!
//! For each server runtime, the benchmark
//! 1. writes a data folder (in `/dev/shm` if there is one: fsync is not what is measured)
//!    whose `credentials.txt` holds N accounts with plain passwords (sign-up would hash each
//!    with argon2 and measure that instead);
//! 2. starts `huddle server --runtime …` as a child process, so that its resident memory
//!    (`VmRSS` in `/proc/<pid>/status`) is the server's alone;
//! 3. times M `MSG` round trips of a probe client, then reads the server's memory;
//! 4. connects and logs in N clients over loopback, in waves, from one thread of this
//!    process; they read and discard whatever the server pushes (everyone's "is now online")
//!    and otherwise stay idle;
//! 5. waits until no byte has arrived for a second, reads the server's memory again: the
//!    difference divided by N is the cost of one idle client;
//! 6. times a fresh client's login and M `MSG` round trips (each post is pushed to all N);
//! 7. kills the server and closes the clients.
//!
//! It raises this process's soft `RLIMIT_NOFILE` to the hard limit first (the server child
//! inherits it): the default soft limit is often 1024, far below 10,000 sockets. Tests never
//! need that, so only the benchmark does it.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use smol::io::{AsyncBufReadExt, AsyncWriteExt};
use smol::{Async, Executor, Task};

/// Options of `huddle bench idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Idle clients to log in.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Which server runtime to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    runtime: Which,
    /// MSG round trips timed, with no idle client and with all of them connected.
    #[arg(long, default_value_t = 20)]
    msgs: usize,
    /// Clients connecting at a time; each wave logs in before the next starts.
    /// Every login tells everyone online, and a wave's notices are queued together: larger
    /// waves log in faster, smaller ones keep the server's peak (and so its RSS) lower.
    #[arg(long, default_value_t = 10)]
    wave: usize,
}

/// The server runtimes to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// Threads and std::net.
    Std,
    /// smol and async-io.
    Smol,
    /// Both, one after the other, in one table.
    Both,
}

/// Longest any single step may take before the benchmark gives up on it.
const PATIENCE: Duration = Duration::from_secs(300);

/// File descriptors besides the client sockets (listener, data files, stdio, the probe).
const SPARE_FDS: u64 = 64;

/// Run the benchmark and print its table.
pub fn run(args: IdleArgs) -> anyhow::Result<()> {
    let limit = raise_nofile().context("cannot raise the open-file limit")?;
    let needed = args.clients as u64 + SPARE_FDS;
    if limit < needed {
        bail!(
            "{} clients need about {needed} open files per process, but the hard limit is \
             {limit}; raise it (ulimit -Hn) or ask for fewer --clients",
            args.clients
        );
    }
    let runtimes: &[&str] = match args.runtime {
        Which::Std => &["std"],
        Which::Smol => &["smol"],
        // smol first: it is quick, and its row is printed even if std cannot finish.
        Which::Both => &["smol", "std"],
    };
    // Each row is printed as soon as it is measured: a long run that is cut short still
    // leaves its figures.
    print!("{}", header(&args));
    for &runtime in runtimes {
        eprintln!("bench idle: {runtime} server, {} clients …", args.clients);
        let row = measure(runtime, &args)?;
        print!("{}", format_row(&row));
        let _ = io::stdout().flush();
    }
    print!("{}", FOOTER);
    Ok(())
}

/// Set the soft open-file limit to the hard one; returns the limit now in force.
fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// One runtime's figures.
struct Row {
    runtime: &'static str,
    wanted: usize,
    logged_in: usize,
    /// Why logging in stopped short, if it did.
    failure: Option<String>,
    before: ProcStatus,
    after: ProcStatus,
    login_all: Duration,
    alone: Probe,
    /// The fresh client among the idle ones, or why it could not get in.
    crowded: Result<Probe, String>,
    /// The server's first complaint about its resources, if any (a thread it could not
    /// start, a connection it could not accept).
    complaint: Option<String>,
}

/// Where the data folders go: a RAM-backed `/dev/shm` when there is one, so that fsync costs
/// nothing and the logins measure the server, not the disk (the data is thrown away anyway).
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn measure(runtime: &'static str, args: &IdleArgs) -> anyhow::Result<Row> {
    let dir = scratch().join(format!(
        "huddle-bench-idle-{}-{runtime}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = measure_in(runtime, args, &dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn measure_in(runtime: &'static str, args: &IdleArgs, dir: &Path) -> anyhow::Result<Row> {
    let mut accounts = String::from("probe probe\n");
    for i in 0..args.clients {
        let _ = writeln!(accounts, "u{i} p{i}");
    }
    fs::write(dir.join("credentials.txt"), accounts).context("cannot write credentials.txt")?;

    let mut server = ServerChild::start(runtime, dir)?;
    let alone = probe(server.addr, args.msgs).context("the probe client failed")?;
    // Let the probe's logout settle before the first reading.
    thread::sleep(Duration::from_millis(300));
    let before = ProcStatus::read(server.pid())?;

    let mut idle = IdleClients::new()?;
    let started = Instant::now();
    let (logged_in, failure) = idle.log_in(server.addr, args.clients, args.wave.max(1));
    let login_all = started.elapsed();
    eprintln!(
        "bench idle: {runtime}: {logged_in} logged in after {:.1} s; waiting for quiet …",
        login_all.as_secs_f64()
    );
    idle.wait_quiet();
    let after = ProcStatus::read(server.pid())?;
    let crowded = probe(server.addr, args.msgs).map_err(|e| format!("{e:#}"));
    // Kill the server before closing the clients: 10,000 logouts would only cost time.
    server.kill();
    drop(idle);
    Ok(Row {
        runtime,
        wanted: args.clients,
        logged_in,
        failure,
        before,
        after,
        login_all,
        alone,
        crowded,
        complaint: server.complaint(),
    })
}

/// `huddle server` as a child process of this very binary.
struct ServerChild {
    child: Child,
    addr: SocketAddr,
    complaint: Arc<Mutex<Option<String>>>,
}

impl ServerChild {
    fn start(runtime: &str, dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the huddle binary")?;
        let mut child = Command::new(exe)
            .args([
                "server",
                "0",
                "3",
                "--bind",
                "127.0.0.1",
                "--runtime",
                runtime,
            ])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("no server output")?;
        let mut server = ServerChild {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            complaint: Arc::default(),
        };
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                bail!("the {runtime} server exited before listening");
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("");
                server.addr = addr
                    .parse()
                    .with_context(|| format!("unexpected listening line: {line}"))?;
                break;
            }
        }
        // The server narrates every login; keep reading so it never blocks on a full pipe,
        // and keep its first complaint about resources.
        let complaint = Arc::clone(&server.complaint);
        thread::spawn(move || {
            for line in lines.lines() {
                let Ok(line) = line else { return };
                if line.contains(": cannot ") {
                    let mut first = complaint.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert(line);
                }
            }
        });
        Ok(server)
    }

    fn complaint(&self) -> Option<String> {
        self.complaint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `/proc/<pid>/status` says about the server.
#[derive(Debug, Clone, Copy)]
struct ProcStatus {
    rss_kib: u64,
    threads: u64,
}

impl ProcStatus {
    fn read(pid: u32) -> anyhow::Result<Self> {
        let path = PathBuf::from(format!("/proc/{pid}/status"));
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no {name} in {}", path.display()))
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
        })
    }
}

/// A probe client's timings.
struct Probe {
    login: Duration,
    msgs: Vec<Duration>,
}

impl Probe {
    /// The `q`-quantile of the MSG round trips (0.5: median, 1.0: slowest).
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.msgs.clone();
        sorted.sort_unstable();
        let last = sorted.len().saturating_sub(1);
        let at = ((last as f64) * q).round() as usize;
        sorted.get(at).copied().unwrap_or_default()
    }
}

/// Log in as `probe`, time `msgs` posts one after the other (each after a short pause, so
/// each meets a server at rest), log out.
fn probe(addr: SocketAddr, msgs: usize) -> anyhow::Result<Probe> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    expect(&mut reader, "331 ")?;
    writer.write_all(b"probe\n")?;
    expect(&mut reader, "332 ")?;
    writer.write_all(b"probe\n")?;
    expect(&mut reader, "230 ")?;
    let login = started.elapsed();
    let mut times = Vec::with_capacity(msgs);
    for k in 0..msgs {
        thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        writer.write_all(format!("MSG bench post {k}\n").as_bytes())?;
        expect(&mut reader, "250 ")?;
        times.push(sent.elapsed());
    }
    writer.write_all(b"OUT\n")?;
    expect(&mut reader, "221 ")?;
    Ok(Probe { login, msgs: times })
}

/// Read to the last line of the next reply (skipping pushed `* ` events); it must start with
/// `code`.
fn expect(reader: &mut impl BufRead, code: &str) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection while {code}… was expected");
        }
        let is_last = line.as_bytes().get(3) == Some(&b' ') && !line.starts_with("* ");
        if is_last {
            if line.starts_with(code) {
                return Ok(());
            }
            bail!("expected {code}…, got {}", line.trim_end());
        }
    }
}

/// N idle clients on one executor thread of this process.
struct IdleClients {
    executor: Arc<Executor<'static>>,
    tasks: Vec<Task<()>>,
    /// Bytes every client has received, to see when the server has gone quiet.
    received: Arc<AtomicU64>,
    /// Dropping this stops the executor thread.
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl IdleClients {
    fn new() -> anyhow::Result<Self> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let thread = {
            let executor = Arc::clone(&executor);
            thread::Builder::new()
                .name("bench-clients".into())
                .spawn(move || {
                    smol::block_on(executor.run(async {
                        let _ = stopped.recv().await;
                    }))
                })?
        };
        Ok(Self {
            executor,
            tasks: Vec::new(),
            received: Arc::new(AtomicU64::new(0)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Log in `u0`…`u{n-1}` in waves; returns how many got in, and why the rest did not.
    fn log_in(&mut self, addr: SocketAddr, n: usize, wave_size: usize) -> (usize, Option<String>) {
        let mut logged_in = 0;
        let mut next = 0;
        while next < n {
            let wave = wave_size.min(n - next);
            let (tx, rx) = smol::channel::unbounded::<Result<(), String>>();
            for i in next..next + wave {
                let task = idle_client(addr, i, tx.clone(), Arc::clone(&self.received));
                self.tasks.push(self.executor.spawn(task));
            }
            next += wave;
            let mut failure = None;
            let deadline = Instant::now() + PATIENCE;
            for _ in 0..wave {
                let outcome = smol::block_on(smol::future::or(
                    async { rx.recv().await.unwrap_or(Err("no answer".into())) },
                    async {
                        smol::Timer::at(deadline).await;
                        Err(format!("no login within {} s", PATIENCE.as_secs()))
                    },
                ));
                match outcome {
                    Ok(()) => logged_in += 1,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if failure.is_some() {
                return (logged_in, failure);
            }
        }
        (logged_in, None)
    }

    /// Wait until no client has received a byte for a second (the server has delivered
    /// every "is now online"), or give up after [`PATIENCE`].
    fn wait_quiet(&self) {
        let started = Instant::now();
        let mut last = self.received.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        while started.elapsed() < PATIENCE {
            thread::sleep(Duration::from_millis(100));
            let now = self.received.load(Ordering::Relaxed);
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_secs(1) {
                return;
            }
        }
    }
}

impl Drop for IdleClients {
    fn drop(&mut self) {
        self.tasks.clear();
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect, log in as `u{i}`, report, then read and discard until the server goes away.
async fn idle_client(
    addr: SocketAddr,
    i: usize,
    ready: smol::channel::Sender<Result<(), String>>,
    received: Arc<AtomicU64>,
) {
    let stream = match Async::<TcpStream>::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("u{i}: cannot connect: {e}"))).await;
            return;
        }
    };
    let mut reader = smol::io::BufReader::new(&stream);
    let login = async {
        (&stream)
            .write_all(format!("u{i}\np{i}\n").as_bytes())
            .await?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).await?;
            received.fetch_add(n as u64, Ordering::Relaxed);
            if n == 0 {
                return Err(io::Error::other("closed before the login completed"));
            }
            let is_last = line.as_bytes().get(3) == Some(&b' ') && !line.starts_with("* ");
            if is_last && line.starts_with("230 ") {
                return Ok(());
            }
            if is_last && !line.starts_with("33") {
                return Err(io::Error::other(line.trim_end().to_string()));
            }
        }
    };
    let outcome = login.await.map_err(|e| format!("u{i}: {e}"));
    let ok = outcome.is_ok();
    let _ = ready.send(outcome).await;
    if !ok {
        return;
    }
    // Idle, as a real client is: it answers the server's keepalive pings, nothing else.
    let mut line = String::new();
    while let Ok(n) = reader.read_line(&mut line).await {
        if n == 0 {
            return;
        }
        received.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(token) = line.trim_end().strip_prefix("* PING ")
            && (&stream)
                .write_all(format!("PONG {token}\n").as_bytes())
                .await
                .is_err()
        {
            return;
        }
        line.clear();
    }
}

/// What the columns mean.
const FOOTER: &str = "per client = (RSS after - RSS before) / logged in, with 1 kB = 1000 bytes; \
                      MSG alone = median round trip with no idle client\n";

fn header(args: &IdleArgs) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "huddle bench idle: {} idle logged-in clients over 127.0.0.1 (waves of {}); {} MSG round \
         trips of a probe client alone and then among them",
        args.clients, args.wave, args.msgs
    );
    let _ = writeln!(
        out,
        "{:<8} {:>12} {:>11} {:>11} {:>12} {:>8} {:>10} {:>11} {:>11} {:>11} {:>11}",
        "runtime",
        "logged in",
        "RSS before",
        "RSS after",
        "per client",
        "threads",
        "login all",
        "MSG alone",
        "fresh login",
        "MSG median",
        "MSG max"
    );
    out
}

fn format_row(r: &Row) -> String {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let grown = r.after.rss_kib.saturating_sub(r.before.rss_kib) as f64 * 1024.0;
    let per = if r.logged_in == 0 {
        "-".to_string()
    } else {
        format!("{:.2} kB", grown / r.logged_in as f64 / 1000.0)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>12} {:>11} {:>11} {:>12} {:>8} {:>10} {:>11} {:>11} {:>11} {:>11}",
        r.runtime,
        format!("{}/{}", r.logged_in, r.wanted),
        format!("{:.1} MiB", r.before.rss_kib as f64 / 1024.0),
        format!("{:.1} MiB", r.after.rss_kib as f64 / 1024.0),
        per,
        r.after.threads,
        format!("{:.1} s", r.login_all.as_secs_f64()),
        ms(r.alone.quantile(0.5)),
        r.crowded.as_ref().map_or("-".into(), |p| ms(p.login)),
        r.crowded
            .as_ref()
            .map_or("-".into(), |p| ms(p.quantile(0.5))),
        r.crowded
            .as_ref()
            .map_or("-".into(), |p| ms(p.quantile(1.0))),
    );
    if let Some(why) = &r.failure {
        let _ = writeln!(out, "{}: logging in stopped early: {why}", r.runtime);
    }
    if let Err(why) = &r.crowded {
        let _ = writeln!(out, "{}: the fresh client failed: {why}", r.runtime);
    }
    if let Some(line) = &r.complaint {
        let _ = writeln!(out, "{}: the server said: {line}", r.runtime);
    }
    out
}
