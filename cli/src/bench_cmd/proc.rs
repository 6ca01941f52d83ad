//! A huddle server as a child process for the benchmarks: started from this binary or
//! another build (to compare before and after), its address, CPU time and memory.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where the data folders go: a RAM-backed `/dev/shm` when there is one, so that fsync costs
/// nothing and the figures measure the server, not the disk.
pub fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("huddle-bench-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A running server.
pub struct ServerChild {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerChild {
    /// Start `bin` (this binary if `None`) as `server 0 3 --bind 127.0.0.1 --runtime …
    /// --dir … extra…`, and wait for its listening line. Its console is read and dropped.
    pub fn start(
        bin: Option<&Path>,
        runtime: &str,
        dir: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let exe = match bin {
            Some(b) => b.to_path_buf(),
            None => std::env::current_exe().context("cannot find the huddle binary")?,
        };
        let mut child = Command::new(&exe)
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
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().context("no server output")?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                let _ = child.kill();
                bail!("the server exited before listening");
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("");
                break addr
                    .trim_end_matches([',', '.', ';'])
                    .parse()
                    .with_context(|| format!("unexpected listening line: {line}"))?;
            }
        };
        // The server narrates every post; keep reading so it never blocks on a full pipe.
        thread::spawn(move || {
            let mut sink = Vec::new();
            while lines.read_until(b'\n', &mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Ok(Self { child, addr })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far, user and system together.
    pub fn cpu(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) are space-separated; utime and
        // stime are the 14th and 15th fields, the 12th and 13th after the name.
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // SAFETY: sysconf reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let total = ticks(11) + ticks(12);
        Duration::from_millis(total * 1000 / hz)
    }

    /// Stop it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Set the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    huddle_runtime_std::limits::raise_nofile().unwrap_or(0)
}

/// The machine's load average, as `uptime` prints it (for the figures' context).
pub fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
