//! One connection's outgoing bytes: a queue bounded in bytes, shared by both runtimes.
//!
//! The thread that owns the core must never block on a socket, or one client that stops
//! reading would stall every other client. So it only *queues* bytes here; a writer per
//! connection (a thread in the std runtime, a task in the smol runtime) does the writes. The
//! queue is bounded in bytes: a client that lets more than the limit pile up is not reading,
//! and the driver disconnects it instead of buffering without end.
//!
//! The queue is a `VecDeque` under a mutex, with an [`Event`] to wake the writer either way
//! (blocking or async), so the limit and the gathering of small lines into one write exist
//! once for both runtimes. An emptied queue gives its memory back: a server holds thousands
//! of idle connections, and none should keep the capacity of its last burst.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use event_listener::{Event, Listener};

/// Largest chunk a writer gathers into one `write` call: many small lines, one syscall.
const GATHER: usize = 64 * 1024;

/// Too many bytes are waiting for this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// Bytes already queued when the new ones were refused.
    pub queued: usize,
}

/// The core's end of one connection's queue. Dropping it lets the writer send what is queued,
/// then close the connection: that is how `Output::Close` is carried out.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    limit: usize,
}

/// The writer's end.
#[derive(Debug)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Notified on every push and when the outbox is dropped.
    ready: Event,
}

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<Bytes>,
    /// Bytes queued or taken by the writer and not yet written.
    pending: usize,
    /// The outbox was dropped: no more bytes will come.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, but a poisoned queue is still a valid queue.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queue that refuses more bytes once more than `limit` are waiting.
///
/// The check is on the backlog *before* the new bytes, so a long reply (a big `RDM`) always
/// reaches a client that keeps up; only a client already `limit` bytes behind is refused.
pub fn outbox(limit: usize) -> (Outbox, Drain) {
    let shared = Arc::new(Shared::default());
    (
        Outbox {
            shared: Arc::clone(&shared),
            limit,
        },
        Drain { shared },
    )
}

impl Outbox {
    /// Queue `bytes`, or refuse them if the client has fallen too far behind.
    pub fn push(&self, bytes: Bytes) -> Result<(), Overflow> {
        {
            let mut q = self.shared.lock();
            if q.pending > self.limit {
                return Err(Overflow { queued: q.pending });
            }
            q.pending += bytes.len();
            q.lines.push_back(bytes);
        }
        self.shared.ready.notify(1);
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify(1);
    }
}

/// What the writer finds when it looks at the queue.
enum Take {
    Chunk(Vec<u8>),
    Empty,
    Closed,
}

impl Drain {
    /// Write everything queued until the queue's owner drops it, then shut the socket down
    /// (the std runtime's writer thread).
    ///
    /// Returns the write error that ended it early, if any; the socket is shut down either
    /// way, so the connection's reader sees the end and reports the disconnect to the core.
    pub fn run(self, stream: &TcpStream) -> Result<(), std::io::Error> {
        let result = self.write_all(stream);
        let _ = stream.shutdown(Shutdown::Both);
        result
    }

    fn write_all(&self, mut stream: &TcpStream) -> Result<(), std::io::Error> {
        while let Some(chunk) = self.next_chunk_blocking() {
            stream.write_all(&chunk)?;
            self.written(chunk.len());
        }
        stream.flush()
    }

    fn next_chunk_blocking(&self) -> Option<Vec<u8>> {
        loop {
            match self.take() {
                Take::Chunk(chunk) => return Some(chunk),
                Take::Closed => return None,
                Take::Empty => {}
            }
            let listener = self.shared.ready.listen();
            // A push between `take` and `listen` would otherwise go unnoticed.
            match self.take() {
                Take::Chunk(chunk) => return Some(chunk),
                Take::Closed => return None,
                Take::Empty => listener.wait(),
            }
        }
    }

    /// The next bytes to write, as many queued lines as fit in one write; `None` once the
    /// queue's owner dropped it and everything was taken (the smol runtime's writer task).
    ///
    /// Nothing is held between calls, so an idle connection costs no buffer. Call
    /// [`Drain::written`] once the chunk is written.
    pub async fn next_chunk(&self) -> Option<Vec<u8>> {
        loop {
            match self.take() {
                Take::Chunk(chunk) => return Some(chunk),
                Take::Closed => return None,
                Take::Empty => {}
            }
            let listener = self.shared.ready.listen();
            // A push between `take` and `listen` would otherwise go unnoticed.
            match self.take() {
                Take::Chunk(chunk) => return Some(chunk),
                Take::Closed => return None,
                Take::Empty => listener.await,
            }
        }
    }

    /// The first queued line and whatever follows it, up to [`GATHER`] bytes. An emptied
    /// queue frees its capacity.
    fn take(&self) -> Take {
        let mut q = self.shared.lock();
        if q.lines.is_empty() {
            return if q.closed { Take::Closed } else { Take::Empty };
        }
        // The first line whole (however long), then as many more as fit under GATHER.
        let mut size = 0;
        let mut count = 0;
        for line in &q.lines {
            if count > 0 && size + line.len() > GATHER {
                break;
            }
            size += line.len();
            count += 1;
        }
        let mut chunk = Vec::with_capacity(size);
        for line in q.lines.drain(..count) {
            chunk.extend_from_slice(&line);
        }
        if q.lines.is_empty() {
            q.lines = VecDeque::new();
        }
        Take::Chunk(chunk)
    }

    /// `n` bytes left the queue for the socket: they no longer count against the limit.
    pub fn written(&self, n: usize) {
        let mut q = self.shared.lock();
        q.pending = q.pending.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bytes_once_the_backlog_exceeds_the_limit_until_the_writer_catches_up() {
        let (outbox, drain) = outbox(10);
        outbox.push(Bytes::from_static(b"123456")).unwrap();
        outbox.push(Bytes::from_static(b"7890")).unwrap();
        outbox.push(Bytes::from_static(b"a")).unwrap();
        assert_eq!(
            outbox.push(Bytes::from_static(b"x")),
            Err(Overflow { queued: 11 })
        );
        // The writer took everything off the queue and wrote it.
        let Some(taken) = drain.next_chunk_blocking() else {
            panic!("nothing queued")
        };
        drain.written(taken.len());
        outbox.push(Bytes::from_static(b"abc")).unwrap();
    }

    #[test]
    fn a_large_message_is_accepted_when_the_client_keeps_up() {
        let (outbox, _drain) = outbox(4);
        outbox.push(Bytes::from(vec![b'a'; 100])).unwrap();
        assert!(outbox.push(Bytes::from_static(b"b")).is_err());
    }

    #[test]
    fn queued_lines_are_gathered_into_one_chunk_then_the_end_is_seen() {
        let (outbox, drain) = outbox(100);
        outbox.push(Bytes::from_static(b"one\n")).unwrap();
        outbox.push(Bytes::from_static(b"two\n")).unwrap();
        drop(outbox);
        let chunk = poll_once(drain.next_chunk());
        assert_eq!(chunk.as_deref(), Some(&b"one\ntwo\n"[..]));
        drain.written(8);
        assert_eq!(poll_once(drain.next_chunk()), None);
    }

    #[test]
    fn a_waiting_writer_thread_is_woken_by_a_push() {
        let (outbox, drain) = outbox(100);
        let writer = std::thread::spawn(move || drain.next_chunk_blocking());
        outbox.push(Bytes::from_static(b"hi\n")).unwrap();
        assert_eq!(writer.join().unwrap().as_deref(), Some(&b"hi\n"[..]));
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
