//! The UDP transfer benchmark of issue 3 (`huddle bench udp`): a large file over loopback with
//! the std driver, next to a plain TCP copy of the same file in the same run.
//!
//! A benchmark, not a test: it prints figures and asserts nothing about time. The lossy run
//! drops datagrams in the benchmark's own sending wrapper ([`LossySocket`]), seeded, on both
//! sides (data and ACKs), because loopback itself never loses anything.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use huddle_core::UserName;
use huddle_core::transfer::{
    ReceiverStats, SenderStats, TransferConfig, TransferId, TransferSecret,
};

use super::{
    DEFAULT_SOCKET_BUFFER, DatagramSocket, ReceiveJob, SendJob, bind_udp, receive_file, send_file,
};

/// Copy buffer of the TCP baseline, and chunk size for generating and hashing files.
const CHUNK: usize = 1 << 20;

/// A socket wrapper that drops a seeded random share of the datagrams it is asked to send.
///
/// Why: loopback never loses anything, so the loss behaviour of the transfer (and of a test)
/// can only be exercised by losing on purpose, reproducibly.
#[derive(Debug)]
pub struct LossySocket<S> {
    inner: S,
    loss: f64,
    state: Cell<u64>,
    dropped: Cell<u64>,
}

impl<S: DatagramSocket> LossySocket<S> {
    /// Wrap `inner`, dropping each datagram sent with probability `loss`, decided by `seed`.
    pub fn new(inner: S, loss: f64, seed: u64) -> Self {
        Self {
            inner,
            loss,
            state: Cell::new(seed),
            dropped: Cell::new(0),
        }
    }

    /// Datagrams dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// A uniform number in [0, 1) from SplitMix64.
    fn next(&self) -> f64 {
        let mut z = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl<S: DatagramSocket> DatagramSocket for LossySocket<S> {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        if self.loss > 0.0 && self.next() < self.loss {
            self.dropped.set(self.dropped.get() + 1);
            return Ok(buf.len());
        }
        self.inner.send_to(buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf)
    }
    fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()> {
        self.inner.wait(writable, timeout)
    }
    fn prepare(&self) -> io::Result<()> {
        self.inner.prepare()
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// File size in bytes (issue 3: 256 MiB).
    pub size: u64,
    /// Where to put the files (a fresh folder inside it is created and removed); default: the
    /// system's temporary folder.
    pub dir: Option<PathBuf>,
    /// Share of datagrams dropped in the lossy run (issue 3: 5 %).
    pub loss: f64,
    /// Seed of the content and of the drops.
    pub seed: u64,
    /// Datagram size: large on loopback, where the path allows it.
    pub max_datagram: usize,
    /// Socket buffers asked for.
    pub socket_buffer: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            size: 256 << 20,
            dir: None,
            loss: 0.05,
            seed: 2026,
            max_datagram: 65_000,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
        }
    }
}

/// One UDP run's figures.
#[derive(Debug, Clone)]
pub struct UdpRun {
    /// Seconds from the first datagram to the verified, saved file.
    pub secs: f64,
    /// File bytes per second / 10^6.
    pub mb_s: f64,
    /// Sender's counters.
    pub sender: SenderStats,
    /// Receiver's counters (memory high-water mark included).
    pub receiver: ReceiverStats,
    /// Datagrams the wrapper dropped.
    pub dropped: u64,
}

/// The benchmark's figures; `Display` prints them for a person.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// File size, bytes.
    pub size: u64,
    /// TCP copy, MB/s (10^6 bytes per second), file to file, fsync included.
    pub tcp_mb_s: f64,
    /// Lossless UDP transfer.
    pub udp: UdpRun,
    /// UDP transfer with seeded loss.
    pub lossy: UdpRun,
    /// The loss rate of the lossy run.
    pub loss: f64,
    /// Receiver memory bound in bytes: its out-of-order buffer high-water mark plus its write
    /// buffer and datagram buffer.
    pub receiver_memory: u64,
    /// Peak resident memory of the whole benchmark process (sender, receiver, TCP copy), if
    /// the OS tells (Linux): an upper bound on the receiver's.
    pub process_peak_rss: Option<u64>,
    /// Kernel socket buffers granted (receive side).
    pub socket_buffer: usize,
}

impl BenchReport {
    /// UDP goodput over TCP goodput.
    pub fn ratio(&self) -> f64 {
        self.udp.mb_s / self.tcp_mb_s
    }

    /// Lossy goodput over lossless goodput.
    pub fn lossy_ratio(&self) -> f64 {
        self.lossy.mb_s / self.udp.mb_s
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        writeln!(
            f,
            "file: {:.0} MiB over 127.0.0.1, socket buffers {:.1} MiB",
            mib(self.size),
            mib(self.socket_buffer as u64)
        )?;
        writeln!(f, "TCP copy:          {:8.1} MB/s", self.tcp_mb_s)?;
        writeln!(
            f,
            "UDP transfer:      {:8.1} MB/s  ({:.0}% of TCP)  {} datagrams, {} retransmitted",
            self.udp.mb_s,
            100.0 * self.ratio(),
            self.udp.sender.datagrams_sent,
            self.udp.sender.retransmissions
        )?;
        writeln!(
            f,
            "UDP, {:.0}% loss:    {:8.1} MB/s  ({:.0}% of lossless)  {} dropped, {} retransmitted",
            100.0 * self.loss,
            self.lossy.mb_s,
            100.0 * self.lossy_ratio(),
            self.lossy.dropped,
            self.lossy.sender.retransmissions
        )?;
        write!(
            f,
            "receiver memory:   {:8.1} MiB (out-of-order buffer peak + write and datagram buffers)",
            mib(self.receiver_memory)
        )?;
        if let Some(rss) = self.process_peak_rss {
            write!(
                f,
                "\nprocess peak RSS:  {:8.1} MiB (sender, receiver and TCP copy together)",
                mib(rss)
            )?;
        }
        Ok(())
    }
}

/// Run the benchmark: write a file of `opts.size` pseudo-random bytes, copy it over TCP
/// loopback, send it over UDP loopback without and with loss, check every copy's BLAKE3 hash,
/// print the figures and return them.
///
/// Why a TCP copy in the same run: absolute figures depend on the machine and its load; the
/// ratio to the kernel's own reliable transport on the same machine at the same moment does not.
pub fn bench_udp(opts: &BenchOptions) -> io::Result<BenchReport> {
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("huddle-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("{report}");
    Ok(report)
}

fn run(opts: &BenchOptions, dir: &Path) -> io::Result<BenchReport> {
    let src = dir.join("clip.mp4");
    let hash = write_content(&src, opts.size, opts.seed)?;

    let tcp_dst = dir.join("tcp-copy");
    let tcp_secs = tcp_copy(&src, &tcp_dst)?;
    check(&tcp_dst, &hash, "TCP copy")?;
    std::fs::remove_file(&tcp_dst)?;

    let (udp, buffers) = udp_run(opts, &src, dir, 0.0, &hash)?;
    let (lossy, _) = udp_run(opts, &src, dir, opts.loss, &hash)?;

    let mb_s = |secs: f64| opts.size as f64 / secs / 1e6;
    let receiver_memory =
        udp.receiver.peak_buffered.max(lossy.receiver.peak_buffered) + (1 << 20) + 65_536;
    Ok(BenchReport {
        size: opts.size,
        tcp_mb_s: mb_s(tcp_secs),
        udp,
        lossy,
        loss: opts.loss,
        receiver_memory,
        process_peak_rss: peak_rss(),
        socket_buffer: buffers,
    })
}

fn udp_run(
    opts: &BenchOptions,
    src: &Path,
    dir: &Path,
    loss: f64,
    hash: &blake3::Hash,
) -> io::Result<(UdpRun, usize)> {
    let downloads = dir.join(format!("udp-{}", (loss * 1000.0) as u32));
    std::fs::create_dir_all(&downloads)?;
    let (rx, buffers) = bind_udp(
        "127.0.0.1:0".parse().map_err(io::Error::other)?,
        opts.socket_buffer,
    )?;
    let (tx, _) = bind_udp(
        "127.0.0.1:0".parse().map_err(io::Error::other)?,
        opts.socket_buffer,
    )?;
    let config = TransferConfig {
        max_datagram: opts.max_datagram,
        read_size: 1 << 20,
        seed: opts.seed,
        ..TransferConfig::default()
    };
    let id = TransferId(opts.seed);
    let secret = TransferSecret(*blake3::hash(&opts.seed.to_be_bytes()).as_bytes());
    let receive = ReceiveJob {
        dir: downloads.clone(),
        presenter: UserName::new("yoda").map_err(io::Error::other)?,
        file_name: "clip.mp4".into(),
        size: opts.size,
        id,
        secret: secret.clone(),
        config: config.clone(),
    };
    let send = SendJob {
        path: src.to_path_buf(),
        peer: rx.local_addr()?,
        id,
        secret,
        config,
    };
    let seed = opts.seed;
    let receiver = thread::spawn(move || {
        let socket = LossySocket::new(rx, loss, seed ^ 1);
        let started = Instant::now();
        let r = receive_file(&socket, &receive, |_| {});
        (r, started, socket.dropped())
    });
    thread::sleep(Duration::from_millis(20));
    let socket = LossySocket::new(tx, loss, seed ^ 2);
    let t0 = Instant::now();
    let sent = send_file(&socket, &send, |_| {}).map_err(io::Error::other)?;
    let (received, started, rx_dropped) = receiver
        .join()
        .map_err(|_| io::Error::other("receiver thread panicked"))?;
    let received = received.map_err(io::Error::other)?;
    let done = started + received.elapsed;
    let secs = done.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    check(&received.saved_as, hash, "UDP transfer")?;
    std::fs::remove_file(&received.saved_as)?;
    let run = UdpRun {
        secs,
        mb_s: opts.size as f64 / secs / 1e6,
        sender: sent.stats,
        receiver: received.stats,
        dropped: socket.dropped() + rx_dropped,
    };
    Ok((run, buffers.recv))
}

/// A plain TCP copy over loopback, file to file with 1 MiB reads and writes and an fsync at
/// the end (as the UDP receiver does): seconds taken.
fn tcp_copy(src: &Path, dst: &Path) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dst = dst.to_path_buf();
    let receiver = thread::spawn(move || -> io::Result<Instant> {
        let (mut stream, _) = listener.accept()?;
        let mut out = File::create(&dst)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        Ok(Instant::now())
    });
    let t0 = Instant::now();
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
    let done = receiver
        .join()
        .map_err(|_| io::Error::other("TCP receiver panicked"))??;
    Ok(done.saturating_duration_since(t0).as_secs_f64().max(1e-9))
}

/// Write `size` pseudo-random bytes (xorshift, seeded) to `path`; return their hash.
fn write_content(path: &Path, size: u64, seed: u64) -> io::Result<blake3::Hash> {
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

fn check(path: &Path, expected: &blake3::Hash, what: &str) -> io::Result<()> {
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
    if hasher.finalize() != *expected {
        return Err(io::Error::other(format!(
            "{what}: the copy differs from the original"
        )));
    }
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
