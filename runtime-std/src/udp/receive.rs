//! The audience's loop: one file from one presenter into the download folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use huddle_core::UserName;
use huddle_core::transfer::{
    AbortReason, Receiver, ReceiverEvent, ReceiverStats, TransferConfig, TransferId,
    TransferSecret, saved_name, unique_name,
};

use super::{DatagramSocket, MAX_WAIT, UdpError, WallClock, transient};

/// Bytes the `.part` writer gathers before writing: large sequential writes are cheap.
const WRITE_BUFFER: usize = 1 << 20;
/// Most pieces in one `writev` (Linux's IOV_MAX is 1024).
const MAX_IOVECS: usize = 512;

/// Collects in-order writes as [`Bytes`] and writes them with one vectored write per MiB:
/// large writes without copying the data into a user-space buffer first.
struct GatherWriter {
    file: File,
    queued: Vec<Bytes>,
    queued_len: usize,
    /// File offset just past the queued bytes.
    pos: u64,
}

impl GatherWriter {
    fn new(file: File) -> Self {
        Self {
            file,
            queued: Vec::new(),
            queued_len: 0,
            pos: 0,
        }
    }

    fn write_at(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        if offset != self.pos {
            self.flush()?;
            self.file.seek(io::SeekFrom::Start(offset))?;
            self.pos = offset;
        }
        self.pos += data.len() as u64;
        self.queued_len += data.len();
        self.queued.push(data);
        if self.queued_len >= WRITE_BUFFER || self.queued.len() >= MAX_IOVECS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut start = 0;
        while start < self.queued.len() {
            let slices: Vec<IoSlice<'_>> = self.queued[start..]
                .iter()
                .map(|b| IoSlice::new(b))
                .collect();
            let mut n = self.file.write_vectored(&slices)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 && start < self.queued.len() {
                let first = &mut self.queued[start];
                if n >= first.len() {
                    n -= first.len();
                    start += 1;
                } else {
                    first.advance(n);
                    n = 0;
                }
            }
        }
        self.queued.clear();
        self.queued_len = 0;
        Ok(())
    }

    fn into_file(mut self) -> io::Result<File> {
        self.flush()?;
        Ok(self.file)
    }
}

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
    let mut arena = Arena::new();
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
                    part.handle_events(&mut receiver, &mut outcome, &clock, now);
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
        part.handle_events(&mut receiver, &mut outcome, &clock, now);
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

/// Receive buffers carved out of large zeroed blocks: datagrams become [`Bytes`] without a
/// copy or an allocation each, and without fresh pages being faulted in per datagram while
/// out-of-order data is held.
struct Arena {
    block: BytesMut,
}

/// Size of one arena block.
const ARENA_BLOCK: usize = 4 << 20;
/// Room for the largest UDP datagram.
const DATAGRAM_ROOM: usize = 65_536;

impl Arena {
    fn new() -> Self {
        Self {
            block: BytesMut::zeroed(ARENA_BLOCK),
        }
    }

    /// Room for the next datagram.
    fn space(&mut self) -> &mut [u8] {
        if self.block.len() < DATAGRAM_ROOM {
            self.block = BytesMut::zeroed(ARENA_BLOCK);
        }
        &mut self.block[..DATAGRAM_ROOM]
    }

    /// The first `n` bytes of the room, as a datagram.
    fn take(&mut self, n: usize) -> Bytes {
        self.block.split_to(n.min(self.block.len())).freeze()
    }
}

/// The `.part` file being written, and where it goes when verified.
struct PartFile {
    dir: PathBuf,
    wanted: String,
    path: PathBuf,
    writer: Option<GatherWriter>,
    durable: bool,
}

impl PartFile {
    /// Create `<dir>/<name>.part` exclusively, `name` made unique against the folder.
    fn create(dir: &Path, wanted: &str, durable: bool) -> Result<Self, UdpError> {
        for _ in 0..16 {
            let name = unique_name(wanted, |n| {
                dir.join(n).exists() || dir.join(format!("{n}.part")).exists()
            })?;
            let path = dir.join(format!("{name}.part"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => {
                    return Ok(Self {
                        dir: dir.to_path_buf(),
                        wanted: wanted.to_owned(),
                        path,
                        writer: Some(GatherWriter::new(f)),
                        durable,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(UdpError::io(format!("cannot create {}", path.display()))(e)),
            }
        }
        Err(UdpError::io(format!(
            "cannot create a .part file in {}",
            dir.display()
        ))(io::Error::other("the folder keeps changing")))
    }

    /// Carry out the receiver's file events; record the outcome when one comes.
    fn handle_events(
        &mut self,
        receiver: &mut Receiver,
        outcome: &mut Option<Result<(PathBuf, Duration), UdpError>>,
        clock: &WallClock,
        now: huddle_core::UnixMillis,
    ) {
        while let Some(ev) = receiver.poll_event() {
            match ev {
                ReceiverEvent::Write { offset, data } => {
                    if self.write_at(offset, data).is_err() {
                        receiver.abort(AbortReason::LocalIo, now);
                    }
                }
                ReceiverEvent::Complete { .. } => {
                    *outcome = Some(self.finish().map(|p| (p, clock.elapsed())));
                }
                ReceiverEvent::Aborted(reason) => {
                    self.discard();
                    *outcome = Some(Err(UdpError::Aborted(reason)));
                }
            }
        }
    }

    fn write_at(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the .part file is closed"));
        };
        w.write_at(offset, data)
    }

    fn discard(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Flush the `.part` file to disk and give it its final name, never replacing an existing
    /// file: a hard link fails if the name exists (then the next free name is tried), where a
    /// rename would silently overwrite.
    fn finish(&mut self) -> Result<PathBuf, UdpError> {
        let Some(w) = self.writer.take() else {
            return Err(UdpError::Aborted(AbortReason::LocalIo));
        };
        let synced = w.into_file().and_then(|file| {
            if self.durable {
                file.sync_all()
            } else {
                Ok(())
            }
        });
        if let Err(e) = synced {
            let _ = fs::remove_file(&self.path);
            return Err(UdpError::io("cannot write the received file")(e));
        }
        for _ in 0..16 {
            let name = unique_name(&self.wanted, |n| self.dir.join(n).exists())?;
            let target = self.dir.join(&name);
            match fs::hard_link(&self.path, &target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.path);
                    return Ok(target);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) if !target.exists() => {
                    // No hard links on this file system: rename, having just checked the name.
                    fs::rename(&self.path, &target).map_err(UdpError::io(format!(
                        "cannot rename to {}",
                        target.display()
                    )))?;
                    return Ok(target);
                }
                Err(_) => continue,
            }
        }
        Err(UdpError::io(format!(
            "cannot save the received file in {}",
            self.dir.display()
        ))(io::Error::other("the folder keeps changing")))
    }
}

impl Drop for PartFile {
    /// A `.part` file never outlives its transfer, even when the loop fails with an error.
    fn drop(&mut self) {
        self.discard();
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
