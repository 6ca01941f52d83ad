//! The smol driver of the server core: the same [`Driver`] as the std runtime (one thread
//! owns the core, batches inputs, makes each batch's records durable before its replies), with
//! sockets and timers from `async-io` instead of a thread pair per connection.
//!
//! # Threads and tasks
//! - `huddle-core` runs the shared [`Driver`]. It waits for the next input with
//!   `smol::block_on`, racing the input channel against an [`async_io::Timer`] set to the
//!   core's `poll_timeout()`; the data folder is written inline on this thread (blocking
//!   fsync here stalls no socket, and inputs pile up meanwhile: that is the group commit).
//! - `huddle-io` runs an executor with the listener task and, per connection, a reader task
//!   and a writer task. No task holds a buffer while it waits: the reader waits for its gate
//!   and readiness, then reads into a stack buffer and hands on exactly the bytes read; the
//!   writer waits on its outbox, gathers a chunk only when there is something to send and
//!   reports each write. An idle connection costs its socket, two small suspended tasks and
//!   its empty outbox.
//! - the hash workers are the std runtime's ([`huddle_runtime_std::hasher`]).
//!
//! The options, errors and handle are the std runtime's, so a caller picks a runtime by
//! calling one `spawn_server` or the other.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use huddle_core::UnixMillis;
use huddle_core::server::ConnId;
use huddle_runtime_std::clock;
use huddle_runtime_std::console::Console;
use huddle_runtime_std::driver::{self, Driver, Incoming, Plumbing, Transport};
use huddle_runtime_std::hasher::Deliver;
use huddle_runtime_std::limits::Reserve;
use huddle_runtime_std::outbox::{Drain, Gate, unacked};
use smol::channel::{Receiver, Sender};
use smol::{Async, Executor, Task, Timer};

pub use huddle_runtime_std::server::{ServerError, ServerHandle, ServerOptions};

/// A connection as this runtime holds it: shared by its reader task, its writer task and the
/// core thread (which may cut it).
type Stream = Arc<Async<TcpStream>>;

type Inputs = Sender<Incoming<Async<TcpStream>>>;

/// Most bytes one non-blocking read takes (the configured chunk is within it).
const MAX_READ: usize = huddle_core::server::MAX_READ_CHUNK;

/// Start a server and return once it is listening, its data loaded and its startup records
/// (e.g. the emptied `userlog.txt`) durable.
pub fn spawn_server(opts: ServerOptions) -> Result<ServerHandle, ServerError> {
    let loaded = driver::load(&opts)?;
    let console = loaded.console().clone();
    let bind_error = |error| ServerError::Bind {
        addr: opts.bind,
        error,
    };
    let listener = Async::<TcpListener>::bind(opts.bind).map_err(bind_error)?;
    let local_addr = listener.get_ref().local_addr().map_err(bind_error)?;

    // Unbounded: readers hold at most one chunk each in it (their gates), writers and hash
    // workers one report per write or job.
    let (input_tx, inputs) = smol::channel::unbounded();
    let executor = Arc::new(Executor::new());
    // The I/O thread runs until this channel closes (the transport drops its sender).
    let (io_stop, io_stopped) = smol::channel::bounded::<()>(1);
    let io_thread = {
        let executor = Arc::clone(&executor);
        thread::Builder::new()
            .name("huddle-io".into())
            .spawn(move || {
                smol::block_on(executor.run(async {
                    let _ = io_stopped.recv().await;
                }))
            })
            .map_err(|source| ServerError::Thread {
                what: "I/O",
                source,
            })?
    };
    let acceptor = executor.spawn(accept_loop(listener, input_tx.clone(), console.clone()));
    let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
    let transport = Tasks {
        executor,
        inputs,
        input_tx: input_tx.clone(),
        sockets: HashMap::new(),
        writers_done: Some((done_tx, done_rx)),
        console,
        read_chunk: opts.config.read_chunk(),
        send_buffer: opts.config.tcp_send_buffer_bytes,
        acceptor: Some(acceptor),
        io: Some((io_thread, io_stop)),
    };
    // Sending fails only if the core thread already ended; joining then reports why.
    let stop = move || {
        let _ = input_tx.send_blocking(Incoming::Shutdown);
    };
    Driver::start(loaded, &opts, transport)?.spawn(local_addr, stop)
}

/// Run a server until it stops; for a binary that has nothing else to do.
pub fn run_server(opts: ServerOptions) -> Result<(), ServerError> {
    spawn_server(opts)?.join()
}

/// The smol transport: tasks on one executor thread, sockets registered with `async-io`.
struct Tasks {
    executor: Arc<Executor<'static>>,
    inputs: Receiver<Incoming<Async<TcpStream>>>,
    input_tx: Inputs,
    /// Every socket whose reader has not reported its end, to cut them all at shutdown.
    sockets: HashMap<ConnId, Stream>,
    /// Every writer task holds a clone of the sender; all gone means all writers finished.
    writers_done: Option<(Sender<()>, Receiver<()>)>,
    console: Console,
    read_chunk: usize,
    send_buffer: usize,
    acceptor: Option<Task<()>>,
    /// The I/O thread and the sender whose drop stops it.
    io: Option<(JoinHandle<()>, Sender<()>)>,
}

impl Transport for Tasks {
    type Stream = Async<TcpStream>;

    fn wait(&mut self, deadline: Option<UnixMillis>) -> Option<Incoming<Async<TcpStream>>> {
        // The transport holds a sender itself, so the channel cannot close.
        let next = async { Some(self.inputs.recv().await.unwrap_or(Incoming::Shutdown)) };
        match deadline {
            Some(deadline) => {
                let at = Instant::now() + clock::until(deadline, clock::now());
                smol::block_on(smol::future::or(next, async {
                    Timer::at(at).await;
                    None
                }))
            }
            None => smol::block_on(next),
        }
    }

    fn try_next(&mut self) -> Option<Incoming<Async<TcpStream>>> {
        // Empty or closed: nothing waiting either way.
        self.inputs.try_recv().ok()
    }

    fn hash_results(&self) -> Deliver {
        let tx = self.input_tx.clone();
        Arc::new(move |done| {
            let _ = tx.try_send(Incoming::Hashed(done));
        })
    }

    fn open(
        &mut self,
        conn: ConnId,
        stream: Async<TcpStream>,
        peer: SocketAddr,
        plumbing: Plumbing,
    ) -> io::Result<()> {
        // Replies are small lines that a person waits for: send them at once.
        stream.get_ref().set_nodelay(true)?;
        if self.send_buffer > 0 {
            socket2::SockRef::from(stream.get_ref()).set_send_buffer_size(self.send_buffer)?;
        }
        let stream = Arc::new(stream);
        let done = self.writers_done.as_ref().map(|(tx, _)| tx.clone());
        let Plumbing { drain, gate } = plumbing;
        let writer = write_loop(
            Arc::clone(&stream),
            drain,
            self.input_tx.clone(),
            self.console.clone(),
            peer,
            conn,
        );
        self.executor
            .spawn(async move {
                writer.await;
                drop(done);
            })
            .detach();
        self.executor
            .spawn(read_loop(
                conn,
                Arc::clone(&stream),
                gate,
                self.input_tx.clone(),
                self.read_chunk,
            ))
            .detach();
        self.sockets.insert(conn, stream);
        Ok(())
    }

    fn refuse(&mut self, stream: Async<TcpStream>) {
        let _ = stream.get_ref().shutdown(Shutdown::Both);
    }

    fn cut(&mut self, conn: ConnId) {
        if let Some(s) = self.sockets.get(&conn) {
            let _ = s.get_ref().shutdown(Shutdown::Both);
        }
    }

    fn forget(&mut self, conn: ConnId) {
        self.sockets.remove(&conn);
    }

    fn stop_accepting(&mut self) {
        // Dropping the task cancels it; the listener closes with it.
        self.acceptor = None;
    }

    fn finish(&mut self, grace: Duration) {
        if let Some((tx, rx)) = self.writers_done.take() {
            drop(tx);
            // Ends when every writer has dropped its sender, or after the grace period.
            smol::block_on(smol::future::or(
                async {
                    let _ = rx.recv().await;
                },
                async {
                    Timer::after(grace).await;
                },
            ));
        }
        for (_, s) in self.sockets.drain() {
            let _ = s.get_ref().shutdown(Shutdown::Both);
        }
        self.inputs.close();
        if let Some((thread, stop)) = self.io.take() {
            drop(stop);
            let _ = thread.join();
        }
        // Tasks still on the executor (readers of cut sockets) are cancelled when the driver,
        // which holds the last reference to it, is dropped.
    }
}

/// Accept until cancelled. Out of descriptors, a spare one is given up to tell the waiting
/// client so; another failure is reported and retried after a pause rather than in a spin.
async fn accept_loop(listener: Async<TcpListener>, tx: Inputs, console: Console) {
    let mut reserve = Reserve::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if tx.send(Incoming::Accepted(stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) if Reserve::is_exhaustion(&e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                reserve.turn_away(|| listener.get_ref().accept().map(|(s, _)| s));
                Timer::after(Duration::from_millis(10)).await;
            }
            Err(e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Feed a connection's bytes to the core thread as its gate allows until it ends, then
/// report the end with what the peer had not acknowledged.
///
/// While waiting, the task holds only its socket, its gate and its sender: the read buffer
/// lives on the executor thread's stack for the length of one non-blocking read.
async fn read_loop(conn: ConnId, stream: Stream, gate: Arc<Gate>, tx: Inputs, chunk: usize) {
    let error = 'read: loop {
        if !gate.pass().await {
            break None;
        }
        loop {
            match read_now(stream.get_ref(), chunk) {
                Ok(Some(bytes)) if bytes.is_empty() => break 'read None,
                Ok(Some(bytes)) => {
                    if tx.send(Incoming::Bytes(conn, bytes)).await.is_err() {
                        return;
                    }
                    break;
                }
                Ok(None) => {
                    if let Err(e) = stream.readable().await {
                        break 'read Some(e);
                    }
                }
                Err(e) => break 'read Some(e),
            }
        }
    };
    let _ = tx
        .send(Incoming::Closed {
            conn,
            unacked: unacked(stream.get_ref()),
            error,
        })
        .await;
}

/// One non-blocking read: `Some(bytes)` (empty at the end of the stream), or `None` if
/// nothing is there yet.
fn read_now(mut stream: &TcpStream, chunk: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; MAX_READ];
    let buf = &mut buf[..chunk.min(MAX_READ)];
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(buf[..n].to_vec())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write what the outbox yields until it is closed or cut, reporting every write, then shut
/// the socket down (the reader then reports the end to the core). A peer that takes no bytes
/// is the core's to cut (its write timeout), which shuts the socket and ends the wait here.
async fn write_loop(
    stream: Stream,
    drain: Drain,
    reports: Inputs,
    console: Console,
    peer: SocketAddr,
    conn: ConnId,
) {
    let result = async {
        let mut lines = Vec::new();
        while drain.next(&mut lines).await {
            let n = write_lines(&stream, &lines).await?;
            lines.clear();
            // An idle connection keeps no more than a few slots.
            if lines.capacity() > 8 {
                lines = Vec::new();
            }
            if drain.written(n) {
                let _ = reports.send(Incoming::Wrote(conn)).await;
            }
        }
        Ok::<(), io::Error>(())
    }
    .await;
    if let Err(e) = result {
        console.note(&format!("{peer} ({conn}): cannot send, disconnecting: {e}"));
    }
    let _ = stream.get_ref().shutdown(Shutdown::Both);
}

/// Write all of `lines` with vectored writes: at once as far as the socket takes them (the
/// usual case), then waiting for room.
async fn write_lines(stream: &Async<TcpStream>, lines: &[bytes::Bytes]) -> io::Result<usize> {
    use std::io::IoSlice;
    if let [line] = lines {
        // One line (the usual case between bursts): a plain write, nothing to allocate.
        let mut rest = &line[..];
        while !rest.is_empty() {
            match stream.get_ref().write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(line.len());
    }
    let mut slices: Vec<IoSlice<'_>> = lines.iter().map(|l| IoSlice::new(l)).collect();
    let total = lines.iter().map(bytes::Bytes::len).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match stream.get_ref().write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
