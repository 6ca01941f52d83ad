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

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use huddle_core::UnixMillis;
use huddle_core::client::{Client, ClientConfig, ClientOutput, ExitStatus, Prompt};
use huddle_core::proto::event::{Event, is_event_line, parse_event};
use huddle_core::proto::framing::{Frame, LineFramer};
use huddle_core::proto::reply::{Reply, ReplyAssembler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

use crate::clock;
use crate::server_host::{PORT, SERVER};
use crate::trace::Trace;

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
}

impl SimClient {
    /// Connect to the simulated server; `name` labels this client in the trace.
    pub async fn connect(name: &str, trace: &Trace) -> io::Result<Self> {
        let stream = TcpStream::connect((SERVER, PORT)).await?;
        trace.record(name, "connected");
        Ok(Self {
            name: name.to_string(),
            stream: Some(stream),
            core: Client::new(ClientConfig::default(), clock::now()),
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
        self.core.handle_user_line(line, clock::now());
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

    /// The events pushed so far (taken: the next call returns only newer ones).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// How the core exited, if it did.
    pub fn exit_status(&self) -> Option<&ExitStatus> {
        self.exit.as_ref()
    }

    /// One wait for input: bytes from the server, the server closing, or the wake-up time.
    async fn pump(&mut self, deadline: Option<UnixMillis>) {
        let wake = match (deadline, self.core.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(stream) = self.stream.as_mut() else {
            if self.exit.is_none() {
                self.core.handle_server_closed(clock::now());
                self.drain().await;
            }
            return;
        };
        let mut buf = [0u8; 8192];
        let read = match wake {
            Some(t) => tokio::select! {
                biased;
                r = stream.read(&mut buf) => Some(r),
                _ = clock::sleep_until(t) => None,
            },
            None => Some(stream.read(&mut buf).await),
        };
        let now = clock::now();
        match read {
            None => self.core.handle_timeout(now),
            Some(Ok(0)) | Some(Err(_)) => {
                self.stream = None;
                self.trace
                    .record(&self.name, "connection closed by the server");
                self.core.handle_server_closed(now);
            }
            Some(Ok(n)) => {
                self.tap(&buf[..n]);
                self.core.handle_server_bytes(&buf[..n], now);
            }
        }
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
                }
                ClientOutput::Prompt(p) => self.prompts.push_back(p),
                ClientOutput::Exit(status) => {
                    self.trace.record(&self.name, format!("exit {status:?}"));
                    self.exit = Some(status);
                    // The process ends: its socket closes.
                    self.stream = None;
                }
            }
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
