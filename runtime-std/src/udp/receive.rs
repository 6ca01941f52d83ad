//! The audience's loop: one file from one presenter into the download folder.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use huddle_core::UserName;
use huddle_core::transfer::{
    AbortReason, Receiver, ReceiverEvent, ReceiverStats, TransferConfig, TransferId,
    TransferSecret, saved_name,
};

use super::files::{DatagramArena, PartFile};
use super::{DatagramSocket, MAX_WAIT, UdpError, WallClock, transient};

/// What to receive, from whom, under which transfer (all from the server's announcement).
#[derive(Debug, Clone)]
pub struct ReceiveJob {
    /// The download folder.
    pub dir: PathBuf,
    /// Who presents: the saved name starts with it.
    pub presenter: UserName,
    /// The base name the presenter offered (checked again here: it came from the network).
    pub file_name: String,
    /// Size announced by the server.
    pub size: u64,
    /// The transfer id the server issued.
    pub id: TransferId,
    /// The secret the server issued.
    pub secret: TransferSecret,
    /// Protocol knobs; the datagram size should match the sender's.
    pub config: TransferConfig,
    /// Flush the file to disk (fsync) before giving it its final name, so that a crash never
    /// leaves a truncated file under the final name. Normally `true`; a benchmark that
    /// measures the network rather than the disk turns it off.
    pub durable: bool,
}

/// How a successful receive went, for the closing line.
#[derive(Debug, Clone)]
pub struct ReceiveReport {
    /// Where the file was saved (`<dir>/<presenter>_<name>`, or with ` (n)` if that existed).
    pub saved_as: PathBuf,
    /// Bytes received (the file size).
    pub bytes: u64,
    /// From the start until the hash matched.
    pub elapsed: Duration,
    /// The address the file came from.
    pub from: Option<SocketAddr>,
    /// The machine's counters at the end (memory high-water mark included).
    pub stats: ReceiverStats,
}

/// Receive the announced file on `socket` into `job.dir`, blocking until it is verified and
/// saved, or the transfer aborted (then the `.part` file is removed).
///
/// `progress` is called now and then (at most every 100 ms) with the receiver's counters.
/// After success the function stays a little (until the sender has been quiet for half a
/// second) to confirm again if the sender missed the confirmation.
pub fn receive_file<S: DatagramSocket>(
    socket: &S,
    job: &ReceiveJob,
    mut progress: impl FnMut(&ReceiverStats),
) -> Result<ReceiveReport, UdpError> {
    let wanted = saved_name(&job.presenter, &job.file_name)?;
    let mut part = PartFile::create(&job.dir, &wanted, job.durable)?;
    socket
        .prepare()
        .map_err(UdpError::io("cannot configure the UDP socket"))?;

    let clock = WallClock::new();
    let mut receiver = Receiver::new(
        job.id,
        &job.secret,
        job.size,
        job.config.clone(),
        clock.now(),
    );
    let mut arena = DatagramArena::new();
    let mut peer: Option<SocketAddr> = None;
    let mut last_progress = clock.now();
    let mut outcome: Option<Result<(PathBuf, Duration), UdpError>> = None;

    loop {
        let now = clock.now();
        loop {
            match socket.recv_from(arena.space()) {
                Ok((n, from)) => {
                    if receiver.handle_datagram(&arena.take(n), now).is_ok() {
                        peer = Some(from);
                    }
                    // Handle each datagram's writes and ACK at once: memory stays at one
                    // datagram's worth of events even when the socket holds thousands.
                    handle_events(&mut part, &mut receiver, &mut outcome, &clock, now);
                    drain(&mut receiver, socket, peer, now)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(UdpError::io("cannot receive on the UDP socket")(e)),
            }
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        handle_events(&mut part, &mut receiver, &mut outcome, &clock, now);
        drain(&mut receiver, socket, peer, now)?;
        if now.millis_since(last_progress) >= 100 {
            last_progress = now;
            progress(&receiver.stats());
        }
        if receiver.is_finished() {
            let (saved_as, elapsed) =
                outcome.unwrap_or(Err(UdpError::Aborted(AbortReason::Cancelled)))?;
            let stats = receiver.stats();
            return Ok(ReceiveReport {
                saved_as,
                bytes: stats.file_size,
                elapsed,
                from: peer,
                stats,
            });
        }
        let wait = receiver
            .poll_timeout()
            .map_or(MAX_WAIT, |t| clock.until(t))
            .min(MAX_WAIT);
        if !wait.is_zero() {
            socket
                .wait(false, wait)
                .map_err(UdpError::io("cannot wait on the UDP socket"))?;
        }
    }
}

/// Carry out the receiver's file events; record the outcome when one comes.
fn handle_events(
    part: &mut PartFile,
    receiver: &mut Receiver,
    outcome: &mut Option<Result<(PathBuf, Duration), UdpError>>,
    clock: &WallClock,
    now: huddle_core::UnixMillis,
) {
    while let Some(ev) = receiver.poll_event() {
        match ev {
            ReceiverEvent::Write { offset, data } => {
                if part.write_at(offset, data).is_err() {
                    receiver.abort(AbortReason::LocalIo, now);
                }
            }
            ReceiverEvent::Complete { .. } => {
                *outcome = Some(part.finish().map(|p| (p, clock.elapsed())));
            }
            ReceiverEvent::Aborted(reason) => {
                part.discard();
                *outcome = Some(Err(UdpError::Aborted(reason)));
            }
        }
    }
}

fn drain<S: DatagramSocket>(
    receiver: &mut Receiver,
    socket: &S,
    peer: Option<SocketAddr>,
    now: huddle_core::UnixMillis,
) -> Result<(), UdpError> {
    while let Some(d) = receiver.poll_transmit(now) {
        let Some(to) = peer else { continue };
        match socket.send_to(&d, to) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || transient(&e) => {}
            Err(e) => return Err(UdpError::io("cannot send on the UDP socket")(e)),
        }
    }
    Ok(())
}
