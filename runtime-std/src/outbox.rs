//! One connection's plumbing between the core thread and the tasks that move its bytes,
//! shared by both runtimes: the [`Outbox`] of bytes to write and the [`Gate`] that lets its
//! reader read.
//!
//! The thread that owns the core must never block on a socket, or one client that stops
//! reading would stall every other client. So it only *queues* bytes here; a writer per
//! connection (a thread in the std runtime, a task in the smol runtime) does the writes and
//! reports each one to the core, which decides everything about limits (see
//! `huddle_core::server`): this queue has no limit of its own.
//!
//! The reader may have one chunk in flight to the core at a time, and reads nothing while
//! the core has said to pause: so what a flooding client sends waits in its socket (TCP
//! holds it back), never in this process's memory.
//!
//! An emptied queue gives its memory back: a server holds thousands of idle connections,
//! and none should keep the capacity of its last burst.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use event_listener::{Event, Listener};

/// Most bytes a writer hands to one vectored `write` call: many small lines, one syscall.
const GATHER: usize = 64 * 1024;

/// Most lines in one vectored write (below every system's `IOV_MAX`).
const MAX_SLICES: usize = 512;

/// A connection the core is not waiting on reports its writes once this many bytes are
/// unreported (the core asks for the rest when it needs it: `Output::CheckProgress`).
const REPORT_EVERY: u64 = 64 * 1024;

/// Queue capacity kept when a queue empties: enough for the usual trickle, while a burst's
/// peak capacity is given back (thousands of idle connections must not keep it).
const KEEP: usize = 64;

/// The core thread's end of one connection's output queue.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The writer's end.
#[derive(Debug)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Notified when bytes were queued and when the outbox is closed or cut.
    ready: Event,
    /// Bytes written to the socket so far.
    written: AtomicU64,
    /// A report of writes is on its way to the core and not yet taken: later writes ride
    /// along with it, so the core gets at most one report per connection at a time.
    report_pending: AtomicBool,
    /// Bytes of `written` the core has been told of.
    reported: AtomicU64,
    /// The core waits on this connection's output (it is paused): report every write.
    watched: AtomicBool,
    /// The core asked for progress: report the next write at once.
    report_next: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<Bytes>,
    /// No more bytes will come: write what is queued, then end.
    closed: bool,
    /// End now, dropping what is queued.
    cut: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks, but a poisoned one is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection's output queue: the core thread's end and the writer's.
pub fn outbox() -> (Outbox, Drain) {
    let shared = Arc::new(Shared::default());
    (
        Outbox {
            shared: Arc::clone(&shared),
        },
        Drain { shared },
    )
}

impl Outbox {
    /// Queue `bytes`; the writer is woken by [`Outbox::wake`] (once per batch, not per line).
    pub fn push(&self, bytes: Bytes) {
        lock(&self.shared.queue).lines.push_back(bytes);
    }

    /// Queue all of `lines` (emptied) under one lock.
    pub fn push_all(&self, lines: &mut Vec<Bytes>) {
        let mut q = lock(&self.shared.queue);
        q.lines.reserve(lines.len());
        q.lines.extend(lines.drain(..));
    }

    /// Bytes written since the last call, for the core; and the writer may report again.
    pub fn take_written(&self) -> usize {
        self.shared.report_pending.store(false, Ordering::SeqCst);
        let total = self.shared.written.load(Ordering::SeqCst);
        let before = self.shared.reported.swap(total, Ordering::SeqCst);
        usize::try_from(total.saturating_sub(before)).unwrap_or(usize::MAX)
    }

    /// Wake the writer to write what was pushed.
    pub fn wake(&self) {
        self.shared.ready.notify(1);
    }

    /// Write what is queued, then end.
    pub fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.wake();
    }

    /// End now; drop what is queued.
    pub fn cut(&self) {
        {
            let mut q = lock(&self.shared.queue);
            q.cut = true;
            q.lines = VecDeque::new();
        }
        self.wake();
    }

    /// Whether the core waits on this connection's output (every write is then reported).
    pub fn set_watched(&self, watched: bool) {
        self.shared.watched.store(watched, Ordering::SeqCst);
    }

    /// Report the next write at once (the core asked for progress).
    pub fn report_next(&self) {
        self.shared.report_next.store(true, Ordering::SeqCst);
    }

    /// Bytes the writer wrote to the socket so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }
}

/// What the writer finds when it looks at the queue.
enum Take {
    Lines,
    Empty,
    Done,
}

impl Drain {
    /// Move the next lines to write into `out` (up to [`GATHER`] bytes), blocking until
    /// there are some; false once the outbox was closed and everything taken, or cut (the
    /// std runtime's writer thread).
    pub fn next_blocking(&self, out: &mut Vec<Bytes>) -> bool {
        loop {
            match self.take(out) {
                Take::Lines => return true,
                Take::Done => return false,
                Take::Empty => {}
            }
            let listener = self.shared.ready.listen();
            // A push between `take` and `listen` would otherwise go unnoticed.
            match self.take(out) {
                Take::Lines => return true,
                Take::Done => return false,
                Take::Empty => listener.wait(),
            }
        }
    }

    /// Move the next lines to write into `out` (up to [`GATHER`] bytes); false once the
    /// outbox was closed and everything taken, or cut (the smol runtime's writer task).
    pub async fn next(&self, out: &mut Vec<Bytes>) -> bool {
        loop {
            match self.take(out) {
                Take::Lines => return true,
                Take::Done => return false,
                Take::Empty => {}
            }
            let listener = self.shared.ready.listen();
            match self.take(out) {
                Take::Lines => return true,
                Take::Done => return false,
                Take::Empty => listener.await,
            }
        }
    }

    /// The next bytes to write as one chunk, blocking (for tests and simple writers).
    pub fn next_chunk_blocking(&self) -> Option<Vec<u8>> {
        let mut lines = Vec::new();
        self.next_blocking(&mut lines).then(|| lines.concat())
    }

    /// The next bytes to write as one chunk (for tests and simple writers).
    pub async fn next_chunk(&self) -> Option<Vec<u8>> {
        let mut lines = Vec::new();
        self.next(&mut lines).await.then(|| lines.concat())
    }

    /// The first queued line and whatever follows it, up to [`GATHER`] bytes and
    /// [`MAX_SLICES`] lines. An emptied queue gives back the capacity of a burst.
    fn take(&self, out: &mut Vec<Bytes>) -> Take {
        let mut q = lock(&self.shared.queue);
        if q.cut {
            return Take::Done;
        }
        if q.lines.is_empty() {
            return if q.closed { Take::Done } else { Take::Empty };
        }
        let mut size = 0;
        while let Some(line) = q.lines.front() {
            if !out.is_empty() && (size + line.len() > GATHER || out.len() >= MAX_SLICES) {
                break;
            }
            size += line.len();
            if let Some(line) = q.lines.pop_front() {
                out.push(line);
            }
        }
        if q.lines.is_empty() && q.lines.capacity() > KEEP {
            q.lines = VecDeque::new();
        }
        Take::Lines
    }

    /// `n` more bytes were written to the socket. Returns whether the core should be sent a
    /// report now ([`Outbox::take_written`] collects the bytes written meanwhile too): when
    /// it waits on this connection, or once [`REPORT_EVERY`] bytes are unreported.
    pub fn written(&self, n: usize) -> bool {
        let total = self.shared.written.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let unreported = total.saturating_sub(self.shared.reported.load(Ordering::SeqCst));
        let due = self.shared.watched.load(Ordering::SeqCst)
            || self.shared.report_next.swap(false, Ordering::SeqCst)
            || unreported >= REPORT_EVERY;
        due && !self.shared.report_pending.swap(true, Ordering::SeqCst)
    }
}

/// Write all of `lines` to `stream` with as few vectored writes as it takes (the std
/// runtime's blocking writer).
pub fn write_lines(mut stream: &TcpStream, lines: &[Bytes]) -> std::io::Result<usize> {
    use std::io::{IoSlice, Write};
    if let [line] = lines {
        // One line (the usual case between bursts): nothing to allocate.
        stream.write_all(line)?;
        return Ok(line.len());
    }
    let mut slices: Vec<IoSlice<'_>> = lines.iter().map(|l| IoSlice::new(l)).collect();
    let total: usize = lines.iter().map(Bytes::len).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match stream.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// When a connection's reader may read: one chunk in flight to the core at a time, nothing
/// while the core has paused it, nothing once it is shut.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    event: Event,
}

#[derive(Debug)]
struct GateState {
    paused: bool,
    /// Chunks the reader may still send before the core has taken the last one.
    credit: usize,
    shut: bool,
}

impl Default for GateState {
    fn default() -> Self {
        Self {
            paused: false,
            credit: 1,
            shut: false,
        }
    }
}

impl Gate {
    /// A gate open for one chunk.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn try_pass(&self) -> Option<bool> {
        let mut s = lock(&self.state);
        if s.shut {
            return Some(false);
        }
        if !s.paused && s.credit > 0 {
            s.credit -= 1;
            return Some(true);
        }
        None
    }

    /// Wait until the reader may read one chunk (true), or the gate is shut (false).
    pub fn pass_blocking(&self) -> bool {
        loop {
            if let Some(v) = self.try_pass() {
                return v;
            }
            let listener = self.event.listen();
            if let Some(v) = self.try_pass() {
                return v;
            }
            listener.wait();
        }
    }

    /// Wait until the reader may read one chunk (true), or the gate is shut (false).
    pub async fn pass(&self) -> bool {
        loop {
            if let Some(v) = self.try_pass() {
                return v;
            }
            let listener = self.event.listen();
            if let Some(v) = self.try_pass() {
                return v;
            }
            listener.await;
        }
    }

    /// The core took the chunk in flight.
    pub fn taken(&self) {
        lock(&self.state).credit = 1;
        self.event.notify(1);
    }

    /// Pause or resume reading.
    pub fn set_paused(&self, paused: bool) {
        lock(&self.state).paused = paused;
        self.event.notify(1);
    }

    /// Stop the reader for good (the connection is being torn down).
    pub fn shut(&self) {
        lock(&self.state).shut = true;
        self.event.notify(usize::MAX);
    }
}

/// Of the bytes written to `stream`, how many its peer has not acknowledged yet (Linux's
/// `SIOCOUTQ`); 0 where that cannot be known.
pub fn unacked(stream: &TcpStream) -> usize {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one c_int through the pointer, which is valid
        // for the duration of the call; the descriptor is owned by `stream`.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if rc == 0 {
            return usize::try_from(n).unwrap_or(0);
        }
    }
    let _ = stream;
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_lines_are_gathered_into_one_chunk_then_the_end_is_seen() {
        let (outbox, drain) = outbox();
        outbox.push(Bytes::from_static(b"one\n"));
        outbox.push(Bytes::from_static(b"two\n"));
        outbox.close();
        let chunk = poll_once(drain.next_chunk());
        assert_eq!(chunk.as_deref(), Some(&b"one\ntwo\n"[..]));
        assert!(
            !drain.written(8),
            "small writes wait until the core needs them"
        );
        assert_eq!(outbox.take_written(), 8, "or asks for them");
        outbox.set_watched(true);
        assert!(drain.written(2), "the core waits on it: reported at once");
        assert!(
            !drain.written(2),
            "the next rides along until the core takes the report"
        );
        assert_eq!(outbox.written(), 12);
        assert_eq!(outbox.take_written(), 4);
        outbox.set_watched(false);
        assert!(
            drain.written(REPORT_EVERY as usize),
            "a lot is reported anyway"
        );
        assert_eq!(poll_once(drain.next_chunk()), None);
    }

    #[test]
    fn a_cut_drops_what_is_queued() {
        let (outbox, drain) = outbox();
        outbox.push(Bytes::from_static(b"one\n"));
        outbox.cut();
        assert_eq!(poll_once(drain.next_chunk()), None);
    }

    #[test]
    fn a_waiting_writer_thread_is_woken() {
        let (outbox, drain) = outbox();
        let writer = std::thread::spawn(move || drain.next_chunk_blocking());
        outbox.push(Bytes::from_static(b"hi\n"));
        outbox.wake();
        assert_eq!(writer.join().unwrap().as_deref(), Some(&b"hi\n"[..]));
    }

    #[test]
    fn the_gate_lets_one_chunk_through_until_it_is_taken_and_none_while_paused() {
        let gate = Gate::new();
        assert_eq!(gate.try_pass(), Some(true));
        assert_eq!(gate.try_pass(), None);
        gate.taken();
        gate.set_paused(true);
        assert_eq!(gate.try_pass(), None);
        gate.set_paused(false);
        assert_eq!(gate.try_pass(), Some(true));
        gate.shut();
        assert_eq!(gate.try_pass(), Some(false));
    }

    /// Poll a future that is ready at once (the queue already holds everything).
    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the queue was not ready"),
        }
    }
}
