//! The file a presenter sends, read as its sender asks.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::Path;

use bytes::{Bytes, BytesMut};

/// Reads handed out whose buffers are watched for reuse. Why 96: the sender holds what it
/// read until the audience acknowledges it — its window (16 MiB by default) in reads of
/// 256 KiB, 64 — and a buffer comes back only once all of it was acknowledged; a few more
/// cover the read ahead. Watching costs nothing but a reference.
const LENT: usize = 96;

/// An open upload source.
pub struct SourceFile {
    file: File,
    pos: u64,
    /// Buffers of earlier reads, oldest first: one whose every slice the core dropped is
    /// read into again, instead of a fresh allocation whose pages fault in on every read.
    lent: VecDeque<Bytes>,
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
            lent: VecDeque::new(),
        })
    }

    /// Read exactly `len` bytes at `offset` (a `SenderEvent::Read`). Reads are sequential, so
    /// no seek is needed normally; a file that shrank meanwhile gives `UnexpectedEof`.
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        if self.pos != offset {
            self.file.seek(io::SeekFrom::Start(offset))?;
            self.pos = offset;
        }
        let data = match self.reusable(len) {
            Some(mut buf) => {
                self.file.read_exact(&mut buf[..len])?;
                buf.freeze()
            }
            None => {
                // Fresh capacity (no zeroing first: `read_to_end` fills it as it goes).
                let mut data = Vec::with_capacity(len);
                (&mut self.file).take(len as u64).read_to_end(&mut data)?;
                if data.len() != len {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Bytes::from(data)
            }
        };
        self.lent.push_back(data.clone());
        while self.lent.len() > LENT {
            self.lent.pop_front();
        }
        self.pos += len as u64;
        Ok(data)
    }

    /// The oldest earlier buffer if nothing else holds it any more and it has `len`
    /// initialized bytes (what it was read with), cut to `len`.
    fn reusable(&mut self, len: usize) -> Option<BytesMut> {
        if self
            .lent
            .front()
            .is_none_or(|b| b.len() < len || !b.is_unique())
        {
            return None;
        }
        let front = self.lent.pop_front()?;
        match front.try_into_mut() {
            Ok(mut buf) => {
                buf.truncate(len);
                Some(buf)
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_read_into_again_once_its_slices_are_dropped_and_never_while_held() {
        let dir = std::env::temp_dir().join(format!("huddle-source-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let content: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &content).unwrap();
        let mut f = SourceFile::open(&path).unwrap();
        let first = f.read_at(0, 4096).unwrap();
        let at = first.as_ptr();
        let held = first.slice(100..200);
        drop(first);
        // A slice is still held: the next read gets a buffer of its own.
        let second = f.read_at(4096, 4096).unwrap();
        assert_ne!(second.as_ptr(), at);
        assert_eq!(
            &held[..],
            &content[100..200],
            "a held slice is never written over"
        );
        assert_eq!(&second[..], &content[4096..8192]);
        drop(held);
        drop(second);
        // Now the first buffer is free: read into again.
        let third = f.read_at(8192, 4096).unwrap();
        assert_eq!(third.as_ptr(), at);
        assert_eq!(&third[..], &content[8192..12288]);
        // A shorter last read reuses too; a shrunken file is an error, not stale bytes.
        drop(third);
        let last = f.read_at(12288, 1000).unwrap();
        assert_eq!(&last[..], &content[12288..13288]);
        drop(last);
        assert!(f.read_at(64 * 1024 - 10, 4096).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
