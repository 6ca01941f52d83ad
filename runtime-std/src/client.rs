//! The std driver of the client core: a TCP connection, a UDP socket, and a user interface.
//!
//! Three threads: one reads the server socket, one reads the user's input when the core asks
//! for a line, and the calling thread owns the core and carries out its outputs. The driver
//! decides nothing: what to send, show, ask or when to stop all come from the core.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;

use huddle_core::client::{Client, ClientConfig, ClientOutput, Display, ExitStatus, Prompt};

use crate::clock;

/// Where the client shows things and reads lines: a terminal or a pipe.
///
/// `show` may be called from the core's thread while `read_line` blocks on the input thread;
/// a terminal implementation prints such lines above the line being typed.
pub trait Ui: Send + Sync + 'static {
    /// Show a line (or a few) to the user.
    fn show(&self, display: &Display);
    /// Ask for one line with this prompt; `None` when input has ended.
    fn read_line(&self, prompt: &Prompt) -> Option<String>;
}

/// How to start a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's TCP address.
    pub server: SocketAddr,
    /// The UDP port to receive uploads on (0 picks a free one).
    pub udp_port: u16,
    /// Where received uploads are saved.
    pub downloads: PathBuf,
    /// A person at a terminal rather than a script.
    pub interactive: bool,
}

/// Why the client could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot connect to the server at {addr}: {source}")]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The UDP port could not be bound.
    #[error("cannot listen for uploads on UDP port {port}: {source}")]
    Udp {
        /// The port asked for.
        port: u16,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Any other socket failure while starting.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// An input for the client core, from whichever thread or task noticed it.
///
/// Shared with the smol runtime, which feeds the same core from the same kinds of source.
#[derive(Debug)]
pub enum Ev {
    /// Bytes from the server.
    Server(Vec<u8>),
    /// The server connection ended.
    ServerClosed,
    /// A line the user typed.
    Line(String),
    /// User input ended.
    InputClosed,
}

/// Connect and run the client until it exits; returns why it stopped.
pub fn run_client(opts: ClientOptions, ui: Arc<dyn Ui>) -> Result<ExitStatus, ClientError> {
    let stream = TcpStream::connect(opts.server).map_err(|source| ClientError::Connect {
        addr: opts.server,
        source,
    })?;
    stream.set_nodelay(true)?;
    let udp = UdpSocket::bind(("0.0.0.0", opts.udp_port)).map_err(|source| ClientError::Udp {
        port: opts.udp_port,
        source,
    })?;
    let udp_port = udp.local_addr()?.port();

    let (tx, rx) = mpsc::channel::<Ev>();
    spawn_server_reader(stream.try_clone()?, tx.clone());
    let input_tx = tx.clone();
    let prompts = spawn_input_reader(Arc::clone(&ui), move |ev| input_tx.send(ev).is_ok());

    let config = ClientConfig {
        interactive: opts.interactive,
        udp_port: Some(udp_port),
    };
    let mut core = Client::new(config, clock::now());
    let status = drive(&mut core, stream, &rx, &prompts, ui.as_ref());
    drop(udp);
    Ok(status)
}

fn spawn_server_reader(mut stream: TcpStream, tx: Sender<Ev>) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Ev::ServerClosed);
                    return;
                }
                Ok(n) => {
                    if tx.send(Ev::Server(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Start the thread that reads user input: it waits for a prompt, reads one line for it with
/// `ui`, and hands the result to `deliver` (which returns false once nobody listens).
///
/// Reading a terminal blocks, so both runtimes give it a thread of its own; the returned sender
/// is how the core's prompts reach it.
pub fn spawn_input_reader(
    ui: Arc<dyn Ui>,
    deliver: impl Fn(Ev) -> bool + Send + 'static,
) -> Sender<Prompt> {
    let (prompt_tx, prompt_rx) = mpsc::channel::<Prompt>();
    thread::spawn(move || {
        while let Ok(prompt) = prompt_rx.recv() {
            let ev = match ui.read_line(&prompt) {
                Some(line) => Ev::Line(line),
                None => Ev::InputClosed,
            };
            let closed = matches!(ev, Ev::InputClosed);
            if !deliver(ev) || closed {
                return;
            }
        }
    });
    prompt_tx
}

fn drive(
    core: &mut Client,
    mut stream: TcpStream,
    rx: &Receiver<Ev>,
    prompts: &Sender<Prompt>,
    ui: &dyn Ui,
) -> ExitStatus {
    loop {
        // Carry out everything the core has to say.
        while let Some(out) = core.poll_output() {
            match out {
                ClientOutput::Send(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        core.handle_server_closed(clock::now());
                    }
                }
                ClientOutput::Show(d) => ui.show(&d),
                ClientOutput::Prompt(p) => {
                    // If the input thread has ended, input is over: tell the core.
                    if prompts.send(p).is_err() {
                        core.handle_input_closed(clock::now());
                    }
                }
                ClientOutput::Exit(status) => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return status;
                }
            }
        }
        // Wait for the next input, or the core's next timer.
        let ev = match core.poll_timeout() {
            Some(deadline) => match rx.recv_timeout(clock::until(deadline)) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Ev::ServerClosed),
            },
            None => Some(rx.recv().unwrap_or(Ev::ServerClosed)),
        };
        match ev {
            None => core.handle_timeout(clock::now()),
            Some(ev) => feed(core, ev, clock::now()),
        }
    }
}

/// Hand one input to the client core.
pub fn feed(core: &mut Client, ev: Ev, now: huddle_core::UnixMillis) {
    match ev {
        Ev::Server(bytes) => core.handle_server_bytes(&bytes, now),
        Ev::ServerClosed => core.handle_server_closed(now),
        Ev::Line(line) => core.handle_user_line(&line, now),
        Ev::InputClosed => core.handle_input_closed(now),
    }
}
