//! The client's UDP socket: bound, with kernel buffers large enough for a fast burst.
//!
//! Everything a transfer decides lives in `huddle_core::transfer` and the client core; the
//! client runtimes only bind this socket, read datagrams into it and write what the core
//! emits.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use huddle_core::transfer::spare::SpareBlocks;

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

/// Room for one received message: the largest UDP payload, or a GRO batch of smaller
/// datagrams (the kernel coalesces at most 64 KiB).
const SLOT: usize = 64 << 10;
/// Messages taken per receive call (recvmmsg).
const RECV_BATCH: usize = 16;
/// Slots per receive block: a block is split into the datagrams handed to the core, so
/// receiving costs no allocation per datagram, only one per block.
const BLOCK_SLOTS: usize = 32;

/// A run of datagrams from one sender, as one receive returned it: `stride`-sized datagrams
/// back to back (a GRO batch), the last one possibly shorter.
#[derive(Debug)]
pub struct Received {
    /// Who sent them.
    pub from: SocketAddr,
    /// The datagrams.
    pub bytes: bytes::Bytes,
    /// Size of each datagram but the last.
    pub stride: usize,
}

/// The client's UDP socket with batched I/O: UDP GSO to send a run of equal datagrams in one
/// call and GRO plus `recvmmsg` to receive many per call on Linux (through quinn-udp), one
/// datagram per call elsewhere. The socket is non-blocking from here on.
pub struct BatchSocket {
    state: quinn_udp::UdpSocketState,
    /// The block being filled; `spare` holds earlier ones, to reuse once every datagram cut
    /// from them is dropped (no fresh pages to fault in and zero for every block).
    block: bytes::BytesMut,
    spare: SpareBlocks,
    fresh_blocks: u64,
}

/// Blocks kept for reuse. Why 5: the core's thread lags the reader by up to
/// `TransferConfig::input_backlog` messages (two blocks) plus the run it is handling, so the
/// blocks retired last are still in use; the oldest of five is free again by the time it is
/// wanted, and a fast download reuses its blocks instead of faulting in fresh pages.
const SPARE_BLOCKS: usize = 5;

impl BatchSocket {
    /// Prepare `socket` for batched I/O.
    pub fn new(socket: &UdpSocket) -> io::Result<Self> {
        Ok(Self {
            state: quinn_udp::UdpSocketState::new(socket.into())?,
            block: bytes::BytesMut::new(),
            spare: SpareBlocks::new(SPARE_BLOCKS),
            fresh_blocks: 0,
        })
    }

    /// Move on to a block with room for a batch: the oldest earlier block if everything
    /// cut from it was dropped meanwhile, else a fresh one.
    fn next_block(&mut self) {
        let full = BLOCK_SLOTS * SLOT;
        let used = std::mem::take(&mut self.block);
        // The oldest block whose datagrams were all dropped meanwhile (the core's thread
        // lags the reader by a few blocks, so the front one is not always free).
        if let Some(mut b) = self.spare.swap(used, full).filter(|b| b.capacity() >= full) {
            // SAFETY: `swap` reuses this block's own allocation and never allocates. Every
            // block here came from `BytesMut::zeroed(full)` below (a zeroed allocation of
            // exactly `full` bytes), so its first `full` bytes are initialized: zeros, or
            // datagrams received since.
            unsafe { b.set_len(full) };
            self.block = b;
            return;
        }
        self.fresh_blocks += 1;
        self.block = bytes::BytesMut::zeroed(full);
    }

    /// Receive blocks allocated so far (the rest were reused).
    pub fn fresh_blocks(&self) -> u64 {
        self.fresh_blocks
    }

    /// Most datagrams one send may carry (1 where the kernel has no GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Receive what is queued, without waiting: `WouldBlock` when nothing is.
    pub fn recv(&mut self, socket: &UdpSocket, out: &mut Vec<Received>) -> io::Result<usize> {
        if self.block.len() < RECV_BATCH * SLOT {
            self.next_block();
        }
        let mut meta = [quinn_udp::RecvMeta::default(); RECV_BATCH];
        let n = {
            let mut slots = self.block[..RECV_BATCH * SLOT].chunks_mut(SLOT);
            let mut bufs: [io::IoSliceMut<'_>; RECV_BATCH] =
                std::array::from_fn(|_| io::IoSliceMut::new(slots.next().unwrap_or_default()));
            self.state.recv(socket.into(), &mut bufs, &mut meta)?
        };
        for (i, m) in meta[..n].iter().enumerate() {
            let len = m.len.min(SLOT);
            // The last message of the call takes only its own bytes: the next call's slots
            // start right after it. So a stream of small datagrams (a sender's ACKs, one per
            // call) takes bytes of a block, not 64 KiB each, and a block lasts thousands.
            let take = if i + 1 == n { len } else { SLOT };
            let mut slot = self.block.split_to(take);
            slot.truncate(len);
            out.push(Received {
                from: m.addr,
                bytes: slot.freeze(),
                stride: if m.stride == 0 { m.len } else { m.stride },
            });
        }
        Ok(n)
    }

    /// Send one batch; `WouldBlock` when the send buffer is full (wait and try again). Any
    /// other error loses the batch, which the transfers repair like any loss.
    pub fn send(&self, socket: &UdpSocket, batch: &quinn_udp::Transmit<'_>) -> io::Result<()> {
        match self.state.try_send(socket.into(), batch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Send datagrams for `to` as the core batched them (`segment_size` bytes each, back to
    /// back, the last maybe shorter: a `ClientOutput::Transmit`), waiting for room in the
    /// send buffer as needed.
    ///
    /// The buffer goes to the kernel as it is, in one UDP GSO send; where the socket cannot
    /// carry that many segments at once (no GSO, or the kernel turned it off since), each
    /// datagram goes on its own. A send that keeps failing is a loss the transfers repair.
    pub fn send_batch(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        contents: &[u8],
        segment_size: usize,
    ) {
        let seg = segment_size.max(1);
        let segments = contents.len().div_ceil(seg);
        if segments <= 1 || segments <= self.max_segments() {
            self.send_waiting(socket, to, contents, (segments > 1).then_some(seg));
        } else {
            for d in contents.chunks(seg) {
                self.send_waiting(socket, to, d, None);
            }
        }
    }

    /// One send, waiting a little for room while the buffer is full (at most about a second).
    fn send_waiting(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) {
        let t = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        for _ in 0..100 {
            if self.send(socket, &t).is_ok() {
                return;
            }
            let _ = wait(socket, true, std::time::Duration::from_millis(10));
        }
    }
}

/// Wait until `socket` is readable (or writable, with `write`), at most `timeout`.
#[cfg(unix)]
pub fn wait(socket: &UdpSocket, write: bool, timeout: std::time::Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut fd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Wait until `socket` is ready, at most `timeout` (no readiness API here: a short nap).
#[cfg(not(unix))]
pub fn wait(_socket: &UdpSocket, _write: bool, timeout: std::time::Duration) -> io::Result<()> {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two loopback sockets, `b` with room for bursts, each with its batched I/O.
    fn pair() -> (UdpSocket, UdpSocket, BatchSocket, BatchSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = raise_buffers(&b, DEFAULT_SOCKET_BUFFER);
        let (sa, sb) = (BatchSocket::new(&a).unwrap(), BatchSocket::new(&b).unwrap());
        (a, b, sa, sb)
    }

    #[test]
    fn small_datagrams_received_one_by_one_take_their_size_of_a_block_not_a_slot() {
        let (a, b, sa, mut sb) = pair();
        let to = b.local_addr().unwrap();
        // 1,000 ACK-sized datagrams, each received before the next is sent, all held.
        let mut held = Vec::new();
        for i in 0..1_000u32 {
            sa.send_batch(&a, to, &[(i % 256) as u8; 100], 100);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let before = held.len();
            while held.len() == before && std::time::Instant::now() < deadline {
                wait(&b, false, std::time::Duration::from_millis(50)).unwrap();
                let mut out = Vec::new();
                if sb.recv(&b, &mut out).is_ok() {
                    held.extend(out);
                }
            }
        }
        assert_eq!(held.len(), 1_000);
        for (i, r) in held.iter().enumerate() {
            assert_eq!(&r.bytes[..], &[(i % 256) as u8; 100][..], "datagram {i}");
        }
        // 100 kB held: one block, where a 64 KiB slot each would have taken about sixty.
        assert_eq!(sb.fresh_blocks(), 1, "{} blocks", sb.fresh_blocks());
    }

    #[test]
    fn receive_blocks_are_reused_once_their_datagrams_are_dropped() {
        let (a, b, sa, mut sb) = pair();
        let to = b.local_addr().unwrap();
        let mut received = 0;
        for round in 0..40 {
            // One datagram per message, so every round uses 30 slots of a block.
            for _ in 0..30 {
                while sa
                    .send(
                        &a,
                        &quinn_udp::Transmit {
                            destination: to,
                            ecn: None,
                            contents: &[round as u8; 40_000],
                            segment_size: None,
                            src_ip: None,
                        },
                    )
                    .is_err()
                {
                    wait(&a, true, std::time::Duration::from_millis(10)).unwrap();
                }
            }
            let mut got = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while got < 30 && std::time::Instant::now() < deadline {
                wait(&b, false, std::time::Duration::from_millis(50)).unwrap();
                let mut out = Vec::new();
                if sb.recv(&b, &mut out).is_ok() {
                    got += out.len();
                }
                // `out` (and every datagram in it) is dropped here.
            }
            received += got;
        }
        assert_eq!(received, 1_200);
        assert!(
            sb.fresh_blocks() <= 5,
            "{} blocks allocated for 1,200 datagrams in 32-slot blocks",
            sb.fresh_blocks()
        );
    }

    /// Receive `n` datagrams (or what came within 5 s) on `b`.
    fn receive(b: &UdpSocket, sb: &mut BatchSocket, n: usize) -> Vec<Vec<u8>> {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < n && std::time::Instant::now() < deadline {
            wait(b, false, std::time::Duration::from_millis(50)).unwrap();
            let mut out = Vec::new();
            if sb.recv(b, &mut out).is_err() {
                continue;
            }
            for r in out {
                for d in r.bytes.chunks(r.stride) {
                    got.push(d.to_vec());
                }
            }
        }
        got
    }

    /// 20 datagrams of 1200 bytes and one of 7, back to back, as the core batches them.
    fn batch() -> Vec<u8> {
        let mut contents = Vec::new();
        for i in 0..20u8 {
            contents.extend_from_slice(&[i; 1200]);
        }
        contents.extend_from_slice(&[99; 7]);
        contents
    }

    fn check(got: &[Vec<u8>]) {
        assert_eq!(got.len(), 21);
        for (i, d) in got.iter().take(20).enumerate() {
            assert_eq!(d, &vec![i as u8; 1200]);
        }
        assert_eq!(got[20], vec![99; 7]);
    }

    #[test]
    fn a_batch_arrives_as_datagrams_of_its_segment_size() {
        let (a, b, sa, mut sb) = pair();
        sa.send_batch(&a, b.local_addr().unwrap(), &batch(), 1200);
        check(&receive(&b, &mut sb, 21));
    }

    #[test]
    fn a_batch_larger_than_the_socket_takes_goes_datagram_by_datagram() {
        let (a, b, sa, mut sb) = pair();
        // More segments than any kernel's GSO takes at once: the plain fallback.
        let mut contents = Vec::new();
        for i in 0..70u8 {
            contents.extend_from_slice(&[i; 100]);
        }
        assert!(70 > sa.max_segments());
        sa.send_batch(&a, b.local_addr().unwrap(), &contents, 100);
        let got = receive(&b, &mut sb, 70);
        assert_eq!(got.len(), 70);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &vec![i as u8; 100]);
        }
    }
}
