//! The file a presenter sends, read as its sender asks.

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::Path;

use bytes::{Bytes, BytesMut};

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
        let mut data = BytesMut::zeroed(len);
        self.file.read_exact(&mut data)?;
        self.pos += len as u64;
        Ok(data.freeze())
    }
}
