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
//!   and a writer task. No task holds a buffer while it waits: the reader waits for
//!   readiness, then reads into a stack buffer and hands on exactly the bytes read; the
//!   writer waits on its outbox and gathers a chunk only when there is something to send.
//!   An idle connection costs its socket, two small suspended tasks and its empty outbox.
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
use huddle_runtime_std::driver::{self, Driver, INPUT_QUEUE, Input, READ_CHUNK, Transport};
use huddle_runtime_std::outbox::Drain;
use smol::channel::{Receiver, Sender};
use smol::{Async, Executor, Task, Timer};

pub use huddle_runtime_std::server::{ServerError, ServerHandle, ServerOptions};

/// A connection as this runtime holds it: shared by its reader task, its writer task and the
/// core thread (which may cut it).
type Stream = Arc<Async<TcpStream>>;

/// Start a server and return once it is listening, its data loaded and its startup records
/// (e.g. the emptied `userlog.txt`) durable.
pub fn spawn_server(opts: ServerOptions) -> Result<ServerHandle, ServerError> {
    let loaded = driver::load(&opts)?;
    let console = loaded.console().clone();
    let bind_error = |source| ServerError::Bind {
        addr: opts.bind,
        source,
    };
    let listener = Async::<TcpListener>::bind(opts.bind).map_err(bind_error)?;
    let local_addr = listener.get_ref().local_addr().map_err(bind_error)?;

    let (input_tx, inputs) = smol::channel::bounded(INPUT_QUEUE);
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
        write_timeout: opts.write_timeout,
        acceptor: Some(acceptor),
        io: Some((io_thread, io_stop)),
    };
    // Sending fails only if the core thread already ended; joining then reports why.
    let stop = move || {
        let _ = input_tx.send_blocking(Input::Shutdown);
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
    inputs: Receiver<Input<Async<TcpStream>>>,
    input_tx: Sender<Input<Async<TcpStream>>>,
    /// Every socket whose reader has not reported its end, to cut them all at shutdown.
    sockets: HashMap<ConnId, Stream>,
    /// Every writer task holds a clone of the sender; all gone means all writers finished.
    writers_done: Option<(Sender<()>, Receiver<()>)>,
    console: Console,
    write_timeout: Duration,
    acceptor: Option<Task<()>>,
    /// The I/O thread and the sender whose drop stops it.
    io: Option<(JoinHandle<()>, Sender<()>)>,
}

impl Transport for Tasks {
    type Stream = Async<TcpStream>;

    fn wait(&mut self, deadline: Option<UnixMillis>) -> Option<Input<Async<TcpStream>>> {
        // The transport holds a sender itself, so the channel cannot close.
        let next = async { Some(self.inputs.recv().await.unwrap_or(Input::Shutdown)) };
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

    fn try_next(&mut self) -> Option<Input<Async<TcpStream>>> {
        // Empty or closed: nothing waiting either way.
        self.inputs.try_recv().ok()
    }

    fn open(
        &mut self,
        conn: ConnId,
        stream: Async<TcpStream>,
        peer: SocketAddr,
        drain: Drain,
    ) -> io::Result<()> {
        // Replies are small lines that a person waits for: send them at once.
        stream.get_ref().set_nodelay(true)?;
        let stream = Arc::new(stream);
        let done = self.writers_done.as_ref().map(|(tx, _)| tx.clone());
        let writer = write_loop(
            Arc::clone(&stream),
            drain,
            self.write_timeout,
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
            .spawn(read_loop(conn, Arc::clone(&stream), self.input_tx.clone()))
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
        // Readers waiting on a full input queue see it closed and stop.
        self.inputs.close();
        if let Some((thread, stop)) = self.io.take() {
            drop(stop);
            let _ = thread.join();
        }
        // Tasks still on the executor (readers of cut sockets) are cancelled when the driver,
        // which holds the last reference to it, is dropped.
    }
}

/// Accept until cancelled. A failure (out of file descriptors, say) is reported and retried
/// after a pause rather than in a spin.
async fn accept_loop(
    listener: Async<TcpListener>,
    tx: Sender<Input<Async<TcpStream>>>,
    console: Console,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if tx.send(Input::Accepted(stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                console.note(&format!("cannot accept a connection: {e}"));
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Feed a connection's bytes to the core thread until it ends, then report the end.
///
/// While waiting, the task holds only its socket and its sender: the read buffer lives on
/// the executor thread's stack for the length of one non-blocking read.
async fn read_loop(conn: ConnId, stream: Stream, tx: Sender<Input<Async<TcpStream>>>) {
    let error = loop {
        match read_now(stream.get_ref()) {
            Ok(Some(bytes)) if bytes.is_empty() => break None,
            Ok(Some(bytes)) => {
                if tx.send(Input::Bytes(conn, bytes)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                if let Err(e) = stream.readable().await {
                    break Some(e);
                }
            }
            Err(e) => break Some(e),
        }
    };
    let _ = tx.send(Input::Closed(conn, error)).await;
}

/// One non-blocking read: `Some(bytes)` (empty at the end of the stream), or `None` if
/// nothing is there yet.
fn read_now(mut stream: &TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(n) => return Ok(Some(buf[..n].to_vec())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write what the outbox yields until the driver drops it, then shut the socket down (the
/// reader then reports the end to the core). A client that accepts no bytes for
/// `write_timeout` is cut off, so a stuck peer cannot hold its socket forever.
async fn write_loop(
    stream: Stream,
    drain: Drain,
    write_timeout: Duration,
    console: Console,
    peer: SocketAddr,
    conn: ConnId,
) {
    let result = async {
        while let Some(chunk) = drain.next_chunk().await {
            write_chunk(&stream, &chunk, write_timeout).await?;
            drain.written(chunk.len());
        }
        Ok::<(), io::Error>(())
    }
    .await;
    if let Err(e) = result {
        console.note(&format!("{peer} ({conn}): cannot send, disconnecting: {e}"));
    }
    let _ = stream.get_ref().shutdown(Shutdown::Both);
}

/// Write all of `chunk`: at once as far as the socket takes it (the usual case, which costs
/// no timer), then waiting for room, at most `timeout` each time (what `SO_SNDTIMEO` does for
/// the std runtime's blocking writes).
async fn write_chunk(
    stream: &Async<TcpStream>,
    mut chunk: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    while !chunk.is_empty() {
        match stream.get_ref().write(chunk) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => chunk = &chunk[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let room =
                    smol::future::or(async { stream.writable().await.map(|()| true) }, async {
                        Timer::after(timeout).await;
                        Ok(false)
                    })
                    .await?;
                if !room {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client accepted no bytes for {} s",
                            timeout.as_secs_f64()
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
