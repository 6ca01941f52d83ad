//! One connection's outgoing bytes: a queue bounded in bytes, shared by both runtimes.
//!
//! The thread that owns the core must never block on a socket, or one client that stops
//! reading would stall every other client. So it only *queues* bytes here; a writer per
//! connection (a thread in the std runtime, a task in the smol runtime) does the writes. The
//! queue is bounded in bytes: a client that lets more than the limit pile up is not reading,
//! and the driver disconnects it instead of buffering without end.
//!
//! The queue is an `async_channel`, which offers both a blocking and an async receive, so the
//! limit and the gathering of small lines into one write exist once for both runtimes.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_channel::{Receiver, Sender};
use bytes::Bytes;

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
    tx: Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer's end.
#[derive(Debug)]
pub struct Drain {
    rx: Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue that refuses more bytes once more than `limit` are waiting.
///
/// The check is on the backlog *before* the new bytes, so a long reply (a big `RDM`) always
/// reaches a client that keeps up; only a client already `limit` bytes behind is refused.
pub fn outbox(limit: usize) -> (Outbox, Drain) {
    let (tx, rx) = async_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            limit,
        },
        Drain { rx, queued },
    )
}

impl Outbox {
    /// Queue `bytes`, or refuse them if the client has fallen too far behind.
    pub fn push(&self, bytes: Bytes) -> Result<(), Overflow> {
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Overflow { queued: before });
        }
        // A send error means the writer already stopped (the socket failed); the reader
        // reports the disconnect, so the bytes are simply dropped.
        let _ = self.tx.try_send(bytes);
        Ok(())
    }
}

impl Drain {
    /// Write everything queued until the queue's owner drops it, then shut the socket down
    /// (the std runtime's writer thread).
    ///
    /// Returns the write error that ended it early, if any; the socket is shut down either
    /// way, so the connection's reader sees the end and reports the disconnect to the core.
    pub fn run(self, mut stream: TcpStream) -> Result<(), std::io::Error> {
        let result = self.write_all(&mut stream);
        let _ = stream.shutdown(Shutdown::Both);
        result
    }

    fn write_all(&self, stream: &mut TcpStream) -> Result<(), std::io::Error> {
        while let Ok(first) = self.rx.recv_blocking() {
            let chunk = self.gather(first);
            stream.write_all(&chunk)?;
            self.written(chunk.len());
        }
        stream.flush()
    }

    /// The next bytes to write, as many queued lines as fit in one write; `None` once the
    /// queue's owner dropped it and everything was taken (the async runtime's writer task).
    ///
    /// Nothing is held between calls, so an idle connection costs no buffer. Call
    /// [`Drain::written`] once the chunk is written.
    pub async fn next_chunk(&self) -> Option<Vec<u8>> {
        let first = self.rx.recv().await.ok()?;
        Some(self.gather(first))
    }

    /// `first`, followed by whatever else is already queued, up to [`GATHER`] bytes.
    fn gather(&self, first: Bytes) -> Vec<u8> {
        let mut chunk = Vec::with_capacity(first.len().max(GATHER.min(4096)));
        chunk.extend_from_slice(&first);
        while chunk.len() < GATHER {
            match self.rx.try_recv() {
                Ok(more) => chunk.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        chunk
    }

    /// `n` bytes left the queue for the socket: they no longer count against the limit.
    pub fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
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
        // The writer took the first message off the queue.
        let taken = drain.rx.recv_blocking().unwrap();
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
    fn queued_lines_are_gathered_into_one_chunk() {
        let (outbox, drain) = outbox(100);
        outbox.push(Bytes::from_static(b"one\n")).unwrap();
        outbox.push(Bytes::from_static(b"two\n")).unwrap();
        drop(outbox);
        let chunk = poll_once(drain.next_chunk());
        assert_eq!(chunk.as_deref(), Some(&b"one\ntwo\n"[..]));
        drain.written(8);
        assert_eq!(poll_once(drain.next_chunk()), None);
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
