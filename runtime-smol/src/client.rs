//! The smol driver of the client core: the same core and the same user interface as the std
//! runtime, with async sockets and timers.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use huddle_core::client::{Client, ExitStatus, Input};
use huddle_runtime_std::client::{
    ClientError, ClientOptions, Local, NetAction, Started, Ui, spawn_input_reader, start_core,
};
use huddle_runtime_std::clock;
use huddle_runtime_std::udp::BatchSocket;
use smol::Async;
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// The client's UDP socket, shared by the reading task and the core's loop.
type UdpSocket = Arc<Async<std::net::UdpSocket>>;

/// Connect and run the client until it exits; returns why it stopped.
pub fn run_client(opts: ClientOptions, ui: Arc<dyn Ui>) -> Result<ExitStatus, ClientError> {
    smol::block_on(async move {
        let stream =
            TcpStream::connect(opts.server)
                .await
                .map_err(|error| ClientError::Connect {
                    addr: opts.server,
                    error,
                })?;
        stream.set_nodelay(true)?;
        let udp_error = |error| ClientError::Udp {
            port: opts.udp_port,
            error,
        };
        let std_udp = std::net::UdpSocket::bind(("0.0.0.0", opts.udp_port)).map_err(udp_error)?;
        // Best effort, as in the std runtime.
        let _ = huddle_runtime_std::udp::raise_buffers(&std_udp, opts.transfer.socket_buffer_bytes);
        let udp: UdpSocket = Arc::new(Async::new(std_udp).map_err(udp_error)?);
        let udp_port = udp.get_ref().local_addr()?.port();

        // Bounded, as in the std runtime (`TransferConfig::input_backlog`): a fast UDP reader
        // waits.
        let (tx, rx) = smol::channel::bounded::<Input>(opts.transfer.input_backlog.max(1));
        let reader = smol::spawn(read_server(stream.clone(), tx.clone()));
        let udp_reader = smol::spawn(read_udp(Arc::clone(&udp), tx.clone()));
        let input_tx = tx.clone();
        let prompts = spawn_input_reader(Arc::clone(&ui), move |ev| {
            input_tx.send_blocking(ev).is_ok()
        });
        let interrupt_tx = tx.clone();
        ui.set_interrupt(Box::new(move || {
            let _ = interrupt_tx.send_blocking(Input::Interrupt);
        }));

        let Started {
            mut core,
            mut files,
            mut pins,
        } = start_core(&opts, udp_port, stream.peer_addr()?, ui.as_ref())?;
        let mut local = Local {
            ui: ui.as_ref(),
            prompts: &prompts,
            files: &mut files,
            pins: pins.as_mut(),
        };
        let status = drive(&mut core, stream, &udp, &rx, &mut local).await;
        drop(reader);
        drop(udp_reader);
        Ok(status)
    })
}

async fn read_server(mut stream: TcpStream, tx: Sender<Input>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(Input::ServerClosed).await;
                return;
            }
            Ok(n) => {
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Input::ServerBytes(bytes)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Read the UDP socket in batches (GRO, `recvmmsg`) and hand each run of datagrams to the
/// core's loop as one input.
async fn read_udp(udp: UdpSocket, tx: Sender<Input>) {
    let Ok(mut io) = BatchSocket::new(udp.get_ref()) else {
        return;
    };
    let mut got = Vec::new();
    loop {
        match io.recv(udp.get_ref(), &mut got) {
            Ok(_) => {
                for r in got.drain(..) {
                    let input = Input::Datagrams {
                        from: r.from,
                        bytes: r.bytes,
                        stride: r.stride,
                    };
                    if tx.send(input).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if udp.readable().await.is_err() {
                    return;
                }
            }
            // A vanished peer's ICMP error; its transfer times out on its own.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

async fn drive(
    core: &mut Client,
    mut stream: TcpStream,
    udp: &UdpSocket,
    rx: &Receiver<Input>,
    local: &mut Local<'_>,
) -> ExitStatus {
    let io = match BatchSocket::new(udp.get_ref()) {
        Ok(io) => io,
        Err(_) => return ExitStatus::ConnectionLost,
    };
    core.set_max_segments(io.max_segments());
    loop {
        while let Some(out) = core.poll_output() {
            match local.carry_out(core, out) {
                None => {}
                Some(NetAction::Tcp(bytes)) => {
                    let sent = stream.write_all(&bytes).await;
                    if sent.is_err() {
                        core.handle_input(Input::ServerClosed, clock::now());
                    }
                }
                // The wait for room in a full send buffer is a blocking `poll` on this
                // thread, as in the std runtime: the loop has nothing else to do until the
                // batch is out.
                Some(NetAction::Udp {
                    to,
                    bytes,
                    segment_size,
                }) => io.send_batch(udp.get_ref(), to, &bytes, segment_size),
                Some(NetAction::Exit(status)) => {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return status;
                }
            }
        }
        let next = async { rx.recv().await.unwrap_or(Input::ServerClosed) };
        let input = match core.poll_timeout() {
            Some(deadline) => {
                let at = Instant::now() + clock::until(deadline, clock::now());
                smol::future::or(next, async {
                    smol::Timer::at(at).await;
                    Input::Timeout
                })
                .await
            }
            None => next.await,
        };
        core.handle_input(input, clock::now());
    }
}
