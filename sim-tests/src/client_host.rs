//! A scripted user in front of the client core, over `turmoil::net`.
//!
//! A [`SimClient`] is what the real client process is, minus the terminal: it owns the TCP
//! connection and the [`Client`] core, feeds the core what arrives (with the simulated
//! `now`), drains `poll_output` completely after every input, sends what the core sends, and
//! answers the core's prompts with lines the test script supplies. Like the real client it
//! types a new line only after the core asks for one, i.e. once the previous reply arrived.
//!
//! It also taps the wire: the same bytes go through the protocol's own framer, reply
//! assembler and event parser, so a script can check reply codes and events, not only the
//! text the core chose to show. An event or reply line the parsers reject fails the run.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::UnixMillis;
use huddle_core::client::{
    Client, ClientConfig, ClientOutput, ConsentPolicy, ExitStatus, FileOp, FileProblem, FileResult,
    Input, KeptPart, Prompt, Security, TlsSetup,
};
use huddle_core::proto::event::{Event, is_event_line, parse_event};
use huddle_core::proto::framing::{Frame, LineFramer};
use huddle_core::proto::reply::{Reply, ReplyAssembler};
use huddle_core::tls::{ClientTls, HostPort, KnownHosts, TlsLimits, render_known_host};
use huddle_core::transfer::netem::{Netem, NetemConfig};
use huddle_core::transfer::{TransferConfig, TransferId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpStream, UdpSocket};

use crate::clock;
use crate::server_host::{PORT, SERVER};
use crate::trace::Trace;

/// Datagrams one send of the simulated socket takes, as a Linux socket with UDP GSO says
/// (the kernel's `UDP_MAX_SEGMENTS`). turmoil has no GSO: each batch is split here.
const SIM_GSO_SEGMENTS: usize = 64;

/// Where the client core stopped: it wants a line, or it has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The core asks for a line of this kind.
    Prompt(Prompt),
    /// The core exited with this status.
    Exit(ExitStatus),
}

impl Step {
    /// Whether the core is at the command prompt (logged in, idle).
    pub fn is_command_prompt(&self) -> bool {
        matches!(self, Step::Prompt(Prompt::Command(_)))
    }
}

/// What one typed line led to.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Where the core stopped afterwards.
    pub step: Step,
    /// The replies that arrived meanwhile, in order (exactly one for a command).
    pub replies: Vec<Reply>,
}

impl Turn {
    /// The code of the last reply, if any (e.g. 250, 432, 435).
    pub fn code(&self) -> Option<u16> {
        self.replies.last().map(|r| r.code.get())
    }
}

/// The client's download folder and the files it can upload, in memory; shared so a test can
/// watch a transfer's progress and check what was saved.
#[derive(Debug, Default)]
pub struct Files {
    /// Files the user may upload, by the path typed after `UPD user`.
    pub sources: BTreeMap<String, Bytes>,
    /// Sources open for an upload.
    pub open: BTreeMap<TransferId, String>,
    /// Part files of running downloads: (part file name, bytes so far).
    pub parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    /// Finished downloads, by the name they were saved under.
    pub saved: BTreeMap<String, Bytes>,
    /// Part files deleted because their download failed.
    pub discarded: u32,
    /// Parts kept for resuming, by part file name: their bytes and their sidecar.
    pub kept: BTreeMap<String, (Vec<u8>, Bytes)>,
    /// Record every datagram this client sends into `wire` (a tap on the path, for tests of
    /// what crosses it).
    pub record_wire: bool,
    /// The datagrams this client sent, when recording.
    pub wire: Vec<Bytes>,
}

/// A shared [`Files`].
pub type SharedFiles = Rc<RefCell<Files>>;

/// The client's UDP side: where it receives uploads, how the path out of it behaves.
#[derive(Debug, Clone, Default)]
pub struct UdpOptions {
    /// The port to bind and declare to the server.
    pub port: u16,
    /// What the path does to every datagram this client sends (per destination, seeded):
    /// the "seeded wrapper" that drops, duplicates, delays and reorders, since turmoil's own
    /// `fail_rate` cuts whole links instead.
    pub netem: NetemConfig,
    /// Settings of the client's transfers.
    pub transfer: TransferConfig,
    /// Which incoming uploads the client takes, declines or asks about.
    pub consent: ConsentPolicy,
    /// The folder.
    pub files: SharedFiles,
}

struct UdpEnd {
    socket: UdpSocket,
    netem: NetemConfig,
    paths: BTreeMap<SocketAddr, Netem>,
    files: SharedFiles,
}

impl UdpEnd {
    fn path(&mut self, to: SocketAddr) -> &mut Netem {
        let config = &self.netem;
        self.paths.entry(to).or_insert_with(|| {
            let mut c = config.clone();
            c.seed ^= u64::from(to.port()) << 32
                ^ u64::from(u32::from(match to.ip() {
                    std::net::IpAddr::V4(v4) => v4,
                    std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                }));
            Netem::new(c)
        })
    }

    /// Put on the wire every datagram the emulated paths release by `now`.
    async fn flush(&mut self, now: UnixMillis) {
        for (to, path) in &mut self.paths {
            while let Some(d) = path.poll_output(now) {
                // A datagram to nowhere is lost, as UDP would lose it.
                let _ = self.socket.send_to(&d, *to).await;
            }
        }
    }

    fn poll_timeout(&self) -> Option<UnixMillis> {
        self.paths.values().filter_map(Netem::poll_timeout).min()
    }
}

/// A client's generator seed, from its label: distinct per client, the same every run.
fn seed_of(name: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] = seed[i % 32].wrapping_mul(31).wrapping_add(b);
    }
    seed[31] ^= name.len() as u8;
    seed
}

/// TLS for a simulated client: it upgrades with `STARTTLS` and keeps its pins in a
/// known-hosts "file" that outlives the connection (shared, so the next connection of the same
/// user reads what the last one pinned).
#[derive(Debug, Clone)]
pub struct SimTls {
    /// The known-hosts file's text.
    pub known_hosts: Rc<RefCell<String>>,
    /// Seeds the session's randomness (a run replays from it).
    pub seed: [u8; 32],
}

impl SimTls {
    /// A client that knows no server yet, its sessions seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self {
            known_hosts: Rc::default(),
            seed: s,
        }
    }
}

/// A user at a client, scripted.
pub struct SimClient {
    name: String,
    stream: Option<TcpStream>,
    core: Client,
    framer: LineFramer,
    assembler: ReplyAssembler,
    replies: Vec<Reply>,
    events: Vec<Event>,
    prompts: VecDeque<Prompt>,
    exit: Option<ExitStatus>,
    trace: Trace,
    udp: Option<UdpEnd>,
    shown: Vec<(u64, String)>,
    /// The known-hosts file of a TLS client.
    pins: Option<Rc<RefCell<String>>>,
}

impl SimClient {
    /// Connect to the simulated server; `name` labels this client in the trace.
    pub async fn connect(name: &str, trace: &Trace) -> io::Result<Self> {
        Self::connect_with(name, trace, None).await
    }

    /// Connect with a UDP socket for uploads (bound before connecting, as the real client
    /// does, and declared to the server before login by the core).
    pub async fn connect_with(
        name: &str,
        trace: &Trace,
        udp: Option<UdpOptions>,
    ) -> io::Result<Self> {
        Self::connect_secure(name, trace, udp, None).await
    }

    /// Connect over TLS (`STARTTLS`), the way the real client does by default.
    pub async fn connect_tls(name: &str, trace: &Trace, tls: &SimTls) -> io::Result<Self> {
        Self::connect_secure(name, trace, None, Some(tls.clone())).await
    }

    /// Connect with an optional UDP side and optional TLS.
    pub async fn connect_secure(
        name: &str,
        trace: &Trace,
        udp: Option<UdpOptions>,
        tls: Option<SimTls>,
    ) -> io::Result<Self> {
        let mut config = ClientConfig {
            // The wire shows only ciphertext once upgraded: the tap reads the core's
            // plaintext instead.
            keep_received: true,
            // Each simulated client its own keys, the same in every run of a seed.
            rng_seed: seed_of(name),
            ..ClientConfig::default()
        };
        let udp = match udp {
            None => None,
            Some(o) => {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, o.port)).await?;
                config.udp_port = Some(o.port);
                // The run's seed picks the keys too: another seed, another key exchange.
                for (b, s) in config
                    .rng_seed
                    .iter_mut()
                    .zip(o.transfer.seed.to_le_bytes())
                {
                    *b ^= s;
                }
                config.transfer = o.transfer;
                config.consent = o.consent;
                Some(UdpEnd {
                    socket,
                    netem: o.netem,
                    paths: BTreeMap::new(),
                    files: o.files,
                })
            }
        };
        let stream = TcpStream::connect((SERVER, PORT)).await?;
        trace.record(name, "connected");
        if let Some(tls) = &tls {
            let server_ip = stream.peer_addr()?.ip();
            let (known_hosts, _) = KnownHosts::parse("known_hosts", &tls.known_hosts.borrow());
            let server = HostPort::new(SERVER, PORT)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            config.security = Security::Tls(Box::new(TlsSetup {
                tls: ClientTls::pins_only(TlsLimits::default()),
                server,
                server_ip,
                known_hosts,
                seed: tls.seed,
            }));
        }
        let mut core = Client::new(config, clock::now());
        // As a socket with UDP GSO says (quinn-udp's cap): the core's batches are exercised
        // here too, and `drain` splits each into the datagrams the kernel would have sent.
        core.set_max_segments(SIM_GSO_SEGMENTS);
        Ok(Self {
            name: name.to_string(),
            stream: Some(stream),
            udp,
            shown: Vec::new(),
            pins: tls.map(|t| t.known_hosts),
            core,
            framer: LineFramer::new(),
            assembler: ReplyAssembler::new(),
            replies: Vec::new(),
            events: Vec::new(),
            prompts: VecDeque::new(),
            exit: None,
            trace: trace.clone(),
        })
    }

    /// Connect, retrying every `every` while the server is down (after a crash, say).
    pub async fn connect_retrying(name: &str, trace: &Trace, every: Duration) -> Self {
        loop {
            match Self::connect(name, trace).await {
                Ok(c) => return c,
                Err(_) => tokio::time::sleep(every).await,
            }
        }
    }

    /// [`SimClient::connect_with`], retrying every 10 ms while the server is not listening
    /// yet (or again).
    pub async fn connect_retrying_with(name: &str, trace: &Trace, udp: Option<UdpOptions>) -> Self {
        loop {
            match Self::connect_with(name, trace, udp.clone()).await {
                Ok(c) => return c,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// The label of this client.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wait until the core asks for a line or exits.
    pub async fn step(&mut self) -> Step {
        loop {
            if let Some(p) = self.prompts.pop_front() {
                return Step::Prompt(p);
            }
            if let Some(s) = &self.exit {
                return Step::Exit(s.clone());
            }
            self.pump(None).await;
        }
    }

    /// Type `line` (the core decides what it means), then wait for the next step.
    pub async fn say(&mut self, line: &str) -> Turn {
        self.core
            .handle_input(Input::UserLine(line.to_string()), clock::now());
        self.drain().await;
        let step = self.step().await;
        Turn {
            step,
            replies: std::mem::take(&mut self.replies),
        }
    }

    /// The whole login dialogue: from the user-name prompt to the command prompt. Signs up if
    /// the name is new. On anything else returns the turn where it went another way.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<Reply, Turn> {
        let first = self.step().await;
        if first != Step::Prompt(Prompt::UserName) {
            return Err(Turn {
                step: first,
                replies: std::mem::take(&mut self.replies),
            });
        }
        let t = self.say(user).await;
        if !matches!(t.step, Step::Prompt(Prompt::Password | Prompt::NewPassword)) {
            return Err(t);
        }
        let t = self.say(password).await;
        match (&t.step, t.replies.last()) {
            (Step::Prompt(Prompt::Command(_)), Some(r)) if r.code.get() == 230 => Ok(r.clone()),
            _ => Err(t),
        }
    }

    /// Send one command from the command prompt; `Ok` with its reply if the client is back at
    /// the prompt with exactly one reply, else the turn as it went.
    pub async fn command(&mut self, line: &str) -> Result<Reply, Turn> {
        let t = self.say(line).await;
        if t.step.is_command_prompt() && t.replies.len() == 1 {
            Ok(t.replies[0].clone())
        } else {
            Err(t)
        }
    }

    /// `OUT`; returns the turn (a clean logout ends in `Exit(LoggedOut)` after a 221).
    pub async fn logout(&mut self) -> Turn {
        self.say("OUT").await
    }

    /// Stay at the prompt until `t`, taking in whatever the server pushes meanwhile.
    pub async fn idle_until(&mut self, t: UnixMillis) {
        while clock::now() < t && self.exit.is_none() {
            self.pump(Some(t)).await;
        }
    }

    /// Stay at the prompt for `d`.
    pub async fn idle(&mut self, d: Duration) {
        let t = clock::now().plus_millis(d.as_millis() as u64);
        self.idle_until(t).await;
    }

    /// Stay at the prompt while an upload or download runs (or until `limit`).
    pub async fn wait_transfers(&mut self, limit: UnixMillis) {
        while self.core.is_transferring() && clock::now() < limit && self.exit.is_none() {
            self.pump(Some(limit)).await;
        }
    }

    /// Whether an upload or download is running.
    pub fn is_transferring(&self) -> bool {
        self.core.is_transferring()
    }

    /// The events pushed so far (taken: the next call returns only newer ones).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Everything the core showed the user so far, with the simulated ms it was shown at.
    pub fn shown(&self) -> &[(u64, String)] {
        &self.shown
    }

    /// How the core exited, if it did.
    pub fn exit_status(&self) -> Option<&ExitStatus> {
        self.exit.as_ref()
    }

    /// One wait for input: bytes from the server, the server closing, a datagram, or the
    /// next wake-up (the core's, the emulated path's, or the caller's deadline).
    async fn pump(&mut self, deadline: Option<UnixMillis>) {
        let wake = [
            deadline,
            self.core.poll_timeout(),
            self.udp.as_ref().and_then(UdpEnd::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        if self.stream.is_none() && self.exit.is_none() {
            self.core.handle_input(Input::ServerClosed, clock::now());
            self.drain().await;
            return;
        }
        enum Woke {
            Tcp(io::Result<usize>),
            Udp(io::Result<(usize, SocketAddr)>),
            Timer,
        }
        let mut buf = [0u8; 8192];
        let mut dgram = vec![0u8; 65_536];
        let woke = {
            let stream = self.stream.as_mut();
            let socket = self.udp.as_ref().map(|u| &u.socket);
            let tcp = async {
                match stream {
                    Some(s) => s.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            };
            let udp = async {
                match socket {
                    Some(s) => s.recv_from(&mut dgram).await,
                    None => std::future::pending().await,
                }
            };
            let timer = async {
                match wake {
                    Some(t) => clock::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = tcp => Woke::Tcp(r),
                r = udp => Woke::Udp(r),
                () = timer => Woke::Timer,
            }
        };
        let now = clock::now();
        let input = match woke {
            Woke::Timer => {
                if let Some(u) = self.udp.as_mut() {
                    u.flush(now).await;
                }
                Input::Timeout
            }
            Woke::Udp(Ok((n, from))) => Input::Datagram {
                from,
                bytes: Bytes::copy_from_slice(&dgram[..n]),
            },
            // A failed receive is no input; the timers still get their turn.
            Woke::Udp(Err(_)) => Input::Timeout,
            Woke::Tcp(Ok(0)) | Woke::Tcp(Err(_)) => {
                self.stream = None;
                self.trace
                    .record(&self.name, "connection closed by the server");
                Input::ServerClosed
            }
            Woke::Tcp(Ok(n)) => Input::ServerBytes(Bytes::copy_from_slice(&buf[..n])),
        };
        // The same door as the real runtimes: one input, then the timers that are due.
        self.core.handle_input(input, now);
        let received = self.core.take_received();
        self.tap(&received);
        self.drain().await;
    }

    /// Carry out everything the core asks, in order.
    async fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                ClientOutput::Send(bytes) => {
                    if let Some(s) = self.stream.as_mut() {
                        // A broken connection shows up on the next read.
                        let _ = s.write_all(&bytes).await;
                    }
                }
                ClientOutput::Show(d) => {
                    let first = d.text.lines().next().unwrap_or("");
                    let mark = if d.pushed { "pushed" } else { "shows" };
                    self.trace.record(&self.name, format!("{mark} {first}"));
                    self.shown.push((clock::elapsed_ms(), d.text));
                }
                ClientOutput::Prompt(p) => self.prompts.push_back(p),
                ClientOutput::Transmit {
                    to,
                    bytes,
                    segment_size,
                } => {
                    let now = clock::now();
                    if let Some(u) = self.udp.as_mut() {
                        {
                            let mut files = u.files.borrow_mut();
                            if files.record_wire {
                                let seg = segment_size.max(1);
                                for at in (0..bytes.len()).step_by(seg) {
                                    files
                                        .wire
                                        .push(bytes.slice(at..(at + seg).min(bytes.len())));
                                }
                            }
                        }
                        // Each datagram of the batch meets its own fate on the path, as the
                        // kernel would have split a GSO send into these very datagrams.
                        u.path(to).handle_batch(&bytes, segment_size, now);
                        u.flush(now).await;
                    }
                }
                ClientOutput::InspectFile { path } => {
                    let size = self
                        .udp
                        .as_ref()
                        .and_then(|u| u.files.borrow().sources.get(&path).map(|b| b.len() as u64));
                    let result = size.ok_or(FileProblem::NotFound);
                    self.core
                        .handle_input(Input::Inspected(result), clock::now());
                }
                ClientOutput::File(op) => self.file_op(op),
                ClientOutput::Progress(_) | ClientOutput::Users(_) => {}
                ClientOutput::PinServer(pin) => {
                    let line = render_known_host(&pin);
                    self.trace
                        .record(&self.name, format!("pinned {}", line.trim_end()));
                    if let Some(file) = &self.pins {
                        file.borrow_mut().push_str(&line);
                    }
                }
                ClientOutput::Exit(status) => {
                    self.trace.record(&self.name, format!("exit {status:?}"));
                    self.exit = Some(status);
                    // The process ends: its socket closes.
                    self.stream = None;
                }
            }
        }
    }

    /// Carry out a file operation on the in-memory folder, answering the core where asked.
    fn file_op(&mut self, op: FileOp) {
        let Some(u) = self.udp.as_ref() else {
            panic!("{}: a file operation without a UDP side: {op:?}", self.name);
        };
        let now = clock::now();
        let mut f = u.files.borrow_mut();
        match op {
            FileOp::OpenSource { id, path } => {
                f.open.insert(id, path);
            }
            FileOp::Read { id, offset, len } => {
                let src = &f.sources[&f.open[&id]];
                let start = (offset as usize).min(src.len());
                let end = (start + len).min(src.len());
                let data = src.slice(start..end);
                drop(f);
                let result = FileResult::Data { offset, data };
                self.core.handle_input(Input::File { id, result }, now);
            }
            FileOp::CloseSource { id } => {
                f.open.remove(&id);
            }
            FileOp::CreatePart { id, part } => {
                f.parts.insert(id, (part, Vec::new()));
            }
            FileOp::Write { id, offset, data } => {
                let part = &mut f.parts.get_mut(&id).expect("a part file").1;
                let end = offset as usize + data.len();
                if part.len() < end {
                    part.resize(end, 0);
                }
                part[offset as usize..end].copy_from_slice(&data);
            }
            FileOp::KeepPart { id, held, sidecar } => {
                if let Some((name, mut data)) = f.parts.remove(&id) {
                    data.truncate(held as usize);
                    f.kept.insert(name, (data, sidecar));
                }
            }
            FileOp::FindResumable { id, saved_as } => {
                let found = f
                    .kept
                    .iter()
                    .filter(|(name, _)| huddle_core::transfer::is_part_of(name, &saved_as))
                    .map(|(name, (data, sidecar))| KeptPart {
                        part: name.clone(),
                        len: data.len() as u64,
                        sidecar: sidecar.clone(),
                    })
                    .collect();
                drop(f);
                let result = FileResult::Resumable(found);
                self.core.handle_input(Input::File { id, result }, now);
            }
            FileOp::OpenPart { id, part, keep } => {
                let result = match f.kept.remove(&part) {
                    Some((mut data, _)) => {
                        data.truncate(keep as usize);
                        let len = data.len() as u64;
                        f.parts.insert(id, (part, data));
                        FileResult::Resumed { len }
                    }
                    None => FileResult::Failed(FileProblem::NotFound),
                };
                drop(f);
                self.core.handle_input(Input::File { id, result }, now);
            }
            FileOp::ReadPart { id, offset, len } => {
                let range = offset as usize..offset as usize + len;
                let result = match f.parts.get(&id).and_then(|p| p.1.get(range)) {
                    Some(bytes) => FileResult::Data {
                        offset,
                        data: Bytes::copy_from_slice(bytes),
                    },
                    None => FileResult::Failed(FileProblem::Other("short read".into())),
                };
                drop(f);
                self.core.handle_input(Input::File { id, result }, now);
            }
            FileOp::Finish { id, name } => {
                // Exactly the name the core offers, never over an existing file.
                let result = if f.saved.contains_key(&name) {
                    FileResult::NameTaken
                } else {
                    let (_, data) = f.parts.remove(&id).expect("a part file");
                    f.saved.insert(name.clone(), Bytes::from(data));
                    FileResult::Saved { name }
                };
                drop(f);
                self.core.handle_input(Input::File { id, result }, now);
            }
            FileOp::Discard { id } => {
                f.parts.remove(&id);
                f.discarded += 1;
            }
            // The in-memory folder starts empty: nothing was left by a crash.
            FileOp::RemoveStaleParts { .. } => {}
        }
    }

    /// Parse what arrived with the protocol's own parsers, for the script to check.
    fn tap(&mut self, bytes: &[u8]) {
        let mut frames = Vec::new();
        self.framer.push(bytes, &mut frames);
        for frame in frames {
            let Frame::Line(line) = frame else {
                panic!("{}: the server sent an over-long line", self.name);
            };
            let line = String::from_utf8(line)
                .unwrap_or_else(|_| panic!("{}: the server sent a non-UTF-8 line", self.name));
            if is_event_line(&line) && !self.assembler.is_pending() {
                let event = parse_event(&line)
                    .unwrap_or_else(|| panic!("{}: the event parser rejects {line:?}", self.name));
                self.events.push(event);
            } else {
                match self.assembler.push(&line) {
                    Ok(Some(reply)) => self.replies.push(reply),
                    Ok(None) => {}
                    Err(e) => panic!("{}: bad reply line {line:?}: {e}", self.name),
                }
            }
        }
    }
}
