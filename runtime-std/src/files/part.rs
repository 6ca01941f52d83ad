//! The `.part` file of a download: written in file order, given its final name only once the
//! core verified it, never over an existing file, and never left behind.
//!
//! While a client writes a part file it holds an exclusive advisory lock on it (`flock`), which
//! the system releases when the process ends, however it ends. That is how a client starting
//! in a folder tells a part file left by a crash (unlocked: removed) from one another running
//! client is writing (locked: kept).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};
use huddle_core::transfer::is_part_name;

/// Bytes the writer gathers before writing: large sequential writes are cheap.
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
}

/// Take the exclusive advisory lock of `file` without waiting; whether we got it.
#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own, no pointers involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> bool {
    // No advisory locks here: treat every part file as in use, so none is removed.
    false
}

/// What [`PartFile::finish`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// The file has its final name; the part file is gone.
    Saved(PathBuf),
    /// A file of that name exists; nothing changed (try another name).
    NameTaken,
}

/// A download being written.
pub struct PartFile {
    path: PathBuf,
    writer: Option<GatherWriter>,
    durable: bool,
    synced: bool,
}

impl PartFile {
    /// Create `dir/part` exclusively and lock it. With `durable`, the file is fsynced before
    /// it gets its final name.
    ///
    /// The file is created under a name that is not a part name, locked, and only then
    /// renamed, so a client starting meanwhile never sees it unlocked.
    pub fn create(dir: &Path, part: &str, durable: bool) -> io::Result<Self> {
        let path = dir.join(part);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let fresh = dir.join(format!("{part}.new"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&fresh)?;
        try_lock(&file);
        if let Err(e) = fs::rename(&fresh, &path) {
            let _ = fs::remove_file(&fresh);
            return Err(e);
        }
        Ok(Self {
            path,
            writer: Some(GatherWriter::new(file)),
            durable,
            synced: false,
        })
    }

    /// Write `data` at `offset` (writes come in file order from the core; they are gathered
    /// into large vectored writes).
    pub fn write_at(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.write_at(offset, data),
            None => Err(io::Error::other("the part file is closed")),
        }
    }

    /// Delete the part file (the transfer failed).
    pub fn discard(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Flush the part file (to disk if durable) and give it exactly the name `target`, only
    /// if no file has that name: a hard link fails if the name exists, where a rename would
    /// silently overwrite.
    pub fn finish(&mut self, target: &Path) -> io::Result<Finished> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the part file is closed"));
        };
        if !self.synced {
            w.flush()?;
            if self.durable {
                w.file.sync_all()?;
            }
            self.synced = true;
        }
        match fs::hard_link(&self.path, target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Finished::NameTaken),
            Err(_) if target.exists() => return Ok(Finished::NameTaken),
            // No hard links on this file system: rename, having just checked the name.
            Err(_) => fs::rename(&self.path, target)?,
        }
        let _ = fs::remove_file(&self.path);
        self.writer = None;
        Ok(Finished::Saved(target.to_path_buf()))
    }
}

impl Drop for PartFile {
    /// A part file never outlives its transfer, even when the driver fails with an error.
    fn drop(&mut self) {
        self.discard();
    }
}

/// Remove the part files in `dir` that no running client holds (left by a crash); returns
/// how many were removed. A missing folder has none.
pub fn remove_stale_parts(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_part_name(name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        // Locked by a running client: its download goes on. Ours now: a leftover.
        if try_lock(&file) && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}
