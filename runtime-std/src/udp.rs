//! The client's UDP socket: bound, with kernel buffers large enough for a fast burst.
//!
//! Everything a transfer decides lives in `huddle_core::transfer` and the client core; the
//! client runtimes only bind this socket, read datagrams into it and write what the core
//! emits.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Socket buffer size asked for by default: room for a few milliseconds of a fast burst.
pub const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;

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

/// Bind a UDP socket at `addr` with buffers raised to `buffer_bytes` (best effort: a smaller
/// buffer only means more losses for the transfers to repair).
pub fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    let _ = raise_buffers(&socket, buffer_bytes);
    Ok(socket)
}
