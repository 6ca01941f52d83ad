//! The std driver of the client core: a TCP connection, a UDP socket, and a user interface.
//!
//! Three threads: one reads the server socket, one reads the user's input when the core asks
//! for a line, and the calling thread owns the core and carries out its outputs. The driver
//! decides nothing: what to send, show, ask or when to stop all come from the core.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::client::{
    Client, ClientConfig, ClientOutput, ConsentPolicy, Display, ExitStatus, Input, KnownUser,
    Progress, Prompt, Security, TlsSetup, Tone,
};
use huddle_core::tls::{ClientTls, FileLimits, HostPort, TlsLimits};
use huddle_core::transfer::TransferConfig;
use huddle_core::transfer::netem::NetemConfig;

use crate::clock;
use crate::files::{self, TransferFiles};
use crate::tls_files::{KnownHostsFile, TlsFilesError};
use crate::udp::BatchSocket;

/// Where the client shows things and reads lines: a terminal or a pipe.
///
/// `show` may be called from the core's thread while `read_line` blocks on the input thread;
/// a terminal implementation prints such lines above the line being typed.
pub trait Ui: Send + Sync + 'static {
    /// Show a line (or a few) to the user.
    fn show(&self, display: &Display);
    /// Ask for one line with this prompt; `None` when input has ended.
    fn read_line(&self, prompt: &Prompt) -> Option<String>;
    /// Show how far a transfer has come (a terminal draws a bar; a pipe shows nothing).
    fn progress(&self, _progress: &Progress) {}
    /// The user names the core knows of now, online first: what a terminal completes after
    /// `PVT`, `BLK`, `UNB` and `UPD` (a pipe ignores them).
    fn users(&self, _users: &[KnownUser]) {}
    /// Where to send the user's "stop now" when no prompt is open (a terminal's second
    /// Ctrl-C): calling `interrupt` hands the core [`Input::Interrupt`], which cancels the
    /// transfers — telling their peers — and exits. Given once, before the first prompt.
    fn set_interrupt(&self, _interrupt: Box<dyn Fn() + Send + Sync>) {}
}

/// How to start a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's TCP address.
    pub server: SocketAddr,
    /// The UDP port to receive uploads on (0 picks a free one).
    pub udp_port: u16,
    /// The UDP port to tell the server instead of `udp_port`, when what reaches this client
    /// from outside is another port (a NAT or a relay forwarding to it). `None`: the port
    /// bound.
    pub public_udp_port: Option<u16>,
    /// Where received uploads are saved.
    pub downloads: PathBuf,
    /// A person at a terminal rather than a script.
    pub interactive: bool,
    /// Settings of uploads and downloads.
    pub transfer: TransferConfig,
    /// An emulated lossy path for outgoing datagrams (benchmarks, tests); `None` normally.
    pub emulate: Option<NetemConfig>,
    /// Close each transfer's line with its counters.
    pub transfer_stats: bool,
    /// Which incoming uploads are taken, declined, or asked about.
    pub consent: ConsentPolicy,
    /// TLS on the text link, or not.
    pub security: ClientSecurity,
}

/// How the client protects its link to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecurity {
    /// Upgrade with `STARTTLS` (the default): trust a CA-signed certificate for the host, or
    /// pin one on first use in the known-hosts file; a loopback server is encrypted but any
    /// certificate is accepted.
    Tls {
        /// The server as the user named it (the name its pin is filed under).
        server: HostPort,
        /// The known-hosts file.
        known_hosts: PathBuf,
        /// Judge a loopback server like any other (a tunnelled port; tests).
        verify_loopback: bool,
    },
    /// In clear (`--insecure`): for testing only.
    Insecure,
}

/// Why the client could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error(
        "cannot connect to the server at {addr}: {}",
        crate::hints::connect(error)
    )]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The UDP port could not be bound.
    #[error(
        "cannot listen for uploads on UDP port {port}: {}",
        crate::hints::plain(error)
    )]
    Udp {
        /// The port asked for.
        port: u16,
        /// Why it failed.
        error: std::io::Error,
    },
    /// Any other socket failure while starting.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The known-hosts file could not be read.
    #[error(transparent)]
    KnownHosts(#[from] TlsFilesError),
    /// TLS could not be set up (a bug, or a broken build of the trust roots).
    #[error("TLS could not be set up: {0}")]
    Tls(#[from] huddle_core::tls::TlsError),
}

/// What a runtime must do itself after [`Local::carry_out`]: the network side.
#[derive(Debug)]
pub enum NetAction {
    /// Send bytes to the server.
    Tcp(Bytes),
    /// Send datagrams to one peer: `segment_size` bytes each, back to back, the last maybe
    /// shorter (see [`BatchSocket::send_batch`]).
    Udp {
        /// The peer.
        to: SocketAddr,
        /// The datagrams.
        bytes: Bytes,
        /// Size of each but the last.
        segment_size: usize,
    },
    /// Stop with this status.
    Exit(ExitStatus),
}

/// The local side of the client's outputs (screen, prompts, files), the same for every
/// runtime; a runtime handles only the [`NetAction`]s with its own sockets.
pub struct Local<'a> {
    /// Where things are shown and lines read.
    pub ui: &'a dyn Ui,
    /// Prompts for the input thread.
    pub prompts: &'a Sender<Prompt>,
    /// Source and part files of transfers.
    pub files: &'a mut TransferFiles,
    /// The known-hosts file, when the link is upgraded.
    pub pins: Option<&'a mut KnownHostsFile>,
}

impl Local<'_> {
    /// Carry out one output of `core`, answering file operations at once; returns the network
    /// action left for the runtime, if any.
    pub fn carry_out(&mut self, core: &mut Client, out: ClientOutput) -> Option<NetAction> {
        match out {
            ClientOutput::Send(bytes) => return Some(NetAction::Tcp(bytes)),
            ClientOutput::Transmit {
                to,
                bytes,
                segment_size,
            } => {
                return Some(NetAction::Udp {
                    to,
                    bytes,
                    segment_size,
                });
            }
            ClientOutput::Exit(status) => return Some(NetAction::Exit(status)),
            ClientOutput::Show(d) => self.ui.show(&d),
            ClientOutput::Progress(p) => self.ui.progress(&p),
            ClientOutput::Users(users) => self.ui.users(&users),
            ClientOutput::Prompt(p) => {
                // If the input thread has ended, input is over: tell the core.
                if self.prompts.send(p).is_err() {
                    core.handle_input(Input::InputClosed, clock::now());
                }
            }
            ClientOutput::InspectFile { path } => {
                core.handle_input(Input::Inspected(files::inspect(&path)), clock::now())
            }
            ClientOutput::File(op) => {
                if let Some((id, result)) = self.files.apply(op) {
                    core.handle_input(Input::File { id, result }, clock::now());
                }
            }
            ClientOutput::PinServer(pin) => {
                if let Some(pins) = self.pins.as_deref_mut()
                    && let Err(e) = pins.append(pin)
                {
                    // The connection is trusted all the same; only the next one is not helped.
                    self.ui.show(&Display {
                        tone: Tone::Error,
                        text: format!(
                            "TLS: the pin could not be saved ({e}); the certificate will be \
                             trusted on first use again next time"
                        ),
                        pushed: false,
                    });
                }
            }
        }
        None
    }
}

/// Connect and run the client until it exits; returns why it stopped.
pub fn run_client(opts: ClientOptions, ui: Arc<dyn Ui>) -> Result<ExitStatus, ClientError> {
    let stream = TcpStream::connect(opts.server).map_err(|error| ClientError::Connect {
        addr: opts.server,
        error,
    })?;
    stream.set_nodelay(true)?;
    let udp = UdpSocket::bind(("0.0.0.0", opts.udp_port)).map_err(|error| ClientError::Udp {
        port: opts.udp_port,
        error,
    })?;
    // Best effort: a smaller buffer only means more losses for the transfer to repair.
    let _ = crate::udp::raise_buffers(&udp, opts.transfer.socket_buffer_bytes);
    let udp_port = udp.local_addr()?.port();

    let (tx, rx) = mpsc::sync_channel::<Input>(opts.transfer.input_backlog.max(1));
    spawn_server_reader(stream.try_clone()?, tx.clone());
    spawn_udp_reader(udp.try_clone()?, tx.clone());
    let input_tx = tx.clone();
    let prompts = spawn_input_reader(Arc::clone(&ui), move |ev| input_tx.send(ev).is_ok());
    let interrupt_tx = std::sync::Mutex::new(tx.clone());
    ui.set_interrupt(Box::new(move || {
        if let Ok(tx) = interrupt_tx.lock() {
            let _ = tx.send(Input::Interrupt);
        }
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
    Ok(drive(&mut core, stream, &udp, &rx, &mut local))
}

/// What [`start_core`] sets up.
pub struct Started {
    /// The client core.
    pub core: Client,
    /// Source and part files of transfers.
    pub files: TransferFiles,
    /// The known-hosts file, when the link is upgraded.
    pub pins: Option<KnownHostsFile>,
}

/// The client core, its transfer files and its known-hosts file, as both runtimes start them.
/// `server_ip` is the address actually connected to (it decides whether the server is on
/// loopback); lines of the known-hosts file that cannot be read are shown on `ui`, skipped.
///
/// The core's generator is seeded from the OS here: it draws every transfer's X25519 secret,
/// so it must be unpredictable. Without the OS's randomness the client still runs, but its
/// uploads would be readable by anyone who can guess the seed: it then refuses to start.
pub fn start_core(
    opts: &ClientOptions,
    udp_port: u16,
    server_ip: SocketAddr,
    ui: &dyn Ui,
) -> Result<Started, ClientError> {
    let mut rng_seed = [0u8; 32];
    getrandom::getrandom(&mut rng_seed).map_err(|e| {
        ClientError::Io(std::io::Error::other(format!(
            "no randomness from the OS: {e}"
        )))
    })?;
    let (security, pins) = match &opts.security {
        ClientSecurity::Insecure => (Security::Clear, None),
        ClientSecurity::Tls {
            server,
            known_hosts,
            verify_loopback,
        } => {
            let (file, warnings) = KnownHostsFile::open(known_hosts, &FileLimits::default())?;
            for w in warnings {
                ui.show(&Display {
                    tone: Tone::Error,
                    text: format!("{}: {w} (line skipped)", known_hosts.display()),
                    pushed: false,
                });
            }
            let mut tls = ClientTls::with_mozilla_roots(TlsLimits::default())?;
            if *verify_loopback {
                tls = tls.without_loopback_exemption();
            }
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| {
                ClientError::Io(std::io::Error::other(format!(
                    "cannot get random bytes from the system: {e}"
                )))
            })?;
            let setup = TlsSetup {
                tls,
                server: server.clone(),
                server_ip: server_ip.ip(),
                known_hosts: file.known().clone(),
                seed,
            };
            (Security::Tls(Box::new(setup)), Some(file))
        }
    };
    let config = ClientConfig {
        interactive: opts.interactive,
        udp_port: Some(opts.public_udp_port.unwrap_or(udp_port)),
        transfer: opts.transfer.clone(),
        emulate: opts.emulate.clone(),
        transfer_stats: opts.transfer_stats,
        consent: opts.consent.clone(),
        progress: Default::default(),
        rng_seed,
        security,
        keep_received: false,
        ..ClientConfig::default()
    };
    Ok(Started {
        core: Client::new(config, clock::now()),
        files: TransferFiles::new(opts.downloads.clone()),
        pins,
    })
}

/// Read the UDP socket in batches (GRO, `recvmmsg`) and hand each run of datagrams to the
/// core's thread as one input.
fn spawn_udp_reader(udp: UdpSocket, tx: SyncSender<Input>) {
    thread::spawn(move || {
        let Ok(mut io) = BatchSocket::new(&udp) else {
            return;
        };
        let mut got = Vec::new();
        loop {
            match io.recv(&udp, &mut got) {
                Ok(_) => {
                    for r in got.drain(..) {
                        let input = Input::Datagrams {
                            from: r.from,
                            bytes: r.bytes,
                            stride: r.stride,
                        };
                        if tx.send(input).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if crate::udp::wait(&udp, false, Duration::from_secs(1)).is_err() {
                        return;
                    }
                }
                // ICMP "port unreachable" from a vanished peer shows up here on Linux; the
                // transfer's own timeout deals with the peer, the socket goes on.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    });
}

fn spawn_server_reader(mut stream: TcpStream, tx: SyncSender<Input>) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::ServerClosed);
                    return;
                }
                Ok(n) => {
                    let bytes = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send(Input::ServerBytes(bytes)).is_err() {
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
    deliver: impl Fn(Input) -> bool + Send + 'static,
) -> Sender<Prompt> {
    let (prompt_tx, prompt_rx) = mpsc::channel::<Prompt>();
    thread::spawn(move || {
        while let Ok(prompt) = prompt_rx.recv() {
            let ev = match ui.read_line(&prompt) {
                Some(line) => Input::UserLine(line),
                None => Input::InputClosed,
            };
            let closed = matches!(ev, Input::InputClosed);
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
    udp: &UdpSocket,
    rx: &Receiver<Input>,
    local: &mut Local<'_>,
) -> ExitStatus {
    let io = match BatchSocket::new(udp) {
        Ok(io) => io,
        Err(_) => return ExitStatus::ConnectionLost,
    };
    core.set_max_segments(io.max_segments());
    loop {
        // Carry out everything the core has to say; datagrams go out in the core's batches.
        while let Some(out) = core.poll_output() {
            match local.carry_out(core, out) {
                None => {}
                Some(NetAction::Tcp(bytes)) if stream.write_all(&bytes).is_err() => {
                    core.handle_input(Input::ServerClosed, clock::now());
                }
                Some(NetAction::Tcp(_)) => {}
                Some(NetAction::Udp {
                    to,
                    bytes,
                    segment_size,
                }) => io.send_batch(udp, to, &bytes, segment_size),
                Some(NetAction::Exit(status)) => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return status;
                }
            }
        }
        // Wait for the next input, or the core's next timer.
        let input = match core.poll_timeout() {
            Some(deadline) => match rx.recv_timeout(clock::until(deadline, clock::now())) {
                Ok(input) => input,
                Err(RecvTimeoutError::Timeout) => Input::Timeout,
                Err(RecvTimeoutError::Disconnected) => Input::ServerClosed,
            },
            None => rx.recv().unwrap_or(Input::ServerClosed),
        };
        core.handle_input(input, clock::now());
    }
}
