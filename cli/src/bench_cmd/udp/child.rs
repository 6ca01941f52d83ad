//! The processes a run of `huddle bench udp` starts: `huddle server` and two `huddle client`s
//! of this very binary, fed and watched through pipes as a script would, and what
//! `/proc/<pid>` says about them.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long any one step may take before the run is abandoned.
const PATIENCE: Duration = Duration::from_secs(300);

/// A child process whose output lines arrive on a channel.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: String) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let stdout = child.stdout.take().context("no output pipe")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            what,
        })
    }

    /// Send one line to its standard input.
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("input closed")?;
        writeln!(stdin, "{line}").with_context(|| format!("cannot write to {}", self.what))?;
        stdin.flush()?;
        Ok(())
    }

    /// Wait for an output line containing `needle`; fail on a line containing any of
    /// `failures` first.
    pub fn wait_for(&mut self, needle: &str, failures: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if line.contains(needle) {
                        return Ok(line);
                    }
                    if failures.iter().any(|f| line.contains(f)) {
                        bail!("{}: {line}", self.what);
                    }
                    self.seen.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} did not say {needle:?} in time", self.what)
                }
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "{} ended before saying {needle:?}; it said:\n{}",
                    self.what,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Close its input and wait (a while) for it to exit.
    pub fn finish(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `huddle server` on an ephemeral loopback port, with its data folder in `dir`.
pub fn server(runtime: &str, dir: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let exe = std::env::current_exe().context("cannot find the huddle binary")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "server",
        "0",
        "3",
        "--bind",
        "127.0.0.1",
        "--runtime",
        runtime,
        "--dir",
    ])
    .arg(dir);
    let mut p = Proc::spawn(cmd, format!("the {runtime} server"))?;
    let line = p.wait_for("listening on ", &[])?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches([',', '.', ';']))
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected listening line: {line}"))?;
    // The server narrates every request; keep reading so it never blocks on a full pipe.
    let lines = std::mem::replace(&mut p.lines, mpsc::channel().1);
    thread::spawn(move || while lines.recv().is_ok() {});
    Ok((p, addr))
}

/// How a benchmark client runs.
pub struct ClientSetup<'a> {
    pub runtime: &'a str,
    pub server: SocketAddr,
    pub downloads: &'a Path,
    pub datagram_size: usize,
    pub loss_percent: f64,
    pub seed: u64,
    /// Both clients in the benchmark-only clear mode (to measure what encryption costs).
    pub clear: bool,
}

/// A piped `huddle client`, logged in as `user`.
pub fn client(setup: &ClientSetup<'_>, user: &str, password: &str) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe().context("cannot find the huddle binary")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "client",
        &setup.server.ip().to_string(),
        &setup.server.port().to_string(),
        "0",
        "--runtime",
        setup.runtime,
        "--datagram-size",
        &setup.datagram_size.to_string(),
        "--transfer-stats",
        "--emulate-loss",
        &setup.loss_percent.to_string(),
        "--emulate-seed",
        &setup.seed.to_string(),
        "--dir",
    ])
    .arg(setup.downloads);
    if setup.clear {
        cmd.arg("--bench-clear-transfers");
    }
    let mut p = Proc::spawn(cmd, format!("{user}'s client"))?;
    p.send(user)?;
    p.send(password)?;
    p.wait_for(
        &format!("Welcome to huddle, {user}!"),
        &["Invalid", "locked"],
    )?;
    Ok(p)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            return t as f64;
        }
    }
    100.0
}

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`: peak resident memory).
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
