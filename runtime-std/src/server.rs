//! The std driver of the server core: a TCP listener, a thread per connection for reading and
//! one for writing, and **one** thread that owns the [`Server`] core.
//!
//! # The loop (str0m's run-loop invariant)
//! The core thread
//! 1. waits for one input (a connection, bytes, a disconnect, a stop request) with the core's
//!    [`Server::poll_timeout`] as the deadline — it never sleeps to poll;
//! 2. takes every further input that is already waiting, without blocking, and feeds them all
//!    to the core with the same `now`;
//! 3. drains [`Server::poll_output`]: all persist records of the batch are made durable with
//!    one [`DataDir::apply`] call (one fsync per touched file) *before* any send or close of
//!    the batch; then sends, closes and log lines are carried out in order.
//!
//! Step 2 is what makes group commit free: when many clients post at once, their posts land in
//! one batch and share one fsync, yet no reply leaves before its record is on disk.
//!
//! # Threads
//! - the acceptor hands each new socket to the core thread;
//! - a reader per connection turns bytes into inputs (the input channel is bounded, so a
//!   flooding client is slowed by TCP flow control instead of filling memory);
//! - a writer per connection drains that connection's [`outbox`](crate::outbox), so a client
//!   that stops reading never blocks the core thread or anyone else. If its queue exceeds
//!   [`ServerOptions::outbox_limit`] it is disconnected, and the console says why.
//!
//! The driver decides nothing about the protocol: what to reply and when to close are the
//! core's. It only enforces resource limits (queue size, write timeout) the core cannot see.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, Output, Server, ServerConfig};
use huddle_core::store::Persist;

use crate::clock;
use crate::console::{Console, LogSink};
use crate::datadir::{DataDir, DataDirError};
use crate::outbox::{self, Outbox, Overflow};

/// Inputs waiting for the core thread before readers are slowed down.
const INPUT_QUEUE: usize = 1024;

/// Most inputs fed to the core in one batch, so outputs of a busy server still go out often.
const MAX_BATCH: usize = INPUT_QUEUE;

/// Most bytes fed to the core in one batch. This bounds the burst one batch can queue for a
/// client (a post fans out to everyone), which must stay well under
/// [`ServerOptions::outbox_limit`] so that a client that reads is never mistaken for one that
/// does not.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub bind: SocketAddr,
    /// The data folder (created if missing).
    pub dir: PathBuf,
    /// Everything the core decides with.
    pub config: ServerConfig,
    /// A client with more than this many bytes still queued for it is disconnected as not
    /// reading. Large enough for any burst a reading client sees (one batch feeds the core at
    /// most 256 KiB of input); small enough that a stuck client cannot eat memory.
    pub outbox_limit: usize,
    /// A client that accepts no bytes for this long is disconnected, so a stuck peer cannot
    /// hold a writer thread (and its socket) forever.
    pub write_timeout: Duration,
    /// At shutdown, how long clients get to receive their goodbye before their sockets are cut.
    pub shutdown_grace: Duration,
    /// Where log lines go (standard output by default).
    pub log: LogSink,
}

impl ServerOptions {
    /// Options with the usual limits: 4 MiB per client queue, 30 s write timeout, 2 s grace.
    pub fn new(bind: SocketAddr, dir: impl Into<PathBuf>, config: ServerConfig) -> Self {
        Self {
            bind,
            dir: dir.into(),
            config,
            outbox_limit: 4 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(2),
            log: LogSink::stdout(),
        }
    }
}

/// Why the server could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data folder could not be read or written. When this stops a running server, the
    /// replies of the failed batch were not sent: nothing unsaved was acknowledged.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Listening failed: the port is taken, or the address is not this machine's.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The operating system refused to start a thread (too many threads or too little memory).
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

/// A running server. Dropping it stops the server as [`ServerHandle::shutdown`] does.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    inputs: SyncSender<Input>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl ServerHandle {
    /// The address actually listened on (the real port when the options asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop: the core says goodbye to every client, its last records are made durable, every
    /// thread is joined. Returns the error that stopped the server earlier, if one did.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    /// Wait until the server stops (it stops only on [`ServerHandle::shutdown`] from elsewhere
    /// — impossible once this consumes the handle — or on a fatal data-folder error).
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
        // Fails only if the core thread already ended; joining then reports why.
        let _ = self.inputs.send(Input::Shutdown);
        t.join().unwrap_or(Err(ServerError::Panicked))
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
    let console = Console {
        sink: opts.log.clone(),
        zone: opts.config.zone,
    };
    let dir = DataDir::open(&opts.dir)?;
    let files = dir.load()?;
    let listener = TcpListener::bind(opts.bind).map_err(|source| ServerError::Bind {
        addr: opts.bind,
        source,
    })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: opts.bind,
        source,
    })?;
    let core = Server::new(opts.config.clone(), &files, clock::now());

    let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
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
    let mut driver = Driver {
        core,
        dir,
        inputs: rx,
        input_tx: tx.clone(),
        links: HashMap::new(),
        sockets: HashMap::new(),
        threads: Vec::new(),
        writers_done: None,
        overflowed: Vec::new(),
        stopping: false,
        console,
        outbox_limit: opts.outbox_limit,
        write_timeout: opts.write_timeout,
        shutdown_grace: opts.shutdown_grace,
        acceptor: Some((acceptor, stop, local_addr)),
    };
    let (done_tx, done_rx) = mpsc::channel();
    driver.writers_done = Some((done_tx, done_rx));
    // Startup records first: nothing is served before the folder matches the core.
    if let Err(e) = driver.flush() {
        driver.finish();
        return Err(e);
    }
    let thread = thread::Builder::new()
        .name("huddle-core".into())
        .spawn(move || driver.run())
        .map_err(|source| ServerError::Thread {
            what: "core",
            source,
        })?;
    Ok(ServerHandle {
        local_addr,
        inputs: tx,
        thread: Some(thread),
    })
}

/// Run a server until it stops; for a binary that has nothing else to do.
pub fn run_server(opts: ServerOptions) -> Result<(), ServerError> {
    spawn_server(opts)?.join()
}

/// Something for the core thread.
enum Input {
    /// A client connected.
    Accepted(TcpStream, SocketAddr),
    /// Bytes arrived on a connection.
    Bytes(ConnId, Vec<u8>),
    /// A connection ended (the peer closed it, it failed, or the driver shut it down).
    Closed(ConnId, Option<io::Error>),
    /// Stop the server.
    Shutdown,
}

/// The core thread's state.
struct Driver {
    core: Server,
    dir: DataDir,
    inputs: Receiver<Input>,
    input_tx: SyncSender<Input>,
    /// Open outboxes; dropping one closes its connection once its queue is written.
    links: HashMap<ConnId, Link>,
    /// Every socket whose reader has not reported its end, to cut them all at shutdown.
    sockets: HashMap<ConnId, TcpStream>,
    threads: Vec<JoinHandle<()>>,
    /// Every writer holds a clone of the sender; all gone means all writers finished.
    writers_done: Option<(mpsc::Sender<()>, Receiver<()>)>,
    /// Connections cut for not reading during this batch, to report to the core after it.
    overflowed: Vec<ConnId>,
    stopping: bool,
    console: Console,
    outbox_limit: usize,
    write_timeout: Duration,
    shutdown_grace: Duration,
    acceptor: Option<(JoinHandle<()>, Arc<AtomicBool>, SocketAddr)>,
}

struct Link {
    peer: SocketAddr,
    outbox: Outbox,
}

impl Driver {
    fn run(mut self) -> Result<(), ServerError> {
        let result = self.serve();
        if let Err(e) = &result {
            self.console.note(&format!(
                "fatal: {e}; stopping without sending the replies that depended on it"
            ));
        }
        self.finish();
        result
    }

    fn serve(&mut self) -> Result<(), ServerError> {
        while !self.stopping {
            let first = match self.core.poll_timeout() {
                Some(deadline) => {
                    match self
                        .inputs
                        .recv_timeout(clock::until(deadline, clock::now()))
                    {
                        Ok(input) => Some(input),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => Some(Input::Shutdown),
                    }
                }
                // The driver holds a sender itself, so this cannot disconnect.
                None => Some(self.inputs.recv().unwrap_or(Input::Shutdown)),
            };
            let now = clock::now();
            let mut fed = 0;
            if let Some(input) = first {
                fed += self.feed(input, now);
            }
            for _ in 1..MAX_BATCH {
                if fed >= MAX_BATCH_BYTES {
                    break;
                }
                match self.inputs.try_recv() {
                    Ok(input) => fed += self.feed(input, now),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.flush()?;
        }
        Ok(())
    }

    /// Hand one input to the core; returns how many bytes of client input it carried.
    fn feed(&mut self, input: Input, now: UnixMillis) -> usize {
        if let Input::Bytes(conn, bytes) = &input {
            self.core.handle_bytes(*conn, bytes, now);
            return bytes.len();
        }
        match input {
            Input::Accepted(stream, peer) => {
                if self.stopping {
                    let _ = stream.shutdown(Shutdown::Both);
                } else {
                    self.connect(stream, peer, now);
                }
            }
            Input::Bytes(..) => {}
            Input::Closed(conn, error) => {
                self.sockets.remove(&conn);
                if let (Some(e), Some(link)) = (error, self.links.get(&conn)) {
                    self.console
                        .note(&format!("{} ({conn}): connection failed: {e}", link.peer));
                }
                self.links.remove(&conn);
                self.core.handle_disconnect(conn, now);
                self.threads.retain(|t| !t.is_finished());
            }
            Input::Shutdown => {
                if !self.stopping {
                    self.stopping = true;
                    self.core.shutdown(now);
                }
            }
        }
        0
    }

    /// Name the connection through the core, then start its reader and writer.
    fn connect(&mut self, stream: TcpStream, peer: SocketAddr, now: UnixMillis) {
        let conn = self.core.handle_connect(peer, now);
        if let Err(e) = self.start_link(conn, stream, peer) {
            self.console.note(&format!(
                "{peer} ({conn}): cannot serve this connection: {e}"
            ));
            self.links.remove(&conn);
            self.core.handle_disconnect(conn, now);
        }
    }

    fn start_link(&mut self, conn: ConnId, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        // Replies are small lines that a person waits for: send them at once.
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(self.write_timeout))?;
        let for_writer = stream.try_clone()?;
        let for_reader = stream.try_clone()?;
        let (outbox, drain) = outbox::outbox(self.outbox_limit);
        let done = self.writers_done.as_ref().map(|(tx, _)| tx.clone());
        let console = self.console.clone();
        let writer = thread::Builder::new()
            .name(format!("huddle-write-{}", conn.0))
            .spawn(move || {
                if let Err(e) = drain.run(for_writer) {
                    console.note(&format!("{peer} ({conn}): cannot send, disconnecting: {e}"));
                }
                drop(done);
            })?;
        self.threads.push(writer);
        self.links.insert(conn, Link { peer, outbox });
        self.sockets.insert(conn, stream);
        let tx = self.input_tx.clone();
        let reader = thread::Builder::new()
            .name(format!("huddle-read-{}", conn.0))
            .spawn(move || read_loop(conn, for_reader, tx));
        match reader {
            Ok(t) => {
                self.threads.push(t);
                Ok(())
            }
            Err(e) => {
                if let Some(s) = self.sockets.remove(&conn) {
                    let _ = s.shutdown(Shutdown::Both);
                }
                Err(e)
            }
        }
    }

    /// Carry out every output: the batch's persist records durably first, then the rest in
    /// order; connections cut for not reading are then reported to the core, whose answer
    /// (logout records, events to others) is carried out the same way.
    fn flush(&mut self) -> Result<(), ServerError> {
        loop {
            let mut records: Vec<Persist> = Vec::new();
            let mut rest: Vec<Output> = Vec::new();
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Persist(p) => records.push(p),
                    other => rest.push(other),
                }
            }
            if records.is_empty() && rest.is_empty() {
                return Ok(());
            }
            if !records.is_empty() {
                self.dir.apply(&records)?;
            }
            for output in rest {
                match output {
                    Output::Send { conn, bytes } => self.send(conn, bytes),
                    Output::Close { conn } => {
                        // The writer sends what is queued, then shuts the socket down.
                        self.links.remove(&conn);
                    }
                    Output::Log(line) => self.console.core(&line),
                    Output::Persist(_) => {}
                }
            }
            let now = clock::now();
            for conn in std::mem::take(&mut self.overflowed) {
                self.core.handle_disconnect(conn, now);
            }
        }
    }

    fn send(&mut self, conn: ConnId, bytes: bytes::Bytes) {
        let Some(link) = self.links.get(&conn) else {
            // Already closed or disconnected: nobody to send to.
            return;
        };
        if let Err(Overflow { queued }) = link.outbox.push(bytes) {
            self.console.note(&format!(
                "{} ({conn}): disconnected: it is not reading ({queued} bytes waiting, limit {})",
                link.peer, self.outbox_limit
            ));
            self.links.remove(&conn);
            if let Some(s) = self.sockets.get(&conn) {
                let _ = s.shutdown(Shutdown::Both);
            }
            self.overflowed.push(conn);
        }
    }

    /// Stop everything: say goodbye through the core (unless a fatal error forbids sending),
    /// let writers deliver for a grace period, cut what is left, join every thread.
    fn finish(&mut self) {
        if let Some((_, stop, _)) = &self.acceptor {
            stop.store(true, Ordering::SeqCst);
        }
        // If the acceptor cannot be woken, it is left behind rather than waited for forever.
        let acceptor = self
            .acceptor
            .take()
            .and_then(|(thread, _, addr)| wake(addr).then_some(thread));
        // Outputs still pending (after a fatal error) depend on records that failed: they are
        // never carried out.
        self.stopping = true;
        // Closing every outbox lets each writer finish its queue and shut its socket down.
        self.links.clear();
        if let Some((tx, rx)) = self.writers_done.take() {
            drop(tx);
            let _ = rx.recv_timeout(self.shutdown_grace);
        }
        for (_, s) in self.sockets.drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Readers blocked on a full input queue see it gone and stop.
        let (_, dead) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.inputs, dead));
        if let Some(acceptor) = acceptor {
            let _ = acceptor.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Accept until told to stop; the stop flag is checked after each accept, and the core
/// thread connects once to wake this thread from `accept`.
fn accept_loop(
    listener: TcpListener,
    tx: SyncSender<Input>,
    stop: Arc<AtomicBool>,
    console: Console,
) {
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
                if tx.send(Input::Accepted(s, peer)).is_err() {
                    return;
                }
            }
            Err(e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                // Out of file descriptors and the like persist for a while: back off rather
                // than spin on the error.
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

/// Feed a connection's bytes to the core thread until it ends, then report the end.
fn read_loop(conn: ConnId, mut stream: TcpStream, tx: SyncSender<Input>) {
    let mut buf = vec![0u8; READ_CHUNK];
    let error = loop {
        match stream.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                if tx.send(Input::Bytes(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    let _ = tx.send(Input::Closed(conn, error));
}
