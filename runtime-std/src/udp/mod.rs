//! The std driver of UDP file transfers: a real socket, a real file, a real clock around the
//! Sans-IO machines of `huddle_core::transfer`.
//!
//! Nothing here decides anything about the protocol: the loops read datagrams and feed them
//! to the machine, do the file reads and writes it asks for, send what it emits, and sleep
//! until its next timer or the next datagram. That is the str0m run loop, on one thread.
//!
//! - [`send_file`]: the presenter's side, one file to one peer.
//! - [`receive_file`]: the audience's side, saved as `<presenter>_<name>` in a folder, via a
//!   `.part` file renamed only after the hash matched, never over an existing file.
//! - [`bind_udp`] / [`raise_buffers`]: a socket whose kernel buffers are large enough for a
//!   burst (the 208 KiB default overflows at loopback speed).
//! - [`DatagramSocket`]: what the loops need from a socket, so a benchmark or a test can wrap
//!   the real one (e.g. to drop datagrams).
//! - [`files`]: the file side ([`files::SourceFile`], [`files::PartFile`]) and a receive
//!   buffer arena, for a runtime that drives a `TransferSet` itself.
//!
//! A client that sends and receives several files at once on one socket embeds
//! `huddle_core::transfer::TransferSet` in its core and runs the same loop around it.

pub mod bench;
pub mod files;
mod receive;
mod send;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;
use huddle_core::transfer::{AbortReason, NameError};

pub use receive::{ReceiveJob, ReceiveReport, receive_file};
pub use send::{SendJob, SendReport, send_file};

/// Socket buffer size asked for by default: room for a few milliseconds of a fast burst.
pub const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;

/// Why a transfer on this runtime failed; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The file to send is missing, unreadable, or not a regular file.
    #[error("cannot send {path}: {reason}")]
    BadSource {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The offered file name cannot be saved safely.
    #[error("refusing the file name: {0}")]
    Name(#[from] NameError),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The transfer ended without the file (the reason says which side and why).
    #[error("transfer aborted: {0}")]
    Aborted(AbortReason),
}

impl UdpError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> UdpError {
        let context = context.into();
        move |source| UdpError::Io { context, source }
    }
}

/// What the transfer loops need from a UDP socket.
///
/// Implemented for [`UdpSocket`] (which the loops switch to non-blocking mode); wrappers can
/// inject loss or count datagrams.
pub trait DatagramSocket {
    /// Send one datagram; `WouldBlock` when the send buffer is full.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Receive one datagram without blocking; `WouldBlock` when none is queued.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Block until readable (or writable too, if `writable`) or `timeout` passed.
    fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()>;
    /// Switch to the non-blocking mode the loops rely on.
    fn prepare(&self) -> io::Result<()>;
}

impl DatagramSocket for UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, to)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf)
    }

    fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()> {
        wait_fd(self, writable, timeout)
    }

    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl<S: DatagramSocket + ?Sized> DatagramSocket for &S {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        (**self).send_to(buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        (**self).recv_from(buf)
    }
    fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()> {
        (**self).wait(writable, timeout)
    }
    fn prepare(&self) -> io::Result<()> {
        (**self).prepare()
    }
}

#[cfg(unix)]
fn wait_fd(socket: &UdpSocket, writable: bool, timeout: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut events = libc::POLLIN;
    if writable {
        events |= libc::POLLOUT;
    }
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `fd` and `ts` are valid for the duration of the call; no signal mask is passed.
    let r = unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn wait_fd(_socket: &UdpSocket, _writable: bool, timeout: Duration) -> io::Result<()> {
    std::thread::sleep(timeout.min(Duration::from_millis(1)));
    Ok(())
}

/// Kernel buffer sizes a socket ended up with (the kernel may grant less than asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    /// Receive buffer, bytes.
    pub recv: usize,
    /// Send buffer, bytes.
    pub send: usize,
}

/// Raise a socket's receive and send buffers to `bytes`.
///
/// Why: a fast sender's bursts overflow the default buffer (208 KiB here), and every
/// overflow is a loss the protocol must repair. Ordinary requests are capped by
/// `net.core.rmem_max`; where the process may exceed it (CAP_NET_ADMIN, Linux), the forced
/// variant is tried first.
pub fn raise_buffers(socket: &UdpSocket, bytes: usize) -> io::Result<SocketBuffers> {
    let sock = socket2::SockRef::from(socket);
    #[cfg(target_os = "linux")]
    {
        force_buffer(socket, libc::SO_RCVBUFFORCE, bytes);
        force_buffer(socket, libc::SO_SNDBUFFORCE, bytes);
    }
    if sock.recv_buffer_size()? < bytes {
        sock.set_recv_buffer_size(bytes)?;
    }
    if sock.send_buffer_size()? < bytes {
        sock.set_send_buffer_size(bytes)?;
    }
    Ok(SocketBuffers {
        recv: sock.recv_buffer_size()?,
        send: sock.send_buffer_size()?,
    })
}

#[cfg(target_os = "linux")]
fn force_buffer(socket: &UdpSocket, option: libc::c_int, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain setsockopt with a pointer to a live c_int of the stated length. Failure
    // (no privilege) is fine: the caller falls back to the ordinary, capped option.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Bind a UDP socket at `addr` with buffers raised to `buffer_bytes`.
pub fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> io::Result<(UdpSocket, SocketBuffers)> {
    let socket = UdpSocket::bind(addr)?;
    let buffers = raise_buffers(&socket, buffer_bytes)?;
    Ok((socket, buffers))
}

/// The wall clock as the core wants it: milliseconds since the Unix epoch, read from a
/// monotonic source so it never steps back during a transfer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    base_ms: u64,
    start: Instant,
}

impl WallClock {
    pub(crate) fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            base_ms,
            start: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> UnixMillis {
        UnixMillis(self.base_ms + self.start.elapsed().as_millis() as u64)
    }

    /// Time from now until `deadline`, at sub-millisecond precision.
    pub(crate) fn until(&self, deadline: UnixMillis) -> Duration {
        let target = Duration::from_millis(deadline.0.saturating_sub(self.base_ms));
        target.saturating_sub(self.start.elapsed())
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Longest single wait, so that a lost wake-up costs little.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(100);

/// Whether a socket error is transient: an ICMP error from an earlier send, an interrupt, a
/// full interface queue. The protocol treats the datagram as lost and carries on.
pub(crate) fn transient(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
