//! The server run loop over `turmoil::net`, as a restartable host.
//!
//! It is the loop every huddle runtime runs (see `huddle_core::server`), written for tokio:
//! 1. wait for an input (a connection, bytes, a closed connection) or the core's wake-up time;
//! 2. feed it to the core with the simulated `now`, then drain `poll_output` completely;
//! 3. feed every further input that is already waiting the same way (the batch);
//! 4. write the batch's persist records to the [`Disk`], take the fsync latency, fsync;
//! 5. only then send the batch's replies and closes, in order.
//!
//! Step 4 before step 5 is "durable before visible" with group commit: inputs that arrive
//! while one fsync is in flight are committed by the next one together. A crash during the
//! fsync loses the batch's records, but nobody was told they happened.
//!
//! The host is a closure over a [`ServerHost`], so `sim.crash` / `sim.bounce` restart it from
//! what the disk kept. A [`Probe`] may watch the core between inputs to check invariants at
//! the moment they must hold.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, Output, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use turmoil::net::{TcpListener, TcpStream};

use crate::clock;
use crate::disk::Disk;
use crate::trace::Trace;

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
    /// `conn` was closed by the peer or broke.
    Disconnect {
        /// Which connection.
        conn: ConnId,
    },
    /// The core's wake-up time came.
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
}

/// A server configuration for simulations: everything fixed by `seed`, cheap password hashes.
pub fn sim_config(seed: u64) -> ServerConfig {
    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    ServerConfig {
        rng_seed,
        hash_memory_kib: 64,
        ..ServerConfig::default()
    }
}

enum Input {
    Connect(TcpStream, SocketAddr),
    Bytes(ConnId, Bytes),
    Closed(ConnId),
}

enum Cmd {
    Send(Bytes),
    Close,
}

type Writers = BTreeMap<ConnId, mpsc::UnboundedSender<Cmd>>;

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

    /// Boot from the disk and serve until the host is crashed.
    pub async fn run(self) -> turmoil::Result {
        let files = self.disk.boot();
        let mut server = match Server::new(self.config.clone(), &files, clock::now()) {
            Ok(server) => server,
            Err(damage) => {
                self.trace
                    .record(&self.name, "refused to start: damaged data files");
                return Err(damage.into());
            }
        };
        self.trace.record(&self.name, "boot");
        if let Some(p) = &self.probe {
            p.borrow_mut().booted(&server);
        }
        let mut writers = Writers::new();
        let mut batch = Vec::new();
        self.drain(&mut server, InputSeen::Timeout, &mut batch);
        self.carry_out(&server, batch, &writers).await;

        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, self.port)).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let accepted = tx.clone();
        tokio::task::spawn_local(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                if accepted.send(Input::Connect(stream, peer)).is_err() {
                    break;
                }
            }
        });

        let stop_at = self.stop_at.filter(|t| clock::now() < *t);
        loop {
            if stop_at.is_some_and(|t| clock::now() >= t) {
                return self.stop(server, writers, rx, tx).await;
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
            let mut batch = Vec::new();
            match first {
                Some(input) => self.feed(&mut server, input, &mut writers, &tx, &mut batch),
                None => {
                    server.handle_timeout(clock::now());
                    self.drain(&mut server, InputSeen::Timeout, &mut batch);
                }
            }
            while let Ok(input) = rx.try_recv() {
                self.feed(&mut server, input, &mut writers, &tx, &mut batch);
            }
            self.carry_out(&server, batch, &writers).await;
        }
    }

    /// The graceful stop: tell everyone, let every connection close, then end.
    async fn stop(
        &self,
        mut server: Server,
        mut writers: Writers,
        mut rx: mpsc::UnboundedReceiver<Input>,
        tx: mpsc::UnboundedSender<Input>,
    ) -> turmoil::Result {
        server.shutdown(clock::now());
        let mut batch = Vec::new();
        self.drain(&mut server, InputSeen::Timeout, &mut batch);
        self.carry_out(&server, batch, &writers).await;
        while !writers.is_empty() {
            let Some(input) = rx.recv().await else { break };
            let mut batch = Vec::new();
            match input {
                // Nobody new gets in while stopping.
                Input::Connect(stream, _) => drop(stream),
                other => self.feed(&mut server, other, &mut writers, &tx, &mut batch),
            }
            self.carry_out(&server, batch, &writers).await;
        }
        self.trace.record(&self.name, "stopped");
        Ok(())
    }

    fn feed(
        &self,
        server: &mut Server,
        input: Input,
        writers: &mut Writers,
        tx: &mpsc::UnboundedSender<Input>,
        batch: &mut Vec<Output>,
    ) {
        let now = clock::now();
        match input {
            Input::Connect(stream, peer) => {
                let conn = server.handle_connect(peer, now);
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                writers.insert(conn, cmd_tx);
                tokio::task::spawn_local(connection(conn, stream, tx.clone(), cmd_rx));
                self.drain(server, InputSeen::Connect { conn, peer }, batch);
            }
            Input::Bytes(conn, bytes) => {
                server.handle_bytes(conn, &bytes, now);
                self.drain(
                    server,
                    InputSeen::Bytes {
                        conn,
                        bytes: &bytes,
                    },
                    batch,
                );
            }
            Input::Closed(conn) => {
                writers.remove(&conn);
                server.handle_disconnect(conn, now);
                self.drain(server, InputSeen::Disconnect { conn }, batch);
            }
        }
    }

    /// After one input: take every output the core has, and show them to the probe.
    fn drain(&self, server: &mut Server, seen: InputSeen<'_>, batch: &mut Vec<Output>) {
        let start = batch.len();
        while let Some(out) = server.poll_output() {
            batch.push(out);
        }
        if let Some(p) = &self.probe {
            p.borrow_mut().after_input(server, &seen, &batch[start..]);
        }
    }

    /// Make the batch's records durable, then send its replies and closes in order.
    async fn carry_out(&self, server: &Server, batch: Vec<Output>, writers: &Writers) {
        let mut wrote = false;
        for out in &batch {
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
        for out in batch {
            match out {
                Output::Persist(_) => {}
                Output::Send { conn, bytes } => {
                    if let Some(w) = writers.get(&conn) {
                        let _ = w.send(Cmd::Send(bytes));
                    }
                }
                Output::Close { conn } => {
                    if let Some(w) = writers.get(&conn) {
                        let _ = w.send(Cmd::Close);
                    }
                }
                Output::Log(line) => self.trace.record(&self.name, line),
            }
        }
    }
}

/// One connection: forward what arrives to the core loop, write what the core sends.
async fn connection(
    conn: ConnId,
    mut stream: TcpStream,
    inputs: mpsc::UnboundedSender<Input>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(bytes)) => {
                    if stream.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Close) | None => {
                    let _ = stream.shutdown().await;
                    break;
                }
            },
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if inputs.send(Input::Bytes(conn, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
            },
        }
    }
    let _ = inputs.send(Input::Closed(conn));
}
