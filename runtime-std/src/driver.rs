//! The part of a server driver that does not depend on how bytes move, shared by the std and
//! the smol runtime so that both behave the same, byte for byte.
//!
//! A [`Driver`] owns the [`Server`] core, the [`DataDir`], the [`Hasher`] and every
//! connection's [`Outbox`] and [`Gate`]; a [`Transport`] (threads and `std::net`, or tasks
//! and `async-io`) owns the sockets, the readers and writers, and the queue of
//! [`Incoming`]s. The driver runs the core's loop (see `huddle_core::server`) on one thread:
//! 1. wait for one input, at most until the core's [`Server::poll_timeout`];
//! 2. hand it to the core, then every further input already waiting while
//!    [`Server::wants_input`] says the batch has room;
//! 3. drain [`Server::poll_output`]: the batch's persist records are made durable with one
//!    [`DataDir::apply`] (one fsync per touched file) *before* anything after them is
//!    carried out; then sends, closes and the rest, in order. If they cannot be stored,
//!    nothing that depended on them is carried out and the core is told
//!    ([`Input::StoreFailed`]); then the core's probe ([`Server::poll_probe`]), if due.
//!
//! Every rule — batch sizes, when to stop reading a connection, when to cut one off, how
//! long to wait — is the core's. The driver moves bytes, files and time.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, HashDone, Input, Output, Server, StartError};
use huddle_core::store::Persist;

use crate::clock;
use crate::console::Console;
use crate::datadir::{DataDir, DataDirError};
use crate::hasher::{Deliver, Hasher};
use crate::outbox::{self, Drain, Gate, Outbox};
use crate::server::{ServerError, ServerOptions, TlsSource};
use crate::tls_files::{self, IdentityOrigin, TlsFilesError};
use huddle_core::tls::{FileLimits, ServerTls, TlsLimits};

/// Something for the thread that owns the core. `S` is the transport's socket type.
#[derive(Debug)]
pub enum Incoming<S> {
    /// A client connected.
    Accepted(S, SocketAddr),
    /// Bytes arrived on a connection.
    Bytes(ConnId, Vec<u8>),
    /// A connection's writer wrote more bytes (how many: [`Outbox::take_written`]; later
    /// writes ride along until this is taken).
    Wrote(ConnId),
    /// A connection ended: its reader saw the end or an error. `unacked`: written bytes the
    /// peer had not acknowledged (see [`outbox::unacked`]).
    Closed {
        /// Which.
        conn: ConnId,
        /// Unacknowledged bytes at the end.
        unacked: usize,
        /// The error that ended it, if any.
        error: Option<io::Error>,
    },
    /// A password hash is done.
    Hashed(HashDone),
    /// Stop the server.
    Shutdown,
}

/// One connection's plumbing, as a transport needs it to start the connection's tasks.
pub struct Plumbing {
    /// What the writer writes.
    pub drain: Drain,
    /// When the reader may read.
    pub gate: Arc<Gate>,
}

/// How a runtime moves bytes: what the [`Driver`] needs from it, and nothing that decides.
pub trait Transport {
    /// An accepted connection, as the runtime holds it.
    type Stream;

    /// Block the calling thread until the next input, or until `deadline` (`None`: no
    /// deadline) has passed, then return `None`.
    fn wait(&mut self, deadline: Option<UnixMillis>) -> Option<Incoming<Self::Stream>>;

    /// The next input if one is already waiting.
    fn try_next(&mut self) -> Option<Incoming<Self::Stream>>;

    /// Where hash workers deliver their results (into the input queue).
    fn hash_results(&self) -> Deliver;

    /// Start serving a connection the core has named `conn`: a reader that reads when its
    /// gate lets it and reports its bytes, and its end with the unacknowledged byte count;
    /// and a writer that writes what the drain yields, reports every write, then shuts the
    /// socket down. On error nothing of the connection may be left running.
    fn open(
        &mut self,
        conn: ConnId,
        stream: Self::Stream,
        peer: SocketAddr,
        plumbing: Plumbing,
    ) -> io::Result<()>;

    /// Close a connection that cannot be served at all (accepted after the end).
    fn refuse(&mut self, stream: Self::Stream);

    /// Shut a connection's socket down at once (its reader then reports the end).
    fn cut(&mut self, conn: ConnId);

    /// A connection's reader reported its end: forget its socket.
    fn forget(&mut self, conn: ConnId);

    /// Accept no more connections.
    fn stop_accepting(&mut self);

    /// Give writers up to `grace` to deliver their queues, cut every socket still open, and
    /// stop every reader, writer and helper thread.
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
    // Before anything is created (a certificate, a lock): `Server::new` checks again.
    opts.config.check()?;
    let console = Console {
        sink: opts.log.clone(),
        zone: opts.config.zone,
    };
    let dir = DataDir::open(&opts.dir)?;
    let files = dir.load()?;
    // A folder the core refuses gets nothing new in it, not even a certificate.
    huddle_core::server::check_start(&opts.config, &files).map_err(|e| match e {
        StartError::Damaged(damage) => ServerError::from(dir.damaged(damage)),
        StartError::Config(e) => ServerError::Config(e),
    })?;
    let mut config = opts.config.clone();
    if config.tls.is_none() {
        config.tls = load_tls(opts, &console)?;
    }
    let core = Server::new(config, &files, clock::now()).map_err(|e| match e {
        StartError::Damaged(damage) => ServerError::from(dir.damaged(damage)),
        StartError::Config(e) => ServerError::Config(e),
    })?;
    Ok(Loaded { console, dir, core })
}

/// The server's TLS configuration from `opts.tls`, narrated: where the certificate comes
/// from and its fingerprint (what clients that trust on first use show their users).
fn load_tls(opts: &ServerOptions, console: &Console) -> Result<Option<ServerTls>, ServerError> {
    let given = match &opts.tls {
        TlsSource::Off => return Ok(None),
        TlsSource::DataFolder => None,
        TlsSource::Files { cert, key } => Some((cert.as_path(), key.as_path())),
    };
    let loaded = tls_files::load_or_create_identity(&opts.dir, given, &FileLimits::default())?;
    let tls = ServerTls::new(&loaded.identity, TlsLimits::default())
        .map_err(|e| ServerError::Tls(TlsFilesError::Generate(e.to_string())))?;
    let origin = match loaded.origin {
        IdentityOrigin::Given => "given",
        IdentityOrigin::Created => "created now, self-signed",
        IdentityOrigin::Reused => "self-signed, kept in the data folder",
    };
    console.note(&format!(
        "TLS certificate {} ({origin}): fingerprint {}",
        loaded.cert_path.display(),
        loaded.fingerprint()
    ));
    for warning in &loaded.warnings {
        console.note(&format!("warning: {warning}"));
    }
    Ok(Some(tls))
}

impl Loaded {
    /// Where the runtime's own notes go (accept failures and the like).
    pub fn console(&self) -> &Console {
        &self.console
    }
}

/// One open connection, as the core thread sees it.
struct Link {
    conn: ConnId,
    peer: SocketAddr,
    outbox: Outbox,
    gate: Arc<Gate>,
    /// Lines for this connection in the flush under way, queued together at its end.
    staged: Vec<bytes::Bytes>,
}

/// The core, the data folder, the hash workers and the connections' queues, driven over a
/// [`Transport`].
pub struct Driver<T: Transport> {
    core: Server,
    dir: DataDir,
    hasher: Option<Hasher>,
    /// Open connections by slot ([`ConnId::slot`]).
    links: Vec<Option<Link>>,
    touched: Vec<usize>,
    /// When the graceful stop gives up waiting for connections to close.
    stop_deadline: Option<Instant>,
    console: Console,
    shutdown_grace: Duration,
    transport: T,
}

impl<T: Transport> Driver<T> {
    /// Take the core built from the loaded folder and make its startup records (e.g. the emptied
    /// `userlog.txt`) durable, so nothing is served before the folder matches the core. On
    /// error the transport is finished before returning.
    pub fn start(loaded: Loaded, opts: &ServerOptions, transport: T) -> Result<Self, ServerError> {
        let Loaded { console, dir, core } = loaded;
        let hasher =
            Hasher::start(opts.config.hash_workers, transport.hash_results()).map_err(|source| {
                ServerError::Thread {
                    what: "password hashing",
                    source,
                }
            });
        let mut driver = Driver {
            core,
            dir,
            hasher: None,
            links: Vec::new(),
            touched: Vec::new(),
            stop_deadline: None,
            console,
            shutdown_grace: opts.shutdown_grace,
            transport,
        };
        match hasher {
            Ok(h) => driver.hasher = Some(h),
            Err(e) => {
                driver.finish();
                return Err(e);
            }
        }
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
        stop: impl Fn() + Send + Sync + 'static,
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

    /// Serve until told to stop; then stop everything. A data folder that cannot be written
    /// does not stop the server: the core turns read-only (see [`Driver::flush`]).
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
        loop {
            if self.core.is_finished() {
                return Ok(());
            }
            let mut deadline = self.core.poll_timeout();
            if let Some(stop) = self.stop_deadline {
                let now = Instant::now();
                if now >= stop {
                    // Connections that did not close within the grace period are cut.
                    return Ok(());
                }
                let left = clock::now().plus_millis(stop.duration_since(now).as_millis() as u64);
                deadline = Some(deadline.map_or(left, |d| d.min(left)));
            }
            let first = self.transport.wait(deadline);
            let now = clock::now();
            match first {
                Some(input) => self.feed(input, now),
                None => {
                    self.core.handle_input(Input::Timeout, now);
                }
            }
            while self.core.wants_input() {
                match self.transport.try_next() {
                    Some(input) => self.feed(input, now),
                    None => break,
                }
            }
            self.flush()?;
        }
    }

    /// Hand one input to the core.
    fn feed(&mut self, input: Incoming<T::Stream>, now: UnixMillis) {
        match input {
            Incoming::Bytes(conn, bytes) => {
                if let Some(link) = self.link(conn) {
                    link.gate.taken();
                }
                self.core.handle_input(
                    Input::Bytes {
                        conn,
                        bytes: &bytes,
                    },
                    now,
                );
            }
            Incoming::Wrote(conn) => {
                let n = self.link(conn).map_or(0, |l| l.outbox.take_written());
                if n > 0 {
                    self.core.handle_input(Input::Wrote { conn, bytes: n }, now);
                }
            }
            Incoming::Accepted(stream, peer) => self.connect(stream, peer, now),
            Incoming::Closed {
                conn,
                unacked,
                error,
            } => {
                self.transport.forget(conn);
                // What was written and not reported yet counts for what was delivered.
                let n = self.link(conn).map_or(0, |l| l.outbox.take_written());
                if n > 0 {
                    self.core.handle_input(Input::Wrote { conn, bytes: n }, now);
                }
                if let Some(link) = self.links.get_mut(conn.slot()).and_then(Option::take) {
                    link.gate.shut();
                    link.outbox.cut();
                    if let Some(e) = error {
                        self.console
                            .note(&format!("{} ({conn}): connection failed: {e}", link.peer));
                    }
                }
                self.core.handle_input(Input::Closed { conn, unacked }, now);
            }
            Incoming::Hashed(done) => {
                self.core.handle_input(Input::Hashed(done), now);
            }
            Incoming::Shutdown => {
                if self.stop_deadline.is_none() {
                    self.stop_deadline = Some(Instant::now() + self.shutdown_grace);
                    self.transport.stop_accepting();
                    self.core.handle_input(Input::Shutdown, now);
                }
            }
        }
    }

    fn link(&self, conn: ConnId) -> Option<&Link> {
        self.links
            .get(conn.slot())
            .and_then(Option::as_ref)
            .filter(|l| l.conn == conn)
    }

    /// Name the connection through the core, then let the transport serve it.
    fn connect(&mut self, stream: T::Stream, peer: SocketAddr, now: UnixMillis) {
        let Some(conn) = self.core.handle_input(Input::Connected { peer }, now) else {
            self.transport.refuse(stream);
            return;
        };
        let (outbox, drain) = outbox::outbox();
        let gate = Gate::new();
        let plumbing = Plumbing {
            drain,
            gate: Arc::clone(&gate),
        };
        match self.transport.open(conn, stream, peer, plumbing) {
            Ok(()) => {
                let slot = conn.slot();
                if self.links.len() <= slot {
                    self.links.resize_with(slot + 1, || None);
                }
                self.links[slot] = Some(Link {
                    conn,
                    peer,
                    outbox,
                    gate,
                    staged: Vec::new(),
                });
            }
            Err(e) => {
                self.console.note(&format!(
                    "{peer} ({conn}): cannot serve this connection: {e}"
                ));
                self.core
                    .handle_input(Input::Closed { conn, unacked: 0 }, now);
            }
        }
    }

    /// Carry out every output: the persist records that come first durably, then the rest
    /// in order; writers are woken once at the end. Records that cannot be made durable are
    /// reported to the core ([`Input::StoreFailed`]), which turns read-only: the server goes
    /// on. Then a probe the core asks for ([`Server::poll_probe`]) is tried and reported.
    pub fn flush(&mut self) -> Result<(), ServerError> {
        let mut records: Vec<Persist> = Vec::new();
        loop {
            let output = self.core.poll_output();
            if let Some(Output::Persist(p)) = output {
                records.push(p);
                continue;
            }
            if !records.is_empty() {
                let applied = self.dir.apply(&records);
                records.clear();
                if let Err(e) = applied {
                    self.store_failed(&e, output);
                    continue;
                }
            }
            match output {
                Some(output) => self.carry_out(output),
                None => break,
            }
        }
        self.hand_over();
        if let Some(probe) = self.core.poll_probe(clock::now()) {
            let error = self.dir.apply(&probe).err().map(|e| e.to_string());
            self.core
                .handle_input(Input::Probed { error }, clock::now());
            return self.flush();
        }
        Ok(())
    }

    /// The batch's records failed: carry out none of what depended on them (hash jobs and
    /// console lines excepted), and tell the core, with the folder as it is now.
    fn store_failed(&mut self, error: &DataDirError, first: Option<Output>) {
        let mut dropped = Vec::new();
        let mut next = first;
        while let Some(output) = next.take().or_else(|| self.core.poll_output()) {
            match output {
                Output::Send { conn, .. }
                | Output::Close { conn }
                | Output::Cut { conn }
                | Output::PauseReading { conn }
                | Output::ResumeReading { conn }
                | Output::CheckProgress { conn } => dropped.push(conn),
                Output::Broadcast { audience, .. } => dropped.extend(audience.iter()),
                Output::Hash(_) | Output::Log(_) => self.carry_out(output),
                Output::Persist(_) => {}
            }
        }
        let files = self.dir.load().ok();
        self.core.handle_input(
            Input::StoreFailed {
                error: error.to_string(),
                dropped,
                files: files.as_ref(),
            },
            clock::now(),
        );
    }

    /// Queue every staged line with its connection (one lock each) and wake the writers.
    fn hand_over(&mut self) {
        for slot in self.touched.drain(..) {
            if let Some(link) = self.links.get_mut(slot).and_then(Option::as_mut) {
                link.outbox.push_all(&mut link.staged);
                if link.staged.capacity() > 256 {
                    link.staged = Vec::new();
                }
                link.outbox.wake();
            }
        }
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { conn, bytes } => self.push(conn, bytes),
            Output::Broadcast { audience, bytes } => {
                for conn in audience.iter() {
                    self.push(conn, bytes.clone());
                }
            }
            Output::Close { conn } => {
                // Lines staged before the close go first.
                self.hand_over();
                if let Some(link) = self.link(conn) {
                    link.outbox.close();
                }
            }
            Output::Cut { conn } => {
                if let Some(link) = self.link(conn) {
                    link.outbox.cut();
                    link.gate.shut();
                }
                self.transport.cut(conn);
            }
            Output::PauseReading { conn } => {
                if let Some(link) = self.link(conn) {
                    link.gate.set_paused(true);
                    // The core now waits on this output: every write counts.
                    link.outbox.set_watched(true);
                }
            }
            Output::ResumeReading { conn } => {
                if let Some(link) = self.link(conn) {
                    link.gate.set_paused(false);
                    link.outbox.set_watched(false);
                }
            }
            Output::CheckProgress { conn } => {
                let n = match self.link(conn) {
                    Some(l) => {
                        l.outbox.report_next();
                        l.outbox.take_written()
                    }
                    None => 0,
                };
                self.core
                    .handle_input(Input::Wrote { conn, bytes: n }, clock::now());
            }
            Output::Hash(job) => {
                if let Some(h) = &self.hasher {
                    h.submit(job);
                }
            }
            Output::Log(text) => self.console.core(&text),
            Output::Persist(_) => {}
        }
    }

    fn push(&mut self, conn: ConnId, bytes: bytes::Bytes) {
        let slot = conn.slot();
        if let Some(link) = self.links.get_mut(slot).and_then(Option::as_mut)
            && link.conn == conn
        {
            if link.staged.is_empty() {
                self.touched.push(slot);
            }
            link.staged.push(bytes);
        }
    }

    /// Stop everything: no more connections; outputs still pending (after a fatal error)
    /// depend on records that failed, so they are never carried out; every outbox is closed
    /// so each writer finishes its queue; the transport then cuts what is left and joins.
    fn finish(&mut self) {
        self.transport.stop_accepting();
        for link in self.links.drain(..).flatten() {
            link.outbox.close();
            link.gate.shut();
        }
        self.hasher = None;
        self.transport.finish(self.shutdown_grace);
    }
}
