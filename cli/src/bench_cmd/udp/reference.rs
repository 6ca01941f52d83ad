//! The files of `huddle bench udp` and the TCP copy that serves as its reference.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Instant;

/// Copy buffer of the TCP reference, and chunk size for writing and hashing files.
const CHUNK: usize = 1 << 20;

/// What the TCP copy measured.
pub struct TcpCopy {
    pub secs: f64,
    pub sender_cpu: f64,
    pub receiver_cpu: f64,
}

/// A plain TCP copy over loopback, file to file with 1 MiB reads and writes and an fsync
/// at the end (as the UDP receiver does before giving the file its name).
pub fn tcp_copy(src: &Path, dst: &Path) -> io::Result<TcpCopy> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dst = dst.to_path_buf();
    let receiver = thread::spawn(move || -> io::Result<(Instant, f64)> {
        let cpu0 = thread_cpu_secs();
        let (mut stream, _) = listener.accept()?;
        let mut out = io::BufWriter::with_capacity(CHUNK, File::create(&dst)?);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        Ok((Instant::now(), thread_cpu_secs() - cpu0))
    });
    let t0 = Instant::now();
    let cpu0 = thread_cpu_secs();
    let mut stream = TcpStream::connect(addr)?;
    let mut file = File::open(src)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n])?;
    }
    drop(stream);
    let sender_cpu = thread_cpu_secs() - cpu0;
    let (done, receiver_cpu) = receiver
        .join()
        .map_err(|_| io::Error::other("TCP receiver panicked"))??;
    Ok(TcpCopy {
        secs: done.saturating_duration_since(t0).as_secs_f64().max(1e-9),
        sender_cpu,
        receiver_cpu,
    })
}

/// Write `size` pseudo-random bytes (xorshift, seeded) to `path`; return their hash.
pub fn write_content(path: &Path, size: u64, seed: u64) -> io::Result<blake3::Hash> {
    let mut file = File::create(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut x = seed | 1;
    let mut left = size;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        for word in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        file.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(hasher.finalize())
}

/// Whether the file at `path` hashes to `expected`.
pub fn same(path: &Path, expected: &blake3::Hash) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize() == *expected)
}

/// CPU time consumed by the calling thread, in seconds (0 where unknown).
fn thread_cpu_secs() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
        }
    }
    0.0
}
