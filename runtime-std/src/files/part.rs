//! The `.part` file of a download: written in file order, given its final name only once the
//! core verified it, never over an existing file, and never left behind unless kept for
//! resuming — then with its sidecar, which the core wrote.
//!
//! While a client writes a part file it holds an exclusive advisory lock on it (`flock`), which
//! the system releases when the process ends, however it ends. That is how a client starting
//! in a folder tells a part file nobody holds (a crash's leftover, or one kept for resuming:
//! the core's `resume::keep_at_start` decides which) from one another running client is
//! writing (locked: kept).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};
use huddle_core::UnixMillis;
use huddle_core::client::KeptPart;
use huddle_core::transfer::resume::{
    MAX_CANDIDATES, MAX_SIDECAR, SIDECAR_SUFFIX, keep_at_start, sidecar_name,
};
use huddle_core::transfer::{is_part_name, is_part_of};

/// Bytes the writer gathers before writing: what the core hands on in one write, so each
/// block is written as it comes and its buffer goes back to the receiver for reuse instead of
/// waiting for more.
const WRITE_BUFFER: usize = huddle_core::transfer::WRITE_BLOCK_BYTES as usize;
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

    /// Take the part `dir/part` an interrupted download kept: open it, lock it (refused if
    /// another client holds it), remove its sidecar (from now on it is a running download:
    /// a crash leaves it without one, to be removed), and cut it to at most `keep` bytes.
    /// Returns the file and its length.
    pub fn open_kept(dir: &Path, part: &str, keep: u64, durable: bool) -> io::Result<(Self, u64)> {
        if !is_part_name(part) || part.contains(['/', '\\']) {
            return Err(io::Error::other("not a part file name"));
        }
        let path = dir.join(part);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if !try_lock(&file) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another client is using it",
            ));
        }
        let len = file.metadata()?.len();
        if len > keep {
            file.set_len(keep)?;
        }
        let _ = fs::remove_file(dir.join(sidecar_name(part)));
        Ok((
            Self {
                path,
                writer: Some(GatherWriter::new(file)),
                durable,
                synced: false,
            },
            len.min(keep),
        ))
    }

    /// Read exactly `len` bytes at `offset` (the core checks a kept part's blocks).
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the part file is closed"));
        };
        w.flush()?;
        w.file.seek(io::SeekFrom::Start(offset))?;
        let mut data = Vec::with_capacity(len);
        (&mut w.file).take(len as u64).read_to_end(&mut data)?;
        // The writer's position is where the next write goes, not where this read ended.
        w.file.seek(io::SeekFrom::Start(w.pos))?;
        if data.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Bytes::from(data))
    }

    /// Keep the part for resuming: flushed, cut to `held` bytes, synced (if durable), and
    /// described by `sidecar`, written beside it atomically; then closed, which lets another
    /// client (or a later run) take it. If any of that fails the part is removed: a part
    /// without its sidecar is never resumed.
    pub fn keep(&mut self, held: u64, sidecar: &[u8]) -> io::Result<()> {
        let result = self.try_keep(held, sidecar);
        if result.is_err() {
            self.discard();
            let _ = fs::remove_file(self.sidecar_path());
        }
        result
    }

    fn sidecar_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(SIDECAR_SUFFIX);
        PathBuf::from(p)
    }

    fn try_keep(&mut self, held: u64, sidecar: &[u8]) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the part file is closed"));
        };
        w.flush()?;
        w.file.set_len(held)?;
        if self.durable {
            w.file.sync_all()?;
        }
        let target = self.sidecar_path();
        let mut fresh = target.clone().into_os_string();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh)?;
        f.write_all(sidecar)?;
        if self.durable {
            f.sync_all()?;
        }
        fs::rename(&fresh, &target)?;
        // Closed, not deleted: the lock goes with the descriptor.
        self.writer = None;
        Ok(())
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

/// Remove what a client starting in `dir` finds and does not keep: part files no running
/// client holds and whose sidecar `keep_at_start` (the core's rule) refuses — a crash's
/// leftovers (no sidecar), damaged or old sidecars — with their sidecars; sidecars whose part
/// is gone; half-written sidecars. Returns how many part files were removed. A missing folder
/// has none.
pub fn remove_stale_parts(dir: &Path, now: UnixMillis, max_age_ms: u64) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        if let Some(part) = name.strip_suffix(SIDECAR_SUFFIX) {
            if !dir.join(part).exists() {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if name.ends_with(".resume.new") {
            let _ = fs::remove_file(&path);
            continue;
        }
        if !is_part_name(name) {
            continue;
        }
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        // Locked by a running client: its download goes on.
        if !try_lock(&file) {
            continue;
        }
        let sidecar = read_sidecar(&dir.join(sidecar_name(name)));
        if keep_at_start(sidecar.as_deref(), now, max_age_ms) {
            continue;
        }
        if fs::remove_file(&path).is_ok() {
            removed += 1;
            let _ = fs::remove_file(dir.join(sidecar_name(name)));
        }
    }
    removed
}

/// A sidecar's bytes, if it exists and is not longer than any sidecar can be.
fn read_sidecar(path: &Path) -> Option<Vec<u8>> {
    let f = File::open(path).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_SIDECAR as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() <= MAX_SIDECAR).then_some(bytes)
}

/// The kept parts of a download saved as `saved_as` in `dir`: part files nobody holds that
/// have a sidecar (at most `MAX_CANDIDATES`).
pub fn find_kept(dir: &Path, saved_as: &str) -> Vec<KeptPart> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for entry in entries.flatten() {
        if kept.len() >= MAX_CANDIDATES {
            break;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_part_of(name, saved_as) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(sidecar) = read_sidecar(&dir.join(sidecar_name(name))) else {
            continue;
        };
        let Ok(file) = OpenOptions::new().read(true).write(true).open(entry.path()) else {
            continue;
        };
        // Held by a running client: not ours to take (the lock is released when `file` goes).
        if !try_lock(&file) {
            continue;
        }
        let Ok(meta) = file.metadata() else { continue };
        kept.push(KeptPart {
            part: name.to_string(),
            len: meta.len(),
            sidecar: Bytes::from(sidecar),
        });
    }
    kept
}
