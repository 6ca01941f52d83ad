//! File and buffer helpers of the UDP driver, public so that a client runtime driving a
//! `huddle_core::transfer::TransferSet` (several transfers on one socket) does its I/O the
//! same way [`super::send_file`] and [`super::receive_file`] do.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use huddle_core::transfer::{AbortReason, unique_name};

use super::UdpError;

/// The file a presenter sends, read sequentially as the sender asks.
pub struct SourceFile {
    file: File,
    pos: u64,
    len: u64,
}

impl SourceFile {
    /// Open `path` for sending: it must be a readable regular file. Returns it and its size.
    pub fn open(path: &Path) -> Result<Self, UdpError> {
        let bad = |reason: String| UdpError::BadSource {
            path: path.to_path_buf(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let file = File::open(path).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            file,
            pos: 0,
            len: meta.len(),
        })
    }

    /// Size of the file when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read exactly `len` bytes at `offset` (a `SenderEvent::Read`). Reads are sequential, so
    /// no seek is needed normally; a file that shrank meanwhile gives an error.
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        if self.pos != offset {
            self.file.seek(io::SeekFrom::Start(offset))?;
            self.pos = offset;
        }
        let mut data = BytesMut::zeroed(len);
        self.file.read_exact(&mut data)?;
        self.pos += len as u64;
        Ok(data.freeze())
    }
}

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

/// Receive buffers carved out of large zeroed blocks: datagrams become [`Bytes`] without a
/// copy or an allocation each. (The core copies the few datagrams it must hold out of order,
/// so a held datagram never pins a whole block.)
pub struct DatagramArena {
    block: BytesMut,
}

/// Size of one arena block.
const ARENA_BLOCK: usize = 4 << 20;
/// Room for the largest UDP datagram.
const DATAGRAM_ROOM: usize = 65_536;

impl DatagramArena {
    /// An arena with its first block.
    pub fn new() -> Self {
        Self {
            block: BytesMut::zeroed(ARENA_BLOCK),
        }
    }

    /// Room for the next datagram (receive into it, then call [`DatagramArena::take`]).
    pub fn space(&mut self) -> &mut [u8] {
        if self.block.len() < DATAGRAM_ROOM {
            self.block = BytesMut::zeroed(ARENA_BLOCK);
        }
        &mut self.block[..DATAGRAM_ROOM]
    }

    /// The first `n` bytes of the room, as a datagram.
    pub fn take(&mut self, n: usize) -> Bytes {
        self.block.split_to(n.min(self.block.len())).freeze()
    }
}

impl Default for DatagramArena {
    fn default() -> Self {
        Self::new()
    }
}

/// The `.part` file of a transfer being received, and where it goes once verified.
///
/// What a driver does with a receiver's events: [`PartFile::write_at`] for
/// `ReceiverEvent::Write`, [`PartFile::finish`] for `Complete`, [`PartFile::discard`] (or
/// just dropping it) for `Aborted`. Dropping an unfinished `PartFile` deletes the `.part`
/// file, so it never outlives its transfer, even when the driver fails with an error.
pub struct PartFile {
    dir: PathBuf,
    wanted: String,
    path: PathBuf,
    writer: Option<GatherWriter>,
    durable: bool,
}

impl PartFile {
    /// Create `<dir>/<name>.part` exclusively, `name` (a checked saved name, see
    /// `huddle_core::transfer::saved_name`) made unique against the folder. With `durable`,
    /// the file is fsynced before it gets its final name.
    pub fn create(dir: &Path, wanted: &str, durable: bool) -> Result<Self, UdpError> {
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

    /// Where the `.part` file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `data` at `offset` (writes come in file order from the core; they are gathered
    /// into large vectored writes).
    pub fn write_at(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the .part file is closed"));
        };
        w.write_at(offset, data)
    }

    /// Delete the `.part` file (the transfer failed).
    pub fn discard(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Flush the `.part` file (to disk if durable) and give it its final name, never
    /// replacing an existing file: a hard link fails if the name exists (then the next free
    /// name is tried), where a rename would silently overwrite. Returns the final path.
    pub fn finish(&mut self) -> Result<PathBuf, UdpError> {
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
