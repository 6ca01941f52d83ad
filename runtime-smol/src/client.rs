//! The smol driver of the client core: the same core and the same user interface as the std
//! runtime, with async sockets and timers.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use huddle_core::client::{Client, ExitStatus, Input};
use huddle_runtime_std::client::{
    ClientError, ClientOptions, Local, NetAction, UDP_BUFFER_BYTES, Ui, spawn_input_reader,
    start_core,
};
use huddle_runtime_std::clock;
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpStream, UdpSocket};

/// Connect and run the client until it exits; returns why it stopped.
pub fn run_client(opts: ClientOptions, ui: Arc<dyn Ui>) -> Result<ExitStatus, ClientError> {
    smol::block_on(async move {
        let stream =
            TcpStream::connect(opts.server)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: opts.server,
                    source,
                })?;
        stream.set_nodelay(true)?;
        let udp_error = |source| ClientError::Udp {
            port: opts.udp_port,
            source,
        };
        let std_udp = std::net::UdpSocket::bind(("0.0.0.0", opts.udp_port)).map_err(udp_error)?;
        // Best effort, as in the std runtime.
        let _ = huddle_runtime_std::udp::raise_buffers(&std_udp, UDP_BUFFER_BYTES);
        let udp = UdpSocket::from(smol::Async::new(std_udp).map_err(udp_error)?);
        let udp_port = udp.local_addr()?.port();

        let (tx, rx) = smol::channel::unbounded::<Input>();
        let reader = smol::spawn(read_server(stream.clone(), tx.clone()));
        let udp_reader = smol::spawn(read_udp(udp.clone(), tx.clone()));
        let input_tx = tx.clone();
        let prompts = spawn_input_reader(Arc::clone(&ui), move |ev| {
            input_tx.send_blocking(ev).is_ok()
        });

        let (mut core, mut files) = start_core(&opts, udp_port);
        let mut local = Local {
            ui: ui.as_ref(),
            prompts: &prompts,
            files: &mut files,
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

async fn read_udp(udp: UdpSocket, tx: Sender<Input>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match udp.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Input::Datagram { from, bytes }).await.is_err() {
                    return;
                }
            }
            // A vanished peer's ICMP error; its transfer times out on its own.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
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
                Some(NetAction::Udp(to, bytes)) => {
                    // Lost datagrams are the transfer machines' business.
                    let _ = udp.send_to(&bytes, to).await;
                }
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
