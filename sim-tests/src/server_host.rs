//! The server run loop over `turmoil::net`, as a restartable host.
//!
//! It is the loop every huddle runtime runs (see `huddle_core::server`), written for tokio:
//! 1. wait for an input (a connection, bytes, a write done, a closed connection, a hash
//!    result) or the core's wake-up time;
//! 2. feed it to the core with the simulated `now`, then every further input already waiting
//!    while the core says its batch has room;
//! 3. drain `poll_output`: write the batch's persist records to the [`Disk`], take the fsync
//!    latency, fsync, and only then carry out the rest in order (sends, closes, pauses).
//!
//! Step 3's order is "durable before visible" with group commit: inputs that arrive while
//! one fsync is in flight are committed by the next one together. A crash during the fsync
//! loses the batch's records, but nobody was told they happened. Every rule of the loop
//! (batch sizes, fair turns, backpressure, the write timeout) is the core's, so a seed here
//! replays what production runs. Password hashes are computed inline (cheaply, with the
//! simulation's small Argon2 cost) and handed back as the next input.
//!
//! The host is a closure over a [`ServerHost`], so `sim.crash` / `sim.bounce` restart it from
//! what the disk kept. A [`Probe`] may watch the core between inputs to check invariants at
//! the moment they must hold.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::UnixMillis;
use huddle_core::server::{
    ConnId, HashDone, HashMemory, Input, Output, PlaintextLogin, Server, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use turmoil::net::{TcpListener, TcpStream};

use crate::clock;
use crate::disk::Disk;
use crate::tls::{Cert, server_tls};
use crate::trace::Trace;

/// What a full simulated disk says.
const FULL: &str = "No space left on device (simulated)";

/// The port the simulated server listens on.
pub const PORT: u16 = 4000;

/// The host name of the simulated server.
pub const SERVER: &str = "server";

/// One input as the core was given it, for a [`Probe`].
#[derive(Debug)]
pub enum InputSeen<'a> {
    /// A client connected and the core named its connection `conn`.
    Connect {
        /// The core's name for it.
        conn: ConnId,
        /// Where it came from.
        peer: SocketAddr,
    },
    /// Bytes arrived on `conn`.
    Bytes {
        /// Which connection.
        conn: ConnId,
        /// What arrived (a client that waits for each reply sends one line at a time).
        bytes: &'a [u8],
    },
    /// Some of `conn`'s output was written.
    Wrote {
        /// Which connection.
        conn: ConnId,
    },
    /// `conn` was closed by the peer or broke.
    Disconnect {
        /// Which connection.
        conn: ConnId,
    },
    /// The core's wake-up time came, a hash finished, or the batch ended (timers due and
    /// requests waiting for their turn ran).
    Timeout,
}

/// Watches the server core from inside the run loop, where invariants can be checked at the
/// instant they must hold rather than only at the end of a run.
pub trait Probe {
    /// The server (re)started from the disk; `server` has not seen any input yet.
    fn booted(&mut self, _server: &Server) {}

    /// One input was fed and its outputs drained; none of them has been carried out yet.
    fn after_input(&mut self, _server: &Server, _input: &InputSeen<'_>, _outputs: &[Output]) {}

    /// A batch's records were synced; its replies are about to be sent.
    fn after_sync(&mut self, _server: &Server, _disk: &Disk) {}
}

/// A shared probe, kept outside the host so it survives restarts.
pub type SharedProbe = Rc<RefCell<dyn Probe>>;

/// Everything the server host needs; it is cloned into the host closure at every (re)start.
#[derive(Clone)]
pub struct ServerHost {
    /// The host name (and the name in the trace).
    pub name: String,
    /// The port to listen on.
    pub port: u16,
    /// The core's settings.
    pub config: ServerConfig,
    /// The data folder, which outlives crashes.
    pub disk: Disk,
    /// Where logs go.
    pub trace: Trace,
    /// How long an fsync takes: the window in which a crash loses a batch, and in which later
    /// inputs gather for the next group commit.
    pub fsync_latency: Duration,
    /// An optional observer of the core.
    pub probe: Option<SharedProbe>,
    /// When to stop gracefully, as a runtime does on SIGTERM: `Server::shutdown`, carry out
    /// what it asks, wait for every connection to close, and end the host's software. A boot
    /// after that instant (`sim.bounce`) runs on.
    pub stop_at: Option<UnixMillis>,
    /// Record in the trace, as each connection ends, how many bytes the server wrote on it
    /// and a digest of them: with TLS on, what proves that a seed replays byte for byte.
    pub record_wire: bool,
    /// Which certificate the server presents, read at every boot: an operator who replaces
    /// it between runs (`None`: the config's, unchanged).
    pub cert: Option<Rc<Cell<Cert>>>,
}

/// The opening of every upload scenario: a simulation of `duration` whose links take bursts of
/// datagrams, and the server of [`sim_config`] installed on a fresh data folder whose accounts
/// are `credentials` (`name password` lines). The trace the server writes to comes back with
/// it.
pub fn upload_world<'a>(
    seed: u64,
    duration: Duration,
    credentials: &str,
) -> (turmoil::Sim<'a>, Trace) {
    let mut sim = crate::sim::builder(seed, duration)
        .udp_capacity(4096)
        .build();
    let trace = Trace::new();
    let disk = Disk::new(crate::disk::CrashLoss::All, seed);
    disk.preload(huddle_core::store::DataFile::Credentials, credentials);
    ServerHost::new(sim_config(seed), disk, trace.clone()).install(&mut sim);
    (sim, trace)
}

/// A server configuration for simulations: everything fixed by `seed`, cheap password hashes,
/// a fixed certificate ([`Cert::A`]). turmoil's hosts are not on loopback, so logins in clear
/// are allowed from anywhere: the simulated clients speak in clear unless a test gives them
/// TLS ([`crate::client_host::SimTls`]); [`PlaintextLogin::LoopbackOnly`] makes TLS required.
pub fn sim_config(seed: u64) -> ServerConfig {
    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    ServerConfig {
        rng_seed,
        hash_memory_kib: 64,
        tls: Some(server_tls(Cert::A)),
        plaintext_login: PlaintextLogin::Anywhere,
        ..ServerConfig::default()
    }
}

enum Incoming {
    Connect(TcpStream, SocketAddr),
    Bytes(ConnId, Bytes),
    Wrote(ConnId, usize),
    Closed(ConnId),
    Hashed(HashDone),
}

enum Cmd {
    Send(Bytes),
    Close,
    Cut,
}

/// When a connection's task may read: one chunk in flight to the core, none while paused.
#[derive(Default)]
struct Gate {
    paused: Cell<bool>,
    spent: Cell<bool>,
    changed: Notify,
}

impl Gate {
    async fn pass(&self) {
        while self.paused.get() || self.spent.get() {
            self.changed.notified().await;
        }
    }

    fn set(&self, paused: Option<bool>, taken: bool) {
        if let Some(p) = paused {
            self.paused.set(p);
        }
        if taken {
            self.spent.set(false);
        }
        self.changed.notify_one();
    }
}

struct Link {
    cmds: mpsc::UnboundedSender<Cmd>,
    gate: Rc<Gate>,
}

type Links = BTreeMap<ConnId, Link>;

impl ServerHost {
    /// A server host named [`SERVER`] on [`PORT`] with a 2 ms fsync.
    pub fn new(config: ServerConfig, disk: Disk, trace: Trace) -> Self {
        Self {
            name: SERVER.to_string(),
            port: PORT,
            config,
            disk,
            trace,
            fsync_latency: Duration::from_millis(2),
            probe: None,
            stop_at: None,
            record_wire: false,
            cert: None,
        }
    }

    /// The same host, watched by `probe`.
    pub fn with_probe(mut self, probe: SharedProbe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Register the host with `sim`; each (re)start runs [`ServerHost::run`] afresh.
    pub fn install(&self, sim: &mut turmoil::Sim<'_>) {
        let host = self.clone();
        sim.host(self.name.as_str(), move || host.clone().run());
    }

    /// Boot from the disk and serve until the host is crashed (or stopped at `stop_at`).
    pub async fn run(self) -> turmoil::Result {
        let files = self.disk.boot();
        let mut config = self.config.clone();
        if let Some(cert) = &self.cert {
            config.tls = Some(server_tls(cert.get()));
        }
        let mut server = match Server::new(config, &files, clock::now()) {
            Ok(server) => server,
            Err(refusal) => {
                self.trace
                    .record(&self.name, format!("refused to start: {refusal}"));
                return Err(refusal.into());
            }
        };
        self.trace.record(&self.name, "boot");
        if let Some(p) = &self.probe {
            p.borrow_mut().booted(&server);
        }
        let mut links = Links::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.flush(&mut server, &mut links, &tx, 0).await;

        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, self.port)).await?;
        let accepted = tx.clone();
        let acceptor = tokio::task::spawn_local(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                if accepted.send(Incoming::Connect(stream, peer)).is_err() {
                    break;
                }
            }
        });

        let mut stop_at = self.stop_at.filter(|t| clock::now() < *t);
        loop {
            if stop_at.is_some_and(|t| clock::now() >= t) {
                // The graceful stop, as on SIGTERM: the core tells everyone and closes every
                // connection; serve on until all are gone.
                stop_at = None;
                acceptor.abort();
                server.handle_input(Input::Shutdown, clock::now());
                let shown = self.show(&server, InputSeen::Timeout, 0);
                self.flush(&mut server, &mut links, &tx, shown).await;
            }
            if server.is_finished() {
                self.trace.record(&self.name, "stopped");
                return Ok(());
            }
            let wake = [server.poll_timeout(), stop_at].into_iter().flatten().min();
            let first = match wake {
                Some(t) => tokio::select! {
                    biased;
                    input = rx.recv() => input,
                    _ = clock::sleep_until(t) => None,
                },
                None => rx.recv().await,
            };
            let mut shown = 0;
            match first {
                Some(input) => shown = self.feed(&mut server, input, &mut links, &tx, shown),
                None => {
                    server.handle_input(Input::Timeout, clock::now());
                    shown = self.show(&server, InputSeen::Timeout, shown);
                }
            }
            while server.wants_input() {
                match rx.try_recv() {
                    Ok(input) => shown = self.feed(&mut server, input, &mut links, &tx, shown),
                    Err(_) => break,
                }
            }
            self.flush(&mut server, &mut links, &tx, shown).await;
        }
    }

    /// Hand one input to the core and show the probe what it queued; returns how many
    /// queued outputs the probe has seen.
    fn feed(
        &self,
        server: &mut Server,
        input: Incoming,
        links: &mut Links,
        tx: &mpsc::UnboundedSender<Incoming>,
        shown: usize,
    ) -> usize {
        let now = clock::now();
        match input {
            Incoming::Connect(stream, peer) => {
                let Some(conn) = server.handle_input(Input::Connected { peer }, now) else {
                    return shown;
                };
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                let gate = Rc::new(Gate::default());
                links.insert(
                    conn,
                    Link {
                        cmds: cmd_tx,
                        gate: Rc::clone(&gate),
                    },
                );
                let wire = self
                    .record_wire
                    .then(|| (self.trace.clone(), self.name.clone()));
                tokio::task::spawn_local(connection(conn, stream, tx.clone(), cmd_rx, gate, wire));
                self.show(server, InputSeen::Connect { conn, peer }, shown)
            }
            Incoming::Bytes(conn, bytes) => {
                if let Some(l) = links.get(&conn) {
                    l.gate.set(None, true);
                }
                server.handle_input(
                    Input::Bytes {
                        conn,
                        bytes: &bytes,
                    },
                    now,
                );
                self.show(
                    server,
                    InputSeen::Bytes {
                        conn,
                        bytes: &bytes,
                    },
                    shown,
                )
            }
            Incoming::Wrote(conn, n) => {
                server.handle_input(Input::Wrote { conn, bytes: n }, now);
                self.show(server, InputSeen::Wrote { conn }, shown)
            }
            Incoming::Closed(conn) => {
                links.remove(&conn);
                server.handle_input(Input::Closed { conn, unacked: 0 }, now);
                self.show(server, InputSeen::Disconnect { conn }, shown)
            }
            Incoming::Hashed(done) => {
                server.handle_input(Input::Hashed(done), now);
                self.show(server, InputSeen::Timeout, shown)
            }
        }
    }

    /// Show the probe the outputs queued since it last looked.
    fn show(&self, server: &Server, seen: InputSeen<'_>, shown: usize) -> usize {
        let queued: Vec<Output> = server.queued_outputs().skip(shown).cloned().collect();
        if let Some(p) = &self.probe {
            p.borrow_mut().after_input(server, &seen, &queued);
        }
        shown + queued.len()
    }

    /// Drain the core: the batch's records durable first, then everything else in order.
    /// Outputs the core produced while draining (timers due, requests waiting for their
    /// turn) are shown to the probe as a wake-up. Records the disk cannot take (it is full)
    /// are reported as the runtimes do ([`Input::StoreFailed`]), and a probe the core asks
    /// for is tried ([`Server::poll_probe`]).
    async fn flush(
        &self,
        server: &mut Server,
        links: &mut Links,
        tx: &mpsc::UnboundedSender<Incoming>,
        mut shown: usize,
    ) {
        loop {
            let mut outputs = Vec::new();
            while let Some(out) = server.poll_output() {
                outputs.push(out);
            }
            if self.flush_batch(server, links, tx, shown, outputs).await {
                shown = 0;
                continue;
            }
            if let Some(probe) = server.poll_probe(clock::now()) {
                let error = if self.disk.is_full() {
                    Some(FULL.to_string())
                } else {
                    for p in probe {
                        self.disk.write(p);
                    }
                    self.disk.fsync();
                    None
                };
                server.handle_input(Input::Probed { error }, clock::now());
                shown = 0;
                continue;
            }
            return;
        }
    }

    /// Carry out one batch; returns whether its records failed (the core was told, and has
    /// more to hand out).
    async fn flush_batch(
        &self,
        server: &mut Server,
        links: &mut Links,
        tx: &mpsc::UnboundedSender<Incoming>,
        shown: usize,
        mut outputs: Vec<Output>,
    ) -> bool {
        let rest: Vec<Output> = outputs
            .iter()
            .filter(|o| !matches!(o, Output::Persist(_)))
            .skip(shown)
            .cloned()
            .collect();
        if !rest.is_empty()
            && let Some(p) = &self.probe
        {
            p.borrow_mut()
                .after_input(server, &InputSeen::Timeout, &rest);
        }
        let wants_write = outputs.iter().any(|o| matches!(o, Output::Persist(_)));
        if wants_write && self.disk.is_full() {
            let mut dropped = Vec::new();
            outputs.retain(|o| match o {
                Output::Hash(_) | Output::Log(_) => true,
                Output::Send { conn, .. }
                | Output::Close { conn }
                | Output::Cut { conn }
                | Output::PauseReading { conn }
                | Output::ResumeReading { conn }
                | Output::CheckProgress { conn } => {
                    dropped.push(*conn);
                    false
                }
                Output::Broadcast { audience, .. } => {
                    dropped.extend(audience.iter());
                    false
                }
                Output::Persist(_) => false,
            });
            self.carry_out(outputs, links, tx);
            let files = self.disk.files();
            server.handle_input(
                Input::StoreFailed {
                    error: FULL.to_string(),
                    dropped,
                    files: Some(&files),
                },
                clock::now(),
            );
            return true;
        }
        let mut wrote = false;
        for out in &outputs {
            if let Output::Persist(p) = out {
                self.disk.write(p.clone());
                wrote = true;
            }
        }
        if wrote {
            if !self.fsync_latency.is_zero() {
                tokio::time::sleep(self.fsync_latency).await;
            }
            self.disk.fsync();
            if let Some(p) = &self.probe {
                p.borrow_mut().after_sync(server, &self.disk);
            }
        }
        self.carry_out(outputs, links, tx);
        false
    }

    /// Carry out outputs in order (persist records aside).
    fn carry_out(
        &self,
        outputs: Vec<Output>,
        links: &mut Links,
        tx: &mpsc::UnboundedSender<Incoming>,
    ) {
        let mut memory = HashMemory::new();
        for out in outputs {
            match out {
                Output::Persist(_) => {}
                Output::Send { conn, bytes } => {
                    if let Some(l) = links.get(&conn) {
                        let _ = l.cmds.send(Cmd::Send(bytes));
                    }
                }
                Output::Broadcast { audience, bytes } => {
                    for conn in audience.iter() {
                        if let Some(l) = links.get(&conn) {
                            let _ = l.cmds.send(Cmd::Send(bytes.clone()));
                        }
                    }
                }
                Output::Close { conn } => {
                    if let Some(l) = links.get(&conn) {
                        let _ = l.cmds.send(Cmd::Close);
                    }
                }
                Output::Cut { conn } => {
                    if let Some(l) = links.get(&conn) {
                        let _ = l.cmds.send(Cmd::Cut);
                    }
                }
                Output::PauseReading { conn } => {
                    if let Some(l) = links.get(&conn) {
                        l.gate.set(Some(true), false);
                    }
                }
                Output::ResumeReading { conn } => {
                    if let Some(l) = links.get(&conn) {
                        l.gate.set(Some(false), false);
                    }
                }
                Output::Hash(job) => {
                    let _ = tx.send(Incoming::Hashed(job.run(&mut memory)));
                }
                // Every write is reported as it completes: nothing is left to report.
                Output::CheckProgress { .. } => {}
                Output::Log(lines) => {
                    for line in lines.lines() {
                        self.trace.record(&self.name, line);
                    }
                }
            }
        }
    }
}

/// One connection: forward what arrives to the core loop as its gate allows, write what the
/// core sends and report each write.
async fn connection(
    conn: ConnId,
    mut stream: TcpStream,
    inputs: mpsc::UnboundedSender<Incoming>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    gate: Rc<Gate>,
    wire: Option<(Trace, String)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut written = WireDigest::default();
    loop {
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(bytes)) => {
                    if stream.write_all(&bytes).await.is_err() {
                        break;
                    }
                    written.add(&bytes);
                    let _ = inputs.send(Incoming::Wrote(conn, bytes.len()));
                }
                Some(Cmd::Close) | None => {
                    let _ = stream.shutdown().await;
                    break;
                }
                Some(Cmd::Cut) => break,
            },
            read = async {
                gate.pass().await;
                stream.read(&mut buf).await
            } => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    gate.spent.set(true);
                    if inputs.send(Incoming::Bytes(conn, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
            },
        }
    }
    if let Some((trace, name)) = wire {
        trace.record(
            &name,
            format!(
                "{conn} wrote {} bytes, digest {:016x}",
                written.len, written.hash
            ),
        );
    }
    let _ = inputs.send(Incoming::Closed(conn));
}

/// FNV-1a over every byte written on a connection: enough to tell two runs' bytes apart.
struct WireDigest {
    len: u64,
    hash: u64,
}

impl Default for WireDigest {
    fn default() -> Self {
        Self {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl WireDigest {
    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
