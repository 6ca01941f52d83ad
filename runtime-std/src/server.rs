//! The std driver of the server core: a TCP listener, a thread per connection for reading and
//! one for writing, and **one** thread that owns the [`Server`](huddle_core::server::Server)
//! core through the shared [`Driver`] (see [`crate::driver`] for the loop and group commit).
//!
//! # Threads
//! - the acceptor hands each new socket to the core thread;
//! - a reader per connection reads when its [`Gate`](crate::outbox::Gate) lets it (one chunk
//!   in flight, nothing while the core has paused it) and turns bytes into inputs;
//! - a writer per connection drains that connection's [`outbox`](crate::outbox), so a client
//!   that stops reading never blocks the core thread or anyone else, and reports each write;
//! - the hash workers ([`crate::hasher`]) check and create password hashes.
//!
//! This module only moves bytes; every decision and every limit is the core's.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, ServerConfig};

use crate::clock;
use crate::console::{Console, LogSink};
use crate::datadir::DataDirError;
use crate::driver::{self, Driver, Incoming, Plumbing, Transport};
use crate::hasher::Deliver;
use crate::limits::Reserve;
use crate::outbox::{Drain, Gate, unacked, write_lines};

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub bind: SocketAddr,
    /// The data folder (created if missing).
    pub dir: PathBuf,
    /// Everything the core decides with, every limit included.
    pub config: ServerConfig,
    /// At shutdown, how long clients get to receive their goodbye before their sockets are cut.
    pub shutdown_grace: Duration,
    /// Where log lines go (standard output by default).
    pub log: LogSink,
    /// Where the server's TLS certificate comes from (the data folder's by default).
    pub tls: TlsSource,
}

/// Where the server's certificate and key come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsSource {
    /// The self-signed pair in the data folder (`tls-cert.pem`, `tls-key.pem`), created at
    /// first start and reused after, so clients that pinned it keep trusting the server.
    #[default]
    DataFolder,
    /// Given files (`--tls-cert`, `--tls-key`): a CA-signed certificate, typically.
    Files {
        /// The certificate chain (PEM, leaf first).
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
    /// No TLS: the greeting offers no `STARTTLS`, and logins come only from the addresses
    /// the core allows in clear (for tests of such servers).
    Off,
}

impl ServerOptions {
    /// Options with a 2 s shutdown grace period and the log on standard output.
    pub fn new(bind: SocketAddr, dir: impl Into<PathBuf>, config: ServerConfig) -> Self {
        Self {
            bind,
            dir: dir.into(),
            config,
            shutdown_grace: Duration::from_secs(2),
            log: LogSink::stdout(),
            tls: TlsSource::default(),
        }
    }
}

/// Why the server could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting the server cannot work with (checked by the core before anything starts).
    #[error("invalid setting: {0}")]
    Config(#[from] huddle_core::server::ConfigError),
    /// The data folder could not be read or written. When this stops a running server, the
    /// replies of the failed batch were not sent: nothing unsaved was acknowledged.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The TLS certificate or key could not be read, created or used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls_files::TlsFilesError),
    /// Listening failed: the port is taken, or the address is not this machine's.
    #[error("cannot listen on {addr}: {}", crate::hints::listen(error))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// The operating system refused to start a thread (too many threads or too little memory).
    /// (The smol runtime starts two: the core's and the I/O executor's.)
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The core thread panicked: a bug in huddle; the console has the panic message.
    #[error("the server thread crashed (a bug in huddle; see the message above)")]
    Panicked,
}

/// A running server (of either runtime). Dropping it stops the server as
/// [`ServerHandle::shutdown`] does.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Stopper,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// A handle on a server whose core runs on `thread`; `stop` asks that thread to shut down
    /// (it must not wait for it). For runtimes: the smol runtime returns this same type, so a
    /// caller does not care which runtime serves.
    pub fn new(
        local_addr: SocketAddr,
        stop: impl Fn() + Send + Sync + 'static,
        thread: JoinHandle<Result<(), ServerError>>,
    ) -> Self {
        Self {
            local_addr,
            stop: Stopper(Arc::new(stop)),
            thread: Some(thread),
        }
    }

    /// Something another thread can call to stop the server gracefully (a signal handler,
    /// say) while this thread waits in [`ServerHandle::join`].
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// The address actually listened on (the real port when the options asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop: the core says goodbye to every client, its last records are made durable, every
    /// thread is joined. Returns the error that stopped the server earlier, if one did.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    /// Wait until the server stops: after a [`Stopper::stop`] from another thread, or on a
    /// fatal error.
    pub fn join(mut self) -> Result<(), ServerError> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(ServerError::Panicked)),
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) -> Result<(), ServerError> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        self.stop.stop();
        t.join().unwrap_or(Err(ServerError::Panicked))
    }
}

/// Asks a running server to stop gracefully: every client is told (`421`), everything is made
/// durable, then the server's threads end. Calling it again, or after the server stopped, does
/// nothing more.
#[derive(Clone)]
pub struct Stopper(Arc<dyn Fn() + Send + Sync>);

impl Stopper {
    /// Ask the server to stop; returns at once (wait with [`ServerHandle::join`]).
    pub fn stop(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Start a server and return once it is listening, its data loaded and its startup records
/// (e.g. the emptied `userlog.txt`) durable.
pub fn spawn_server(opts: ServerOptions) -> Result<ServerHandle, ServerError> {
    let loaded = driver::load(&opts)?;
    let console = loaded.console().clone();
    let listener = TcpListener::bind(opts.bind).map_err(|error| ServerError::Bind {
        addr: opts.bind,
        error,
    })?;
    let local_addr = listener.local_addr().map_err(|error| ServerError::Bind {
        addr: opts.bind,
        error,
    })?;

    // Unbounded: readers hold at most one chunk each in it (their gates), writers and hash
    // workers one report per write or job.
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (tx, stop, console) = (tx.clone(), stop.clone(), console.clone());
        thread::Builder::new()
            .name("huddle-accept".into())
            .spawn(move || accept_loop(listener, tx, stop, console))
            .map_err(|source| ServerError::Thread {
                what: "acceptor",
                source,
            })?
    };
    let (done_tx, done_rx) = mpsc::channel();
    let transport = Threads {
        inputs: rx,
        input_tx: tx.clone(),
        sockets: HashMap::new(),
        threads: Vec::new(),
        writers_done: Some((done_tx, done_rx)),
        console,
        read_chunk: opts.config.read_chunk(),
        send_buffer: opts.config.tcp_send_buffer_bytes,
        acceptor: Some((acceptor, stop, local_addr)),
        wake_acceptor: None,
    };
    // Sending fails only if the core thread already ended; joining then reports why.
    let stop = move || {
        let _ = tx.send(Incoming::Shutdown);
    };
    Driver::start(loaded, &opts, transport)?.spawn(local_addr, stop)
}

/// Run a server until it stops; for a binary that has nothing else to do.
pub fn run_server(opts: ServerOptions) -> Result<(), ServerError> {
    spawn_server(opts)?.join()
}

type Inputs = Sender<Incoming<TcpStream>>;

/// The std transport: threads and blocking sockets.
struct Threads {
    inputs: Receiver<Incoming<TcpStream>>,
    input_tx: Inputs,
    /// Every socket whose reader has not reported its end, to cut them all at shutdown.
    sockets: HashMap<ConnId, Arc<TcpStream>>,
    threads: Vec<JoinHandle<()>>,
    /// Every writer holds a clone of the sender; all gone means all writers finished.
    writers_done: Option<(mpsc::Sender<()>, Receiver<()>)>,
    console: Console,
    read_chunk: usize,
    send_buffer: usize,
    acceptor: Option<(JoinHandle<()>, Arc<AtomicBool>, SocketAddr)>,
    /// The acceptor, once told to stop and woken (left behind if it could not be woken).
    wake_acceptor: Option<JoinHandle<()>>,
}

impl Transport for Threads {
    type Stream = TcpStream;

    fn wait(&mut self, deadline: Option<UnixMillis>) -> Option<Incoming<TcpStream>> {
        match deadline {
            Some(deadline) => match self
                .inputs
                .recv_timeout(clock::until(deadline, clock::now()))
            {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Incoming::Shutdown),
            },
            // The transport holds a sender itself, so this cannot disconnect.
            None => Some(self.inputs.recv().unwrap_or(Incoming::Shutdown)),
        }
    }

    fn try_next(&mut self) -> Option<Incoming<TcpStream>> {
        // Empty or disconnected: nothing waiting either way.
        self.inputs.try_recv().ok()
    }

    fn hash_results(&self) -> Deliver {
        let tx = std::sync::Mutex::new(self.input_tx.clone());
        Arc::new(move |done| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(Incoming::Hashed(done));
            }
        })
    }

    fn open(
        &mut self,
        conn: ConnId,
        stream: TcpStream,
        peer: SocketAddr,
        plumbing: Plumbing,
    ) -> io::Result<()> {
        // Replies are small lines that a person waits for: send them at once.
        stream.set_nodelay(true)?;
        if self.send_buffer > 0 {
            socket2::SockRef::from(&stream).set_send_buffer_size(self.send_buffer)?;
        }
        // One descriptor shared by reader, writer and core (`Read`/`Write` for `&TcpStream`),
        // not three: the process's open-file limit then bounds connections, not a third of them.
        let stream = Arc::new(stream);
        let for_writer = Arc::clone(&stream);
        let for_reader = Arc::clone(&stream);
        let done = self.writers_done.as_ref().map(|(tx, _)| tx.clone());
        let console = self.console.clone();
        let Plumbing { drain, gate } = plumbing;
        let reports = self.input_tx.clone();
        let writer = thread::Builder::new()
            .name(format!("huddle-write-{}", conn.slot()))
            .spawn(move || {
                if let Err(e) = write_loop(conn, &for_writer, &drain, &reports) {
                    console.note(&format!("{peer} ({conn}): cannot send, disconnecting: {e}"));
                }
                let _ = for_writer.shutdown(Shutdown::Both);
                drop(done);
            })?;
        self.threads.push(writer);
        let tx = self.input_tx.clone();
        let chunk = self.read_chunk;
        let reader = thread::Builder::new()
            .name(format!("huddle-read-{}", conn.slot()))
            .spawn(move || read_loop(conn, for_reader, gate, tx, chunk));
        match reader {
            Ok(t) => {
                self.threads.push(t);
                self.sockets.insert(conn, stream);
                Ok(())
            }
            Err(e) => {
                // The writer stops once the driver drops the outbox; the socket closes now.
                let _ = stream.shutdown(Shutdown::Both);
                Err(e)
            }
        }
    }

    fn refuse(&mut self, stream: TcpStream) {
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn cut(&mut self, conn: ConnId) {
        if let Some(s) = self.sockets.get(&conn) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn forget(&mut self, conn: ConnId) {
        self.sockets.remove(&conn);
        self.threads.retain(|t| !t.is_finished());
    }

    fn stop_accepting(&mut self) {
        if let Some((thread, stop, addr)) = self.acceptor.take() {
            stop.store(true, Ordering::SeqCst);
            // If the acceptor cannot be woken, it is left behind rather than waited for forever.
            self.wake_acceptor = wake(addr).then_some(thread);
        }
    }

    fn finish(&mut self, grace: Duration) {
        if let Some((tx, rx)) = self.writers_done.take() {
            drop(tx);
            let _ = rx.recv_timeout(grace);
        }
        for (_, s) in self.sockets.drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.wake_acceptor.take() {
            let _ = acceptor.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Write what the outbox yields until it is closed or cut, reporting writes to the core.
fn write_loop(
    conn: ConnId,
    mut stream: &TcpStream,
    drain: &Drain,
    reports: &Inputs,
) -> io::Result<()> {
    let mut lines = Vec::new();
    while drain.next_blocking(&mut lines) {
        let n = write_lines(stream, &lines)?;
        lines.clear();
        if drain.written(n) {
            let _ = reports.send(Incoming::Wrote(conn));
        }
    }
    stream.flush()
}

/// Accept until told to stop; the stop flag is checked after each accept, and the core
/// thread connects once to wake this thread from `accept`. Out of descriptors, a spare one
/// is given up to accept the waiting client and tell it so, rather than leave it hanging.
fn accept_loop(listener: TcpListener, tx: Inputs, stop: Arc<AtomicBool>, console: Console) {
    let mut reserve = Reserve::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream {
            Ok(s) => {
                let peer = match s.peer_addr() {
                    Ok(p) => p,
                    // The peer already left; nothing to serve.
                    Err(_) => continue,
                };
                if tx.send(Incoming::Accepted(s, peer)).is_err() {
                    return;
                }
            }
            Err(e) if Reserve::is_exhaustion(&e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                reserve.turn_away(|| listener.accept().map(|(s, _)| s));
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                // Persistent failures: back off rather than spin on the error.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Wake the acceptor by connecting to the listening address (loopback for a wildcard bind);
/// false if that failed.
fn wake(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok()
}

/// Feed a connection's bytes to the core thread as its gate allows until it ends, then
/// report the end with what the peer had not acknowledged.
fn read_loop(conn: ConnId, stream: Arc<TcpStream>, gate: Arc<Gate>, tx: Inputs, chunk: usize) {
    let mut buf = vec![0u8; chunk];
    let error = loop {
        if !gate.pass_blocking() {
            break None;
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                if tx.send(Incoming::Bytes(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => gate.taken(),
            Err(e) => break Some(e),
        }
    };
    let _ = tx.send(Incoming::Closed {
        conn,
        unacked: unacked(&stream),
        error,
    });
}
