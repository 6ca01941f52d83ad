//! Helpers to run the real `huddle` binary: a server on 127.0.0.1 with a temporary data folder,
//! piped clients fed a script, and live clients fed line by line.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The runtimes every integration test runs against.
pub const RUNTIMES: &[&str] = &["std", "smol"];

/// How long any single wait may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn huddle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huddle"))
}

/// `huddle server` on a free loopback port with `runtime` and the data folder `dir`, not
/// started: for tests that watch the process itself (its exit, its signals, its files).
pub fn server_command(runtime: &str, dir: &Path) -> Command {
    let mut cmd = huddle();
    cmd.args([
        "server",
        "0",
        "--bind",
        "127.0.0.1",
        "--runtime",
        runtime,
        "--dir",
    ])
    .arg(dir);
    cmd
}

/// Lines a child printed, collected by a background thread.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    pub fn follow(stream: impl std::io::Read + Send + 'static) -> Self {
        let t = Transcript::default();
        let lines = Arc::clone(&t.0);
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        t
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Wait until a line after the first `from` lines contains `needle`; return that line.
    pub fn wait_for_after(&self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self
                .0
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; got:\n{}",
                self.text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_after(0, needle)
    }
}

/// A running `huddle server`.
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: Transcript,
    pub runtime: &'static str,
}

impl ServerProc {
    /// Start a server on an ephemeral port with a 1-second block time.
    pub fn start(runtime: &'static str, dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(runtime, dir, extra, |_| {})
    }

    /// [`ServerProc::start`], with the command adjusted first (limits, environment).
    pub fn start_with(
        runtime: &'static str,
        dir: &Path,
        extra: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Self {
        Self::start_at(runtime, dir, "127.0.0.1", 0, extra, tweak)
    }

    /// [`ServerProc::start_with`] on a given address and port (0: a free one).
    pub fn start_at(
        runtime: &'static str,
        dir: &Path,
        bind: &str,
        port: u16,
        extra: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Self {
        let mut cmd = huddle();
        tweak(&mut cmd);
        let port = port.to_string();
        cmd.args([
            "server",
            port.as_str(),
            "3",
            "--bind",
            bind,
            "--block-secs",
            "1",
            "--runtime",
            runtime,
            "--dir",
        ])
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start huddle server");
        let log = Transcript::follow(child.stdout.take().unwrap());
        let _err = Transcript::follow(child.stderr.take().unwrap());
        let line = log.wait_for("listening on ");
        let addr_text = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let addr = addr_text
            .trim_end_matches([',', '.', ';'])
            .parse()
            .expect("listening address");
        ServerProc {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
            runtime,
        }
    }

    /// The server process's id (to read its `/proc` entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory in KiB (`VmRSS`), 0 if it cannot be read.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Send `signal` (`libc::SIGTERM`, say) to the server process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Wait for the server process to end by itself; its exit code (-1 for a signal).
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit:\n{}",
                self.log.text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kill -9, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copy the demo accounts into a fresh data folder.
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credentials.txt"),
        "yoda jedi*knight\nluke r2d2\nleia alderaan\nhans falcon*solo\n",
    )
    .unwrap();
    dir
}

/// Run a piped client (of the server's runtime) with this script on stdin; returns (exit
/// code, stdout).
pub fn run_script(server: &ServerProc, script: &[&str]) -> (i32, String) {
    run_script_on(server, server.runtime, script)
}

/// A piped `huddle client` of `client_runtime` for `server`, saving uploads in `downloads`.
fn client_command(server: &ServerProc, client_runtime: &str, downloads: &Path) -> Command {
    client_command_on_port(server, client_runtime, downloads, 0)
}

/// Like [`client_command`], receiving uploads on UDP port `udp_port` (0: any).
fn client_command_on_port(
    server: &ServerProc,
    client_runtime: &str,
    downloads: &Path,
    udp_port: u16,
) -> Command {
    let mut cmd = huddle();
    cmd.args([
        "client",
        "127.0.0.1",
        &server.addr.port().to_string(),
        &udp_port.to_string(),
        "--runtime",
        client_runtime,
        "--dir",
    ])
    .arg(downloads)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    cmd
}

/// Run a piped client of `client_runtime` with this script on stdin; returns (exit code,
/// stdout).
pub fn run_script_on(server: &ServerProc, client_runtime: &str, script: &[&str]) -> (i32, String) {
    let downloads = tempfile::tempdir().unwrap();
    run_piped(
        client_command(server, client_runtime, downloads.path()),
        script,
    )
}

/// Like [`run_script_on`], with more arguments for the client.
pub fn run_script_with(
    server: &ServerProc,
    client_runtime: &str,
    extra: &[&str],
    script: &[&str],
) -> (i32, String) {
    let downloads = tempfile::tempdir().unwrap();
    let mut cmd = client_command(server, client_runtime, downloads.path());
    cmd.args(extra);
    run_piped(cmd, script)
}

/// Run `cmd` (a piped `huddle client`) with this script on stdin until it exits; returns
/// (exit code, stdout, then stderr after `[stderr]` if any).
pub fn run_piped(mut cmd: Command, script: &[&str]) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start huddle client");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = script.iter().map(|l| format!("{l}\n")).collect();
    // The client may exit before reading everything (a lockout): ignore a broken pipe.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = Transcript::follow(child.stdout.take().unwrap());
    let err = Transcript::follow(child.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "client did not exit; stdout:\n{}\nstderr:\n{}",
                out.text(),
                err.text()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    // Let the reader threads catch the last lines.
    thread::sleep(Duration::from_millis(50));
    let mut text = out.text();
    let e = err.text();
    if !e.is_empty() {
        text.push_str("\n[stderr] ");
        text.push_str(&e);
    }
    (status.code().unwrap_or(-1), text)
}

/// A piped client kept running and fed one line at a time.
pub struct LiveClient {
    child: Child,
    stdin: Option<ChildStdin>,
    pub out: Transcript,
    pub downloads: tempfile::TempDir,
}

impl LiveClient {
    /// Connect with a client of the server's runtime and log in as `user`.
    pub fn login(server: &ServerProc, user: &str, password: &str) -> Self {
        Self::login_on(server, server.runtime, user, password)
    }

    /// Connect with a client of `client_runtime` and log in as `user`.
    pub fn login_on(server: &ServerProc, client_runtime: &str, user: &str, password: &str) -> Self {
        Self::login_in(
            server,
            client_runtime,
            user,
            password,
            tempfile::tempdir().unwrap(),
        )
    }

    /// Like [`LiveClient::login_on`], saving downloads in `downloads`.
    pub fn login_in(
        server: &ServerProc,
        client_runtime: &str,
        user: &str,
        password: &str,
        downloads: tempfile::TempDir,
    ) -> Self {
        Self::login_with(server, client_runtime, user, password, downloads, &[])
    }

    /// Like [`LiveClient::login_in`], with extra `huddle client` options.
    pub fn login_with(
        server: &ServerProc,
        client_runtime: &str,
        user: &str,
        password: &str,
        downloads: tempfile::TempDir,
        extra: &[&str],
    ) -> Self {
        Self::login_on_port(server, client_runtime, user, password, downloads, 0, extra)
    }

    /// Like [`LiveClient::login_with`], saving downloads in `dir`, a folder the test owns
    /// (so that it outlives this client: a later client can find what this one kept). Its
    /// `downloads` is then an unused placeholder.
    pub fn login_in_folder(
        server: &ServerProc,
        client_runtime: &str,
        user: &str,
        password: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Self {
        Self::spawn(
            client_command_on_port(server, client_runtime, dir, 0),
            user,
            password,
            tempfile::tempdir().unwrap(),
            extra,
        )
    }

    /// Like [`LiveClient::login_with`], receiving uploads on UDP port `udp_port`.
    pub fn login_on_port(
        server: &ServerProc,
        client_runtime: &str,
        user: &str,
        password: &str,
        downloads: tempfile::TempDir,
        udp_port: u16,
        extra: &[&str],
    ) -> Self {
        let cmd = client_command_on_port(server, client_runtime, downloads.path(), udp_port);
        Self::spawn(cmd, user, password, downloads, extra)
    }

    fn spawn(
        mut cmd: Command,
        user: &str,
        password: &str,
        downloads: tempfile::TempDir,
        extra: &[&str],
    ) -> Self {
        let mut child = cmd
            .args(extra)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start huddle client");
        let stdin = child.stdin.take();
        let out = Transcript::follow(child.stdout.take().unwrap());
        let mut c = LiveClient {
            child,
            stdin,
            out,
            downloads,
        };
        c.send(user);
        c.send(password);
        c.out.wait_for(&format!("Welcome to huddle, {user}!"));
        c
    }

    /// The client's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Send a command and wait for a line containing `expect` printed after it.
    pub fn command(&mut self, line: &str, expect: &str) -> String {
        let from = self.out.len();
        self.send(line);
        self.out.wait_for_after(from, expect)
    }

    /// Send `signal` (`libc::SIGSTOP`, say) to the client process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "client did not exit:\n{}",
                self.out.text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The timestamp in a reply like `Message #3 posted at 21 Nov 2026 22:30:01`.
pub fn timestamp_in(line: &str) -> String {
    let at = line.rfind(" at ").expect("a timestamp");
    line[at + 4..].trim().to_string()
}
