//! The smol driver of the client core: the same core and the same user interface as the std
//! runtime, with async sockets and timers.

use std::sync::Arc;
use std::time::Instant;

use huddle_core::client::{Client, ClientConfig, ClientOutput, ExitStatus, Prompt};
use huddle_runtime_std::client::{ClientError, ClientOptions, Ev, Ui, feed, spawn_input_reader};
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
        let udp = UdpSocket::bind(("0.0.0.0", opts.udp_port))
            .await
            .map_err(|source| ClientError::Udp {
                port: opts.udp_port,
                source,
            })?;
        let udp_port = udp.local_addr()?.port();

        let (tx, rx) = smol::channel::unbounded::<Ev>();
        let reader = smol::spawn(read_server(stream.clone(), tx.clone()));
        let input_tx = tx.clone();
        let prompts = spawn_input_reader(Arc::clone(&ui), move |ev| {
            input_tx.send_blocking(ev).is_ok()
        });

        let config = ClientConfig {
            interactive: opts.interactive,
            udp_port: Some(udp_port),
        };
        let mut core = Client::new(config, clock::now());
        let status = drive(&mut core, stream, &rx, &prompts, ui.as_ref()).await;
        drop(reader);
        drop(udp);
        Ok(status)
    })
}

async fn read_server(mut stream: TcpStream, tx: Sender<Ev>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(Ev::ServerClosed).await;
                return;
            }
            Ok(n) => {
                if tx.send(Ev::Server(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn drive(
    core: &mut Client,
    mut stream: TcpStream,
    rx: &Receiver<Ev>,
    prompts: &std::sync::mpsc::Sender<Prompt>,
    ui: &dyn Ui,
) -> ExitStatus {
    loop {
        while let Some(out) = core.poll_output() {
            match out {
                ClientOutput::Send(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        core.handle_server_closed(clock::now());
                    }
                }
                ClientOutput::Show(d) => ui.show(&d),
                ClientOutput::Prompt(p) => {
                    if prompts.send(p).is_err() {
                        core.handle_input_closed(clock::now());
                    }
                }
                ClientOutput::Exit(status) => {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return status;
                }
            }
        }
        let next = async { Some(rx.recv().await.unwrap_or(Ev::ServerClosed)) };
        let ev = match core.poll_timeout() {
            Some(deadline) => {
                let at = Instant::now() + clock::until(deadline);
                smol::future::or(next, async {
                    smol::Timer::at(at).await;
                    None
                })
                .await
            }
            None => next.await,
        };
        match ev {
            Some(ev) => feed(core, ev, clock::now()),
            None => core.handle_timeout(clock::now()),
        }
    }
}
