//! The presenter's loop: one file to one peer over a UDP socket.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::transfer::{
    Sender, SenderEvent, SenderStats, TransferConfig, TransferId, TransferSecret,
};

use super::files::SourceFile;
use super::{DatagramSocket, MAX_WAIT, UdpError, WallClock, transient};

/// What to send, to whom, under which transfer (all from the server's handshake).
#[derive(Debug, Clone)]
pub struct SendJob {
    /// The file on the presenter's disk.
    pub path: PathBuf,
    /// Where the audience's client listens.
    pub peer: SocketAddr,
    /// The transfer id the server issued.
    pub id: TransferId,
    /// The secret the server issued.
    pub secret: TransferSecret,
    /// Protocol knobs (datagram size, timeouts, rate cap).
    pub config: TransferConfig,
}

/// How a successful send went, for the closing line.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Bytes sent (the file size).
    pub bytes: u64,
    /// From the first datagram to the receiver's confirmation.
    pub elapsed: Duration,
    /// The machine's counters at the end.
    pub stats: SenderStats,
}

/// Send `job.path` to `job.peer` over `socket`, blocking until the receiver confirmed the
/// verified file or the transfer aborted.
///
/// `progress` is called now and then (at most every 100 ms) with the sender's counters, for a
/// progress bar. The socket is switched to non-blocking mode; datagrams on it that belong to
/// other transfers are ignored, so give this function a socket of its own (a client that
/// multiplexes uses `TransferSet` instead).
pub fn send_file<S: DatagramSocket>(
    socket: &S,
    job: &SendJob,
    mut progress: impl FnMut(&SenderStats),
) -> Result<SendReport, UdpError> {
    let mut file = SourceFile::open(&job.path)?;
    socket
        .prepare()
        .map_err(UdpError::io("cannot configure the UDP socket"))?;

    let clock = WallClock::new();
    let mut sender = Sender::new(
        job.id,
        &job.secret,
        file.len(),
        job.config.clone(),
        clock.now(),
    );
    let mut buf = vec![0u8; 65_536];
    let mut pending: Option<Bytes> = None;
    let mut last_progress = clock.now();

    loop {
        let now = clock.now();
        // 1. Everything the network has for us.
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, _from)) => {
                    let _ = sender.handle_datagram(&Bytes::copy_from_slice(&buf[..n]), now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(UdpError::io("cannot receive on the UDP socket")(e)),
            }
        }
        // 2. Timers.
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        // 3. File requests and outcomes.
        while let Some(ev) = sender.poll_event() {
            match ev {
                SenderEvent::Read { offset, len } => match file.read_at(offset, len) {
                    Ok(data) => sender.handle_file_data(offset, data, now),
                    Err(_) => sender.abort(huddle_core::transfer::AbortReason::LocalIo, now),
                },
                SenderEvent::Complete => {
                    flush_control(socket, &mut sender, job.peer, now);
                    return Ok(SendReport {
                        bytes: file.len(),
                        elapsed: clock.elapsed(),
                        stats: sender.stats(),
                    });
                }
                SenderEvent::Aborted(reason) => {
                    flush_control(socket, &mut sender, job.peer, now);
                    return Err(UdpError::Aborted(reason));
                }
            }
        }
        // 4. Datagrams, as many as pacing allows.
        let mut blocked = false;
        loop {
            let Some(d) = pending.take().or_else(|| sender.poll_transmit(now)) else {
                break;
            };
            match socket.send_to(&d, job.peer) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pending = Some(d);
                    blocked = true;
                    break;
                }
                // A full interface queue or an ICMP error: the protocol treats it as a loss.
                Err(e) if transient(&e) => {}
                Err(e) => return Err(UdpError::io("cannot send on the UDP socket")(e)),
            }
        }
        if now.millis_since(last_progress) >= 100 {
            last_progress = now;
            progress(&sender.stats());
        }
        // 5. Sleep until a datagram, the next timer, or room in the send buffer.
        let wait = sender
            .poll_timeout()
            .map_or(MAX_WAIT, |t| clock.until(t))
            .min(MAX_WAIT);
        if !wait.is_zero() {
            socket
                .wait(blocked, wait)
                .map_err(UdpError::io("cannot wait on the UDP socket"))?;
        }
    }
}

/// Send the last datagrams of a finished machine (an `Abort` for the peer), best effort.
fn flush_control<S: DatagramSocket>(
    socket: &S,
    sender: &mut Sender,
    peer: SocketAddr,
    now: huddle_core::UnixMillis,
) {
    while let Some(d) = sender.poll_transmit(now) {
        let _ = socket.send_to(&d, peer);
    }
}
