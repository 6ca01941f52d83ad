//! The file a presenter sends, read as its sender asks.

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::Path;

use bytes::Bytes;

/// An open upload source.
pub struct SourceFile {
    file: File,
    pos: u64,
}

impl SourceFile {
    /// Open `path` for sending: it must be a readable regular file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let meta = fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(Self {
            file: File::open(path)?,
            pos: 0,
        })
    }

    /// Read exactly `len` bytes at `offset` (a `SenderEvent::Read`). Reads are sequential, so
    /// no seek is needed normally; a file that shrank meanwhile gives `UnexpectedEof`.
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        if self.pos != offset {
            self.file.seek(io::SeekFrom::Start(offset))?;
            self.pos = offset;
        }
        // Read into fresh capacity (no zeroing first: `read_to_end` fills it as it goes).
        let mut data = Vec::with_capacity(len);
        (&mut self.file).take(len as u64).read_to_end(&mut data)?;
        if data.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += len as u64;
        Ok(Bytes::from(data))
    }
}
