//! One connection's outgoing bytes: a queue bounded in bytes, and the thread that drains it.
//!
//! The core thread must never block on a socket, or one client that stops reading would
//! stall every other client. So it only *queues* bytes here; a writer thread per connection
//! does the blocking writes. The queue is bounded in bytes: a client that lets more than the
//! limit pile up is not reading, and the driver disconnects it instead of buffering without
//! end.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use bytes::Bytes;

/// Largest chunk the writer gathers into one `write` call: many small lines, one syscall.
const GATHER: usize = 64 * 1024;

/// Too many bytes are waiting for this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow {
    /// Bytes already queued when the new ones were refused.
    pub(crate) queued: usize,
}

/// The core thread's end of one connection's queue. Dropping it lets the writer send what is
/// queued, then close the connection: that is how `Output::Close` is carried out.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer thread's end.
#[derive(Debug)]
pub(crate) struct Drain {
    rx: Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue that refuses more bytes once more than `limit` are waiting.
///
/// The check is on the backlog *before* the new bytes, so a long reply (a big `RDM`) always
/// reaches a client that keeps up; only a client already `limit` bytes behind is refused.
pub(crate) fn outbox(limit: usize) -> (Outbox, Drain) {
    let (tx, rx) = mpsc::channel();
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
    pub(crate) fn push(&self, bytes: Bytes) -> Result<(), Overflow> {
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Overflow { queued: before });
        }
        // A send error means the writer already stopped (the socket failed); the reader
        // reports the disconnect, so the bytes are simply dropped.
        let _ = self.tx.send(bytes);
        Ok(())
    }
}

impl Drain {
    /// Write everything queued until the queue's owner drops it, then shut the socket down.
    ///
    /// Returns the write error that ended it early, if any; the socket is shut down either
    /// way, so the connection's reader sees the end and reports the disconnect to the core.
    pub(crate) fn run(self, mut stream: TcpStream) -> Result<(), std::io::Error> {
        let result = self.write_all(&mut stream);
        let _ = stream.shutdown(Shutdown::Both);
        result
    }

    fn write_all(&self, stream: &mut TcpStream) -> Result<(), std::io::Error> {
        let mut buf = Vec::with_capacity(GATHER);
        while let Ok(first) = self.rx.recv() {
            buf.clear();
            buf.extend_from_slice(&first);
            while buf.len() < GATHER {
                match self.rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            stream.write_all(&buf)?;
            self.queued.fetch_sub(buf.len(), Ordering::AcqRel);
        }
        stream.flush()
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
        let taken = drain.rx.recv().unwrap();
        drain.queued.fetch_sub(taken.len(), Ordering::AcqRel);
        outbox.push(Bytes::from_static(b"abc")).unwrap();
    }

    #[test]
    fn a_large_message_is_accepted_when_the_client_keeps_up() {
        let (outbox, _drain) = outbox(4);
        outbox.push(Bytes::from(vec![b'a'; 100])).unwrap();
        assert!(outbox.push(Bytes::from_static(b"b")).is_err());
    }
}
