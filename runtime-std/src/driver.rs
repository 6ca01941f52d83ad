//! The part of a server driver that does not depend on how bytes move, shared by the std and
//! the smol runtime so that both behave the same, byte for byte.
//!
//! A [`Driver`] owns the [`Server`] core, the [`DataDir`] and every connection's
//! [`Outbox`]; a [`Transport`] (threads and `std::net`, or tasks and `async-io`) owns the
//! sockets, the readers and writers, and the queue of [`Input`]s. The driver runs str0m's
//! loop on one thread:
//! 1. wait for one input with the core's [`Server::poll_timeout`] as the deadline (the
//!    transport waits on a channel with a timeout, or on an `async_io::Timer`; never a sleep);
//! 2. take every further input that is already waiting, up to [`MAX_BATCH`] inputs or
//!    [`MAX_BATCH_BYTES`] bytes, and feed them all to the core with the same `now`;
//! 3. drain [`Server::poll_output`]: all persist records of the batch are made durable with
//!    one [`DataDir::apply`] (one fsync per touched file) *before* any send or close of the
//!    batch; then sends, closes and log lines are carried out in order.
//!
//! Step 2 is what makes group commit free: when many clients post at once, their posts land in
//! one batch and share one fsync, yet no reply leaves before its record is on disk.
//!
//! The driver decides nothing about the protocol: what to reply and when to close are the
//! core's. It only enforces the resource limit the core cannot see (a client that does not
//! read is cut off once its outbox is full).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, Output, Server};
use huddle_core::store::Persist;

use crate::clock;
use crate::console::Console;
use crate::datadir::DataDir;
use crate::outbox::{self, Drain, Outbox, Overflow};
use crate::server::{ServerError, ServerOptions};

/// Inputs waiting for the core before readers are slowed down (TCP flow control then holds a
/// flooding client back instead of memory filling up).
pub const INPUT_QUEUE: usize = 1024;

/// Most inputs fed to the core in one batch, so outputs of a busy server still go out often.
pub const MAX_BATCH: usize = INPUT_QUEUE;

/// Most bytes fed to the core in one batch. This bounds the burst one batch can queue for a
/// client (a post fans out to everyone), which must stay well under
/// [`ServerOptions::outbox_limit`] so that a client that reads is never mistaken for one that
/// does not.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Bytes read from a socket at a time.
pub const READ_CHUNK: usize = 16 * 1024;

/// Something for the thread that owns the core. `S` is the transport's socket type.
#[derive(Debug)]
pub enum Input<S> {
    /// A client connected.
    Accepted(S, SocketAddr),
    /// Bytes arrived on a connection.
    Bytes(ConnId, Vec<u8>),
    /// A connection ended (the peer closed it, it failed, or the driver shut it down).
    Closed(ConnId, Option<io::Error>),
    /// Stop the server.
    Shutdown,
}

/// How a runtime moves bytes: what the [`Driver`] needs from it, and nothing that decides.
pub trait Transport {
    /// An accepted connection, as the runtime holds it.
    type Stream;

    /// Block the calling thread until the next input, or until `deadline` (`None`: no
    /// deadline) has passed, then return `None`.
    fn wait(&mut self, deadline: Option<UnixMillis>) -> Option<Input<Self::Stream>>;

    /// The next input if one is already waiting.
    fn try_next(&mut self) -> Option<Input<Self::Stream>>;

    /// Start serving a connection the core has named `conn`: a reader that reports its bytes
    /// and its end as [`Input`]s, and a writer that writes what `drain` yields, then shuts
    /// the socket down. On error nothing of the connection may be left running.
    fn open(
        &mut self,
        conn: ConnId,
        stream: Self::Stream,
        peer: SocketAddr,
        drain: Drain,
    ) -> io::Result<()>;

    /// Close a connection accepted while the server is stopping.
    fn refuse(&mut self, stream: Self::Stream);

    /// Shut a connection's socket down at once (its reader then reports the end).
    fn cut(&mut self, conn: ConnId);

    /// A connection's reader reported its end: forget its socket.
    fn forget(&mut self, conn: ConnId);

    /// Accept no more connections.
    fn stop_accepting(&mut self);

    /// Every outbox is closed: give writers up to `grace` to deliver their queues, cut every
    /// socket still open, and stop every reader, writer and helper thread.
    fn finish(&mut self, grace: Duration);
}

/// The data folder and the core built from it, before anything is served.
pub struct Loaded {
    console: Console,
    dir: DataDir,
    core: Server,
}

/// Open and read the data folder named in `opts` (creating it if missing) and build the core
/// from it; a folder with damaged lines is refused here, before anything listens.
pub fn load(opts: &ServerOptions) -> Result<Loaded, ServerError> {
    let console = Console {
        sink: opts.log.clone(),
        zone: opts.config.zone,
    };
    let dir = DataDir::open(&opts.dir)?;
    let files = dir.load()?;
    let core =
        Server::new(opts.config.clone(), &files, clock::now()).map_err(|e| dir.damaged(e))?;
    Ok(Loaded { console, dir, core })
}

impl Loaded {
    /// Where the runtime's own notes go (accept failures and the like).
    pub fn console(&self) -> &Console {
        &self.console
    }
}

/// One open connection, as the core thread sees it.
struct Link {
    peer: SocketAddr,
    outbox: Outbox,
}

/// The core, the data folder and the outboxes, driven over a [`Transport`].
pub struct Driver<T: Transport> {
    core: Server,
    dir: DataDir,
    /// Open outboxes; dropping one closes its connection once its queue is written.
    links: HashMap<ConnId, Link>,
    /// Connections cut for not reading during this batch, to report to the core after it.
    overflowed: Vec<ConnId>,
    stopping: bool,
    console: Console,
    outbox_limit: usize,
    shutdown_grace: Duration,
    transport: T,
}

impl<T: Transport> Driver<T> {
    /// Take the core built from the loaded folder and make its startup records (e.g. the emptied
    /// `userlog.txt`) durable, so nothing is served before the folder matches the core. On
    /// error the transport is finished before returning.
    pub fn start(loaded: Loaded, opts: &ServerOptions, transport: T) -> Result<Self, ServerError> {
        let Loaded { console, dir, core } = loaded;
        let mut driver = Driver {
            core,
            dir,
            links: HashMap::new(),
            overflowed: Vec::new(),
            stopping: false,
            console,
            outbox_limit: opts.outbox_limit,
            shutdown_grace: opts.shutdown_grace,
            transport,
        };
        match driver.flush() {
            Ok(()) => Ok(driver),
            Err(e) => {
                driver.finish();
                Err(e)
            }
        }
    }

    /// Run the driver on a thread of its own, named `huddle-core`, and return the handle
    /// callers hold; `stop` asks that thread to shut down (it must not wait for it).
    pub fn spawn(
        self,
        local_addr: SocketAddr,
        stop: impl FnOnce() + Send + 'static,
    ) -> Result<crate::server::ServerHandle, ServerError>
    where
        T: Send + 'static,
    {
        let thread = std::thread::Builder::new()
            .name("huddle-core".into())
            .spawn(move || self.run())
            .map_err(|source| ServerError::Thread {
                what: "core",
                source,
            })?;
        Ok(crate::server::ServerHandle::new(local_addr, stop, thread))
    }

    /// Serve until told to stop or a data-folder error forbids going on; then stop everything.
    pub fn run(mut self) -> Result<(), ServerError> {
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
            let first = self.transport.wait(self.core.poll_timeout());
            let now = clock::now();
            let mut fed = 0;
            if let Some(input) = first {
                fed += self.feed(input, now);
            }
            for _ in 1..MAX_BATCH {
                if fed >= MAX_BATCH_BYTES {
                    break;
                }
                match self.transport.try_next() {
                    Some(input) => fed += self.feed(input, now),
                    None => break,
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
    fn feed(&mut self, input: Input<T::Stream>, now: UnixMillis) -> usize {
        match input {
            Input::Bytes(conn, bytes) => {
                self.core.handle_bytes(conn, &bytes, now);
                bytes.len()
            }
            Input::Accepted(stream, peer) => {
                if self.stopping {
                    self.transport.refuse(stream);
                } else {
                    self.connect(stream, peer, now);
                }
                0
            }
            Input::Closed(conn, error) => {
                self.transport.forget(conn);
                if let (Some(e), Some(link)) = (error, self.links.get(&conn)) {
                    self.console
                        .note(&format!("{} ({conn}): connection failed: {e}", link.peer));
                }
                self.links.remove(&conn);
                self.core.handle_disconnect(conn, now);
                0
            }
            Input::Shutdown => {
                if !self.stopping {
                    self.stopping = true;
                    self.core.shutdown(now);
                }
                0
            }
        }
    }

    /// Name the connection through the core, then let the transport serve it.
    fn connect(&mut self, stream: T::Stream, peer: SocketAddr, now: UnixMillis) {
        let conn = self.core.handle_connect(peer, now);
        let (outbox, drain) = outbox::outbox(self.outbox_limit);
        match self.transport.open(conn, stream, peer, drain) {
            Ok(()) => {
                self.links.insert(conn, Link { peer, outbox });
            }
            Err(e) => {
                self.console.note(&format!(
                    "{peer} ({conn}): cannot serve this connection: {e}"
                ));
                self.core.handle_disconnect(conn, now);
            }
        }
    }

    /// Carry out every output: the batch's persist records durably first, then the rest in
    /// order; connections cut for not reading are then reported to the core, whose answer
    /// (logout records, events to others) is carried out the same way.
    pub fn flush(&mut self) -> Result<(), ServerError> {
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
            self.transport.cut(conn);
            self.overflowed.push(conn);
        }
    }

    /// Stop everything: no more connections; outputs still pending (after a fatal error)
    /// depend on records that failed, so they are never carried out; closing every outbox
    /// lets each writer finish its queue; the transport then cuts what is left and joins.
    fn finish(&mut self) {
        self.transport.stop_accepting();
        self.stopping = true;
        self.links.clear();
        self.transport.finish(self.shutdown_grace);
    }
}
