//! The client state machine: the login dialogue, one command at a time, pushed events.
//!
//! # Driving it
//! A driver owns the TCP connection, the UDP socket, the files and the terminal (or the
//! pipe). Its loop, the same in every runtime and in the simulator:
//!
//! 1. drain [`Client::poll_output`] until it returns `None`, carrying out each output in
//!    order (send bytes or a datagram, show a line, ask for a line, do a file operation and
//!    hand its answer back, exit);
//! 2. wait for the next input — bytes or the end of the server connection, a typed line or
//!    the end of input, a datagram — or until [`Client::poll_timeout`];
//! 3. hand it to [`Client::handle_input`] with the current time ([`Input::Timeout`] if the
//!    wait ended on the timer), and go to 1.
//!
//! Before the loop, a driver whose UDP socket sends several datagrams at once (UDP GSO) says
//! how many with [`Client::set_max_segments`]: a [`ClientOutput::Transmit`] then carries up
//! to that many back to back, to hand to the socket as they are. Without it every transmit is
//! one datagram.
//!
//! `handle_input` runs the timers that are due after every input, so a steady stream of
//! input (a fast transfer's datagrams) never starves them, and a driver need not decide when
//! to call them.
//!
//! The client asks for a new line only once the previous request has its reply, which is
//! what lets a script pipe one command per line into it.

pub mod consent;
mod emulation;
mod input;
mod known_users;
pub mod local;
mod narration;
mod output;
mod post_ids;
mod progress;
mod render;
pub mod sanitize;
mod secure;
mod seen_posts;
mod shortcuts;
mod upload_queue;
mod uploads;

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

pub use consent::{AcceptPolicy, ConsentPolicy};
pub use input::Input;
pub use output::{
    ClientOutput, Direction, Display, ExitStatus, FileOp, FileProblem, FileResult, KeptPart,
    KnownUser, Outcome, Phase, Progress, Prompt, Tone,
};
pub use progress::ProgressConfig;
pub use render::human_bytes;
pub use secure::{Security, TlsSetup};

use crate::proto::event::Event;
use crate::proto::report::{UploadOutcome, UploadReport};
use crate::proto::request::{is_upload_line, parse_user_upload};
use crate::proto::upload::parse_upload_grant;
use crate::time::Clock;
use crate::transfer::netem::NetemConfig;
use crate::transfer::{TransferConfig, TransferId, base_name};
use crate::types::UserName;
use emulation::Emulation;
use known_users::KnownUsers;
use secure::Link;
use seen_posts::SeenPosts;
use upload_queue::{PendingUpload, UploadQueue};
use uploads::Transfers;

use crate::proto::event::{is_event_line, parse_event};
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::reply::{Code, Reply, ReplyAssembler, welcomed_user};
use crate::proto::request::{
    Command, Request, RequestError, parse_request_str, unknown_command_text,
};
use crate::time::UnixMillis;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// A person at a terminal (asks for a new password twice) rather than a script.
    pub interactive: bool,
    /// The UDP port this client receives uploads on, declared to the server before login.
    pub udp_port: Option<u16>,
    /// Settings of every upload and download.
    pub transfer: TransferConfig,
    /// Pass every datagram this client sends through a seeded emulated path (loss, delay,
    /// duplication): for benchmarks and tests of loss recovery over loopback, which loses
    /// nothing. `None` (the default) in normal use.
    pub emulate: Option<NetemConfig>,
    /// Close each upload and download with its counters (datagrams, repeats, time in ms,
    /// memory held), for benchmarks and for users who want to know.
    pub transfer_stats: bool,
    /// Which incoming uploads are taken, declined, or asked about.
    pub consent: ConsentPolicy,
    /// How transfer progress is measured and reported.
    pub progress: ProgressConfig,
    /// Seed of the generator every transfer's key exchange draws from: 32 bytes from the OS
    /// in the runtimes (it makes the session keys secret), fixed in tests and simulations
    /// (so that a run replays exactly).
    pub rng_seed: [u8; 32],
    /// TLS on the text link (upgrade with `STARTTLS`, the default of the binary) or not.
    pub security: Security,
    /// Keep every plaintext byte received from the server for [`Client::take_received`]: for
    /// observers that check the protocol with their own parsers (simulators), since on an
    /// upgraded link the wire shows only ciphertext. Off by default.
    pub keep_received: bool,
    /// Posts whose number, author and timestamp the client remembers, for `DLT n` and
    /// `EDT n text` (10,000: far more than anyone scrolls back to; a few hundred KiB).
    pub max_seen_posts: usize,
    /// User names the client remembers for completion (10,000; offline ones forgotten first).
    pub max_known_users: usize,
    /// How long a server that accepted the connection may stay silent before its greeting
    /// (ms; 10 s): a wrong port (another service that waits for its client to speak) or a
    /// stuck server is said so, instead of a client that waits for ever with nothing shown.
    pub greeting_timeout_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            interactive: false,
            udp_port: None,
            transfer: TransferConfig::default(),
            emulate: None,
            transfer_stats: false,
            consent: ConsentPolicy::default(),
            progress: ProgressConfig::default(),
            rng_seed: [0; 32],
            security: Security::default(),
            keep_received: false,
            max_seen_posts: 10_000,
            max_known_users: 10_000,
            greeting_timeout_ms: 10_000,
        }
    }
}

/// Where a client that started a queued upload goes back to once the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// The command prompt, still open.
    Ready,
    /// Logging out once the transfers end.
    Draining,
}

/// Input that came while a queued upload was being started.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deferred {
    Line(String),
    Closed,
}

/// Where the client is in its conversation with the server and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Connected (or just upgraded to TLS); waiting for the greeting.
    Greeting,
    /// Sent `STARTTLS`; waiting for the server's `220`.
    StartingTls,
    /// Sent our UDP port; waiting for the server to note it.
    DeclaringPort,
    /// Asked the user for a user name.
    AskUser,
    /// Sent a user name; waiting for the server.
    SentUser,
    /// Asked for the password of `0`.
    AskPassword,
    /// Sent a password; waiting for the server.
    SentPassword,
    /// Asked for a new password.
    AskNewPassword,
    /// Asked to type the new password again.
    ConfirmPassword(String),
    /// Sent the new password; waiting for the server.
    SentNewPassword,
    /// Sent an empty new password, which cancels the sign-up: the server asks for a name
    /// again, and the next line is one (the user or the script chose to go back).
    CancelledSignUp,
    /// Logged in as `0`, waiting for a command.
    Ready,
    /// Checking the file of an upload before asking the server.
    Inspecting,
    /// Sent a command; waiting for its reply.
    Waiting(Command),
    /// `OUT` was asked for; waiting for the running transfers to end first.
    Draining,
    /// Finished; everything else is ignored.
    Done,
}

/// The huddle client, Sans-IO.
pub struct Client {
    config: ClientConfig,
    state: State,
    /// Until the server's first byte: when to give up on a silent one.
    greeting_deadline: Option<UnixMillis>,
    user: Option<String>,
    framer: LineFramer,
    /// In clear, or through TLS after `STARTTLS`.
    link: Link,
    /// Plaintext received, kept for an observer ([`ClientConfig::keep_received`]).
    tap: Vec<u8>,
    /// The server is closing the connection (it said goodbye, or it is gone): nothing more
    /// need be said to it — data sent to a socket it shut down only makes it reset.
    server_closing: bool,
    replies: ReplyAssembler,
    outputs: VecDeque<ClientOutput>,
    transfers: Transfers,
    pending_upload: Option<PendingUpload>,
    /// Uploads asked for while as many ran as the client takes.
    queued: UploadQueue,
    /// A queued upload is being started (its file checked, the server asked) while the user's
    /// prompt stays open; when it is, the client goes back to this state without a new prompt.
    background: Option<Resume>,
    /// What the user answered that open prompt with meanwhile, taken once the start is done.
    deferred: Option<Deferred>,
    /// The command prompt is open: the user is typing, nothing they asked for is being done.
    /// Only then (or while logging out) may a queued upload start in the background.
    prompt_open: bool,
    emulation: Option<Emulation>,
    /// Reused for the transfers' outputs, so a datagram costs no allocation here.
    scratch: Vec<ClientOutput>,
    /// The id each post number stood for when it was shown.
    seen: post_ids::SeenPosts,
    clock: Clock,
    /// The author and timestamp of each post seen, for `DLT n` / `EDT n text`.
    times: SeenPosts,
    /// User names heard of, for completion.
    known: KnownUsers,
    /// How posts and their times read (short with day lines at a terminal).
    timeline: render::Timeline,
}

impl Client {
    /// A client that has just connected to the server.
    ///
    /// A client that receives uploads (it has a UDP port) first asks its driver to remove the
    /// part files a crashed client left in the download folder.
    pub fn new(config: ClientConfig, now: UnixMillis) -> Self {
        let mut outputs = VecDeque::new();
        if config.udp_port.is_some() {
            outputs.push_back(ClientOutput::File(FileOp::RemoveStaleParts {
                now,
                max_age_ms: config.transfer.resume_max_age_ms,
            }));
        }
        Self {
            transfers: Transfers::new(
                config.transfer.clone(),
                config.consent.clone(),
                config.progress.clone(),
                config.transfer_stats,
                config.rng_seed,
            ),
            emulation: config.emulate.clone().map(Emulation::new),
            scratch: Vec::new(),
            seen: post_ids::SeenPosts::default(),
            pending_upload: None,
            queued: UploadQueue::default(),
            background: None,
            deferred: None,
            prompt_open: false,
            clock: Clock::new(now),
            times: SeenPosts::new(config.max_seen_posts),
            known: KnownUsers::new(config.max_known_users),
            timeline: render::Timeline::new(config.interactive),
            greeting_deadline: Some(now.plus_millis(config.greeting_timeout_ms)),
            config,
            state: State::Greeting,
            user: None,
            framer: LineFramer::with_limits(crate::proto::MAX_SERVER_LINE, None),
            link: Link::Clear,
            tap: Vec::new(),
            server_closing: false,
            replies: ReplyAssembler::new(),
            outputs,
        }
    }

    /// The user name, once logged in.
    pub fn user(&self) -> Option<&str> {
        match self.state {
            State::Ready | State::Waiting(_) | State::Inspecting => self.user.as_deref(),
            _ => None,
        }
    }

    /// Whether the link to the server is encrypted (upgraded with `STARTTLS`).
    pub fn is_encrypted(&self) -> bool {
        self.link.is_tls()
    }

    /// The plaintext received from the server since the last call (only with
    /// [`ClientConfig::keep_received`]).
    pub fn take_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tap)
    }

    /// The driver's UDP socket sends up to `segments` equal-sized datagrams in one call (what
    /// quinn-udp's `max_gso_segments` says; 1 without UDP GSO): no
    /// [`ClientOutput::Transmit`] carries more. The transfers decide how many they batch
    /// within it ([`TransferConfig::batch_segments`]).
    pub fn set_max_segments(&mut self, segments: usize) {
        self.transfers.set_max_segments(segments);
    }

    /// Whether the client has finished (an [`ClientOutput::Exit`] was emitted).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next thing to do.
    ///
    /// Every line to show and every progress label comes out neutralised
    /// ([`sanitize::neutralise`]): text from the network never reaches a terminal as commands.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        let mut out = self.outputs.pop_front()?;
        match &mut out {
            ClientOutput::Show(d) => sanitize::neutralise_in_place(&mut d.text),
            ClientOutput::Progress(p) => sanitize::neutralise_in_place(&mut p.label),
            _ => {}
        }
        Some(out)
    }

    /// When the core next wants [`Input::Timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let emulated = self.emulation.as_ref().and_then(Emulation::poll_timeout);
        [
            self.transfers.poll_timeout(),
            emulated,
            self.tls_poll_timeout(),
            self.greeting_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether an upload or download is running.
    pub fn is_transferring(&self) -> bool {
        self.transfers.is_busy()
    }

    /// Take one input at `now`, then run the timers that are due by `now`.
    ///
    /// The one door for drivers; see the module documentation for the loop around it.
    pub fn handle_input(&mut self, input: Input, now: UnixMillis) {
        match input {
            Input::ServerBytes(bytes) => self.handle_server_bytes(&bytes, now),
            Input::ServerClosed => self.handle_server_closed(now),
            Input::UserLine(line) => self.handle_user_line(&line, now),
            Input::InputClosed => self.handle_input_closed(now),
            Input::Datagram { from, bytes } => self.handle_datagram(from, bytes, now),
            Input::Datagrams {
                from,
                bytes,
                stride,
            } => self.handle_datagrams(from, bytes, stride, now),
            Input::Inspected(result) => self.handle_inspected(result, now),
            Input::File { id, result } => self.handle_file_result(id, result, now),
            Input::Decision { id, accept } => self.handle_decision(id, accept, now),
            Input::Interrupt => self.handle_interrupt(now),
            Input::Timeout => {}
        }
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now);
        }
    }

    /// Time passed; a spurious call is harmless.
    pub(crate) fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.greeting_deadline.is_some_and(|t| t <= now) {
            self.greeting_deadline = None;
            self.show(
                Tone::Error,
                format!(
                    "The server accepted the connection but said nothing for {}: is this the port of a huddle server? (A huddle server greets at once.)",
                    narration::duration(self.config.greeting_timeout_ms)
                ),
            );
            self.exit(ExitStatus::ConnectionLost);
            return;
        }
        self.tls_timeout(now);
        self.transfers.handle_timeout(now);
        self.pump();
    }

    /// A datagram arrived on the client's UDP socket.
    pub(crate) fn handle_datagram(&mut self, from: SocketAddr, bytes: Bytes, now: UnixMillis) {
        let now = self.clock.advance(now);
        self.transfers.handle_datagram(from, bytes, now);
        self.pump();
    }

    /// A run of `stride`-sized datagrams from `from` (one GRO receive).
    fn handle_datagrams(&mut self, from: SocketAddr, bytes: Bytes, stride: usize, now: UnixMillis) {
        let now = self.clock.advance(now);
        let stride = if stride == 0 {
            bytes.len().max(1)
        } else {
            stride
        };
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + stride).min(bytes.len());
            self.transfers
                .handle_datagram(from, bytes.slice(at..end), now);
            at = end;
        }
        self.pump();
    }

    /// The driver's answer to [`ClientOutput::InspectFile`].
    pub(crate) fn handle_inspected(&mut self, result: Result<u64, FileProblem>, now: UnixMillis) {
        self.clock.advance(now);
        if self.state != State::Inspecting {
            return;
        }
        let Some(pending) = self.pending_upload.clone() else {
            self.command_prompt();
            return;
        };
        // What the file is comes first (a folder is a folder, whatever its name), then whether
        // its name may travel.
        match result.map(|size| (size, base_name(&pending.path).map(str::to_owned))) {
            Ok((_, Ok(_))) if self.background.is_none() && self.must_wait() => {
                self.pending_upload = None;
                self.enqueue(pending);
            }
            Ok((size, Ok(name))) => {
                self.send_line(&format!("UPD {} {size} {name}", pending.to));
                self.state = State::Waiting(Command::Upd);
            }
            Ok((_, Err(e))) => {
                self.pending_upload = None;
                self.show(Tone::Error, format!("Cannot upload {}: {e}", pending.path));
                self.command_prompt();
            }
            Err(problem) => {
                self.pending_upload = None;
                self.show(
                    Tone::Error,
                    narration::upload_problem(&pending.path, &problem),
                );
                self.command_prompt();
            }
        }
    }

    /// The user wants out now (a second Ctrl-C while no prompt is open): every transfer is
    /// cancelled — its peer told at once, a download's bytes kept for resuming — and the
    /// client stops with [`ExitStatus::Interrupted`], without waiting for the server.
    pub(crate) fn handle_interrupt(&mut self, now: UnixMillis) {
        self.clock.advance(now);
        if self.state == State::Done {
            return;
        }
        let text = if self.transfers.is_busy() {
            "Interrupted. The running transfers were cancelled and their peers told; what was received is kept for resuming."
        } else {
            "Interrupted."
        };
        self.show(Tone::Error, text);
        self.exit(ExitStatus::Interrupted);
    }

    /// The user's answer about incoming upload `id`, from a UI's own control.
    pub(crate) fn handle_decision(&mut self, id: TransferId, accept: bool, now: UnixMillis) {
        let now = self.clock.advance(now);
        let mut out = Vec::new();
        self.transfers.decide_id(id, accept, now, &mut out);
        self.queue_transfer_outputs(out);
        self.pump();
    }

    /// The driver's answer to a [`FileOp`] of transfer `id`.
    pub(crate) fn handle_file_result(
        &mut self,
        id: TransferId,
        result: FileResult,
        now: UnixMillis,
    ) {
        let now = self.clock.advance(now);
        let mut out = Vec::new();
        self.transfers.handle_file_result(id, result, now, &mut out);
        self.queue_transfer_outputs(out);
        self.pump();
    }

    /// Move what the transfers want done into the output queue (through the emulated path,
    /// if one is configured).
    fn pump(&mut self) {
        let now = self.clock.now();
        let mut out = std::mem::take(&mut self.scratch);
        self.transfers.drain(now, &mut out);
        if let Some(path) = self.emulation.as_mut() {
            // Datagrams take the emulated path; everything else stays, in order.
            out.retain(|o| match o {
                ClientOutput::Transmit {
                    to,
                    bytes,
                    segment_size,
                } => {
                    path.send(*to, bytes, *segment_size, now);
                    false
                }
                _ => true,
            });
        }
        self.queue_transfer_outputs(out.drain(..));
        if let Some(path) = self.emulation.as_mut() {
            path.release(now, self.transfers.max_segments(), &mut self.outputs);
        }
        self.scratch = out;
        self.start_queued();
        self.finish_draining();
    }

    /// Queue what the transfers want done; the end of an upload is also reported to the
    /// server (`XFR`, no reply), whose console narrates each upload's outcome once.
    fn queue_transfer_outputs(&mut self, out: impl IntoIterator<Item = ClientOutput>) {
        for o in out {
            let report = match &o {
                ClientOutput::Progress(Progress {
                    id,
                    direction: Direction::Upload,
                    done,
                    phase: Phase::Ended(outcome),
                    ..
                }) if !self.server_closing => Some(UploadReport {
                    id: *id,
                    outcome: match outcome {
                        Outcome::Complete => UploadOutcome::Complete,
                        Outcome::Declined => UploadOutcome::Declined,
                        Outcome::Cancelled => UploadOutcome::Cancelled,
                        Outcome::Failed => UploadOutcome::Failed,
                    },
                    bytes: *done,
                }),
                _ => None,
            };
            self.outputs.push_back(o);
            if let Some(r) = report {
                self.send_line(&r.to_string());
            }
        }
    }

    /// Bytes arrived from the server.
    pub(crate) fn handle_server_bytes(&mut self, bytes: &[u8], now: UnixMillis) {
        let now = self.clock.advance(now);
        if self.state == State::Done {
            return;
        }
        if !bytes.is_empty() {
            self.greeting_deadline = None;
        }
        match self.link {
            Link::Clear => self.received(bytes),
            Link::Tls(_) => {
                if !self.open_tls(bytes, now) {
                    self.pump();
                    return;
                }
            }
            Link::Broken => return,
        }
        // One line at a time: a line may switch the link to TLS, and what follows it must
        // then not be read as if it had come through TLS.
        while let Some(frame) = self.framer.next_frame() {
            if self.state == State::Done {
                return;
            }
            match frame {
                Frame::TooLong | Frame::Runaway => {
                    self.protocol_error("the server sent a line longer than the protocol allows")
                }
                Frame::Line(line) => match String::from_utf8(line) {
                    Ok(line) => self.on_server_line(&line),
                    Err(_) => self.protocol_error("the server sent a line that is not UTF-8"),
                },
            }
        }
        if let Some(users) = self.known.take_changed() {
            self.outputs.push_back(ClientOutput::Users(users));
        }
        self.pump();
    }

    /// `user` exists (and is online, if `online` says so); the user's own name is not
    /// offered to complete.
    fn learn_user(&mut self, user: &UserName, online: Option<bool>) {
        if self.user.as_deref() != Some(user.as_str()) {
            self.known.saw(user, online);
        }
    }

    /// Whether `e` is a post by this client's user.
    fn is_own_post(&self, e: &Event) -> bool {
        matches!(e, Event::Post { author, .. } if self.user.as_deref() == Some(author.as_str()))
    }

    /// What an event says about posts and users, before it is shown.
    fn learn_from_event(&mut self, e: &Event) {
        match e {
            Event::Post {
                number,
                at,
                author,
                id,
                ..
            }
            | Event::Edited {
                number,
                at,
                author,
                id,
                ..
            } => {
                self.seen.saw(*number, *id);
                self.times.saw(number.get(), author.clone(), *at, Some(*id));
                self.learn_user(author, None);
            }
            Event::Deleted { number, id, author } => {
                self.times.deleted(number.get(), Some(*id));
                self.learn_user(author, None);
            }
            Event::Private { from, .. } => self.learn_user(from, None),
            Event::Online { user } => self.learn_user(user, Some(true)),
            Event::Offline { user } => self.learn_user(user, Some(false)),
            Event::Upload(g) => self.learn_user(&g.user, Some(true)),
            Event::Backlog { .. }
            | Event::Ping { .. }
            | Event::Notice { .. }
            | Event::Posted { .. } => {}
        }
    }

    /// What the reply to our own `command` says about posts and users.
    fn learn_from_reply(&mut self, command: Command, reply: &Reply) {
        if reply.code != Code::OK {
            return;
        }
        match command {
            Command::Blk => {
                let blocked = reply
                    .lines
                    .first()
                    .and_then(|l| l.split_once(" is now blocked"))
                    .and_then(|(name, _)| UserName::new(name).ok());
                if let Some(user) = blocked {
                    let mut out = Vec::new();
                    self.transfers
                        .presenter_blocked(&user, self.clock.now(), &mut out);
                    self.queue_transfer_outputs(out);
                    self.pump();
                }
            }
            Command::Msg | Command::Edt | Command::Dlt => {
                if let (Some(me), Some(first)) = (
                    self.user.as_deref().and_then(|u| UserName::new(u).ok()),
                    reply.lines.first(),
                ) {
                    self.times.own_reply(&me, first);
                }
            }
            Command::Rdm => {
                for line in reply.lines.iter().skip(1) {
                    self.times.listing_line(line);
                    if let Some(author) = line
                        .split_once(' ')
                        .and_then(|(_, rest)| rest.split_once(", "))
                        .and_then(|(u, _)| UserName::new(u).ok())
                    {
                        self.learn_user(&author, None);
                    }
                }
            }
            Command::Atu => {
                let me = self.user.clone();
                for line in &reply.lines {
                    if me
                        .as_deref()
                        .is_none_or(|m| !line.starts_with(&format!("{m}, ")))
                    {
                        self.known.atu_line(line);
                    }
                }
            }
            Command::Rcu => {
                let me = self.user.clone();
                for line in reply.lines.iter().skip(1) {
                    if me
                        .as_deref()
                        .is_none_or(|m| !line.starts_with(&format!("{m}, ")))
                    {
                        self.known.rcu_line(line);
                    }
                }
            }
            _ => {}
        }
    }

    /// Plaintext from the server, for the line framer (and the observer's tap).
    fn received(&mut self, bytes: &[u8]) {
        if self.config.keep_received {
            self.tap.extend_from_slice(bytes);
        }
        self.framer.extend(bytes);
    }

    /// The server closed the connection (or it broke).
    pub(crate) fn handle_server_closed(&mut self, _now: UnixMillis) {
        self.server_closing = true;
        if self.state == State::Done {
            return;
        }
        self.show(Tone::Error, "Connection to the server lost.");
        self.exit(ExitStatus::ConnectionLost);
    }

    /// The user typed `line` (without its line ending).
    pub(crate) fn handle_user_line(&mut self, line: &str, _now: UnixMillis) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if self.background.is_some() && self.deferred.is_none() {
            // The answer to the prompt that stayed open while a queued upload starts.
            self.deferred = Some(Deferred::Line(line.to_string()));
            return;
        }
        self.prompt_open = false;
        match self.state.clone() {
            State::AskUser => {
                let name = line.trim();
                if name.is_empty() {
                    self.prompt(Prompt::UserName);
                    return;
                }
                self.user = Some(name.to_string());
                self.send_line(name);
                self.state = State::SentUser;
            }
            State::AskPassword => {
                self.send_line(line);
                self.state = State::SentPassword;
            }
            State::AskNewPassword => {
                // An empty line goes back to the user name (a mistyped name leads here): the
                // server cancels the sign-up and asks for a name again.
                if line.is_empty() {
                    self.send_line(line);
                    self.state = State::CancelledSignUp;
                } else if self.config.interactive {
                    self.state = State::ConfirmPassword(line.to_string());
                    self.prompt(Prompt::ConfirmPassword);
                } else {
                    self.send_line(line);
                    self.state = State::SentNewPassword;
                }
            }
            State::ConfirmPassword(first) => {
                if first == line {
                    self.send_line(line);
                    self.state = State::SentNewPassword;
                } else {
                    self.show(
                        Tone::Error,
                        "The two passwords differ. Choose a password again.",
                    );
                    self.state = State::AskNewPassword;
                    self.prompt(Prompt::NewPassword);
                }
            }
            State::Ready => self.on_command_line(line),
            State::Greeting
            | State::StartingTls
            | State::DeclaringPort
            | State::SentUser
            | State::SentPassword
            | State::SentNewPassword
            | State::CancelledSignUp
            | State::Inspecting
            | State::Draining
            | State::Waiting(_) => {
                self.show(
                    Tone::Error,
                    "Please wait for the reply to the previous request.",
                );
            }
            State::Done => {}
        }
    }

    /// Input ended (end of file on a pipe, Ctrl-D at a terminal).
    ///
    /// At the command prompt this logs out as `OUT` would; before login it is a failed login.
    pub(crate) fn handle_input_closed(&mut self, _now: UnixMillis) {
        if self.background.is_some() && self.deferred.is_none() {
            self.deferred = Some(Deferred::Closed);
            return;
        }
        self.prompt_open = false;
        match self.state {
            State::Ready => self.log_out(),
            State::Waiting(_) | State::Inspecting | State::Draining | State::Done => {}
            _ => {
                self.show(Tone::Error, "Input ended before login completed.");
                self.exit(ExitStatus::LoginFailed);
            }
        }
    }

    /// A piped login the server refused: the input was written for one name and one
    /// password, so its next line is not the `what` the server asks for. Exit 3.
    fn give_up_login(&mut self, what: &str) {
        self.show(
            Tone::Error,
            format!(
                "Login failed: input that is not a terminal gives one user name, one password, then commands, so this client does not try {what}; correct the input's first lines and run it again."
            ),
        );
        self.exit(ExitStatus::LoginFailed);
    }

    // ----- internals -----

    fn send_line(&mut self, line: &str) {
        let mut s = String::with_capacity(line.len() + 1);
        s.push_str(line);
        s.push('\n');
        self.send_bytes(Bytes::from(s));
    }

    fn show(&mut self, tone: Tone, text: impl Into<String>) {
        self.outputs.push_back(ClientOutput::Show(Display {
            tone,
            text: text.into(),
            pushed: false,
        }));
    }

    fn prompt(&mut self, p: Prompt) {
        self.outputs.push_back(ClientOutput::Prompt(p));
    }

    /// The current request is answered: ask for the next command — or, when the request was
    /// a queued upload's, go back to where the client was (its prompt is still open) and take
    /// what the user typed meanwhile. Then start the next queued upload if one may start.
    fn command_prompt(&mut self) {
        match self.background.take() {
            None => {
                self.state = State::Ready;
                self.prompt_open = true;
                let user = self.user.clone().unwrap_or_default();
                self.prompt(Prompt::Command(user));
            }
            Some(Resume::Draining) => self.state = State::Draining,
            Some(Resume::Ready) => {
                self.state = State::Ready;
                self.prompt_open = true;
                match self.deferred.take() {
                    Some(Deferred::Line(line)) => {
                        self.prompt_open = false;
                        self.on_command_line(&line);
                    }
                    Some(Deferred::Closed) => {
                        self.prompt_open = false;
                        self.log_out();
                    }
                    None => {}
                }
            }
        }
        self.start_queued();
        self.finish_draining();
    }

    /// Start the oldest queued upload if the client is free to ask the server (at the prompt,
    /// or logging out) and an upload may start.
    fn start_queued(&mut self) {
        let resume = match self.state {
            State::Ready if self.prompt_open => Resume::Ready,
            State::Draining => Resume::Draining,
            _ => return,
        };
        if self.background.is_some() || self.transfers.uploads_at_limit().is_some() {
            return;
        }
        let Some(next) = self.queued.pop() else {
            return;
        };
        self.background = Some(resume);
        self.inspect(next);
    }

    /// Logging out and nothing left to wait for: say `OUT`.
    fn finish_draining(&mut self) {
        if self.state == State::Draining
            && self.queued.is_empty()
            && !self.transfers.is_busy()
            && !self.transfers.is_lingering()
        {
            self.send_line("OUT");
            self.state = State::Waiting(Command::Out);
        }
    }

    fn exit(&mut self, status: ExitStatus) {
        self.state = State::Done;
        self.background = None;
        let dropped = self.queued.clear();
        if !dropped.is_empty() {
            self.show(Tone::Error, narration::queue_dropped(&dropped));
        }
        // Tell the peers of running transfers that we are leaving, so they stop at once
        // instead of waiting for their timeout; and say first why they stop (each then ends
        // with "cancelled", which nobody typed).
        let why = match status {
            ExitStatus::ServerClosed => Some("the server closed the connection"),
            ExitStatus::ConnectionLost => Some("the connection to the server was lost"),
            ExitStatus::ProtocolError => Some("the server broke the protocol"),
            ExitStatus::Interrupted => Some("it was interrupted"),
            _ => None,
        };
        if let Some(why) = why
            && self.transfers.is_busy()
        {
            self.show(
                Tone::Error,
                format!(
                    "The running transfers stop now: this client exits because {why} (their peers are told; what a download received is kept for resuming)."
                ),
            );
        }
        self.transfers.cancel_all(self.clock.now());
        self.pump();
        self.close_tls();
        self.outputs.push_back(ClientOutput::Exit(status));
    }

    fn protocol_error(&mut self, what: &str) {
        self.show(
            Tone::Error,
            format!("Protocol error: {what}. Disconnecting."),
        );
        self.exit(ExitStatus::ProtocolError);
    }

    fn on_server_line(&mut self, line: &str) {
        if is_event_line(line) && !self.replies.is_pending() {
            let mut left = None;
            let (tone, text) = match parse_event(line) {
                Some(Event::Posted { number, id }) => {
                    // Our own post's id: remembered, not shown (the reply that follows is).
                    self.seen.saw(number, id);
                    self.times.posted(number, id);
                    return;
                }
                Some(Event::Ping { token }) => {
                    // The server's keepalive: answered at once, whatever the user is doing.
                    self.send_line(&format!("PONG {token}"));
                    return;
                }
                Some(Event::Upload(grant)) => {
                    let mut out = Vec::new();
                    self.transfers
                        .start_download(grant, self.clock.now(), &mut out);
                    self.queue_transfer_outputs(out);
                    return;
                }
                // Your own posts are never pushed to you live: this is the catch-up at login,
                // where they are not news. Remembered for `DLT n`, not shown.
                Some(e) if self.is_own_post(&e) => {
                    self.learn_from_event(&e);
                    return;
                }
                Some(e) => {
                    self.learn_from_event(&e);
                    if let Event::Offline { user } = &e {
                        left = Some(user.clone());
                    }
                    self.timeline.event(&e)
                }
                None => (Tone::Notice, format!("(unrecognised event) {}", &line[2..])),
            };
            self.outputs.push_back(ClientOutput::Show(Display {
                tone,
                text,
                pushed: true,
            }));
            if let Some(user) = left {
                // Its transfers with us end now, not after the idle timeout.
                self.transfers.peer_left(&user, self.clock.now());
                self.pump();
            }
            return;
        }
        match self.replies.push(line) {
            Ok(Some(reply)) => self.on_reply(reply),
            Ok(None) => {}
            Err(e) => self.protocol_error(&e.to_string()),
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let code = reply.code;
        if matches!(code, Code::BYE | Code::CLOSING | Code::LOCKED_OUT) {
            self.server_closing = true;
        }
        if code == Code::CLOSING && self.state != State::Done {
            self.closed_by_server(&reply);
            return;
        }
        let tone = if code.is_error() {
            Tone::Error
        } else {
            Tone::Info
        };
        match self.state.clone() {
            State::Greeting => self.on_greeting(reply),
            State::StartingTls => self.on_starttls_answer(reply, self.clock.now()),
            State::DeclaringPort => {
                if code.is_error() {
                    self.show(Tone::Error, reply.text());
                }
                self.ask_user();
            }
            State::CancelledSignUp => {
                self.show(tone, reply.text());
                self.ask_user();
            }
            State::SentUser | State::SentPassword | State::SentNewPassword => match code {
                Code::ASK_PASSWORD => {
                    self.state = State::AskPassword;
                    self.prompt(Prompt::Password);
                }
                Code::ASK_NEW_PASSWORD if self.config.interactive => {
                    self.show(
                        tone,
                        format!(
                            "{} (Enter on an empty line goes back to the user name.)",
                            reply.text()
                        ),
                    );
                    self.state = State::AskNewPassword;
                    self.prompt(Prompt::NewPassword);
                }
                // Piped, the next line is a command, not another password: stop rather than
                // sign up with it.
                Code::NEW_PASSWORD_REFUSED if !self.config.interactive => {
                    self.show(Tone::Error, reply.text());
                    self.give_up_login("another password");
                }
                Code::ASK_NEW_PASSWORD | Code::NEW_PASSWORD_REFUSED => {
                    self.show(tone, reply.text());
                    self.state = State::AskNewPassword;
                    self.prompt(Prompt::NewPassword);
                }
                Code::WRONG_PASSWORD => {
                    self.show(Tone::Error, reply.text());
                    self.state = State::AskPassword;
                    self.prompt(Prompt::Password);
                }
                Code::LOGGED_IN => {
                    self.show(Tone::Success, reply.text());
                    // The account's own spelling (`leia` when `LEIA` was typed).
                    if let Some(name) = reply.lines.first().and_then(|l| welcomed_user(l)) {
                        self.user = Some(name.to_string());
                    }
                    if let Some(user) = &self.user {
                        self.transfers.set_user(user);
                    }
                    self.command_prompt();
                }
                Code::LOCKED_OUT => {
                    self.show(Tone::Error, reply.text());
                    self.exit(ExitStatus::LockedOut);
                }
                // The server wants TLS from us (we were told to speak in clear): another
                // user name would meet the same answer, and the next line a script pipes in
                // is its password — which must not follow a name in clear.
                Code::TLS_REQUIRED => {
                    self.show(Tone::Error, reply.text());
                    self.exit(ExitStatus::LoginFailed);
                }
                // The name was refused (taken, logged in already, reserved, unknown without
                // sign-up). A person types another; a script's next lines are its password
                // and commands, which must never be sent as user names (a password would
                // reach the server's log, a command could become an account).
                _ if !self.config.interactive => {
                    self.show(Tone::Error, reply.text());
                    self.give_up_login("another user name");
                }
                _ => {
                    self.show(tone, reply.text());
                    self.ask_user();
                }
            },
            State::Waiting(Command::Upd) if code == Code::UPLOAD_APPROVED => {
                let pending = self.pending_upload.take();
                match (parse_upload_grant(&reply.text()), pending) {
                    (Some(grant), Some(p)) => {
                        let mut out = Vec::new();
                        self.transfers
                            .start_upload(grant, p.path, self.clock.now(), &mut out);
                        self.queue_transfer_outputs(out);
                    }
                    _ => self.show(
                        Tone::Error,
                        format!(
                            "The server sent a malformed upload approval: {}",
                            reply.text()
                        ),
                    ),
                }
                self.command_prompt();
            }
            State::Waiting(command) => {
                // A queued upload's refusal comes long after its line: say which it was.
                let queued = match self.pending_upload.take() {
                    Some(p) if command == Command::Upd && self.background.is_some() => Some(p),
                    _ => None,
                };
                self.learn_from_reply(command, &reply);
                let tone = if code.is_error() {
                    Tone::Error
                } else if code == Code::OK {
                    Tone::Success
                } else {
                    Tone::Info
                };
                let text = if command == Command::Rdm {
                    // Remember which post each number shown is; ids are shown to a person
                    // (who may type them), not to scripts (see `render::event`).
                    let ids = self.config.interactive;
                    reply
                        .text()
                        .lines()
                        .map(|l| self.seen.listing_line(l, ids))
                        .collect::<Vec<_>>()
                        .join("\n")
                } else if let Some(p) = queued {
                    format!("Cannot upload {} to {}: {}", p.path, p.to, reply.text())
                } else {
                    reply.text()
                };
                self.show(tone, text);
                if command == Command::Out && code == Code::BYE {
                    self.exit(ExitStatus::LoggedOut);
                } else {
                    self.command_prompt();
                }
            }
            State::Ready
            | State::Inspecting
            | State::Draining
            | State::AskUser
            | State::AskPassword
            | State::AskNewPassword
            | State::ConfirmPassword(_) => {
                // A reply nobody asked for: the server is confused (a closing one is handled
                // above).
                self.show(tone, reply.text());
            }
            State::Done => {}
        }
    }

    /// The server said it is closing the connection (`421`, in any state): say why on a line
    /// of its own — pushed, so a terminal prints it above whatever is being typed — and stop
    /// with [`ExitStatus::ServerClosed`].
    fn closed_by_server(&mut self, reply: &Reply) {
        self.outputs.push_back(ClientOutput::Show(Display {
            tone: Tone::Error,
            text: format!("Disconnected by the server: {}", reply.text()),
            pushed: true,
        }));
        self.exit(ExitStatus::ServerClosed);
    }

    fn on_upload_line(&mut self, line: &str) {
        let (to, path) = match parse_user_upload(line) {
            Ok(x) => x,
            Err(e) => {
                self.show(Tone::Error, e.to_string());
                self.command_prompt();
                return;
            }
        };
        // The file is checked first, also when the upload will have to wait: a mistyped name
        // or a folder is said at once, not when its turn comes.
        self.inspect(PendingUpload { to, path });
    }

    /// Whether a new upload must wait its turn: as many run as the client takes, or others
    /// wait already (oldest first, even when a slot just came free).
    fn must_wait(&self) -> bool {
        self.transfers.uploads_at_limit().is_some() || !self.queued.is_empty()
    }

    /// Put `upload`, whose file was found, last in line (or refuse it when the line is full).
    fn enqueue(&mut self, upload: PendingUpload) {
        let at_limit = self.transfers.uploads_at_limit();
        let (path, to) = (upload.path.clone(), upload.to.clone());
        let text = match self.queued.push(upload) {
            Ok(place) => narration::upload_queued(&path, &to, at_limit, place),
            Err(_) => narration::upload_queue_full(&path, at_limit, self.queued.len()),
        };
        self.show(Tone::Info, text);
        self.command_prompt();
    }

    /// Check `upload`'s file (the driver answers with [`Input::Inspected`]), then ask the server.
    fn inspect(&mut self, upload: PendingUpload) {
        let path = upload.path.clone();
        self.pending_upload = Some(upload);
        self.state = State::Inspecting;
        self.outputs.push_back(ClientOutput::InspectFile { path });
    }

    /// A command about this client's own transfers, answered here.
    fn on_local(&mut self, command: local::Local) {
        let now = self.clock.now();
        let mut out = Vec::new();
        match command {
            local::Local::Accept(t) => self.transfers.decide(&t, true, now, &mut out),
            local::Local::Decline(t) => self.transfers.decide(&t, false, now, &mut out),
            local::Local::Cancel(t) => self.cancel(&t, now, &mut out),
        }
        self.queue_transfer_outputs(out);
        self.pump();
    }

    /// `CANCEL`: queued uploads are taken out of the queue (by their file name, `ALL`, or as
    /// the only thing there is to cancel); everything else is for the running transfers.
    fn cancel(&mut self, target: &local::Target, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        use local::Target;
        let dropped = match target {
            Target::All => self.queued.clear(),
            Target::Named(name) if !self.transfers.runs_named(name) => {
                self.queued.remove_named(name).into_iter().collect()
            }
            Target::Implied if !self.transfers.is_busy() && self.queued.len() == 1 => {
                self.queued.clear()
            }
            _ => Vec::new(),
        };
        if !dropped.is_empty() {
            self.show(Tone::Info, narration::queue_cancelled(&dropped));
        }
        if dropped.is_empty() || (*target == Target::All && self.transfers.is_busy()) {
            self.transfers.cancel(target, now, out);
        }
    }

    /// After the greeting (inside TLS, or in clear where that is allowed): declare the UDP
    /// port, then ask for the user name.
    fn after_greeting(&mut self) {
        match self.config.udp_port {
            Some(port) => {
                self.send_line(&format!("UDP {port}"));
                self.state = State::DeclaringPort;
            }
            None => self.ask_user(),
        }
    }

    fn ask_user(&mut self) {
        self.state = State::AskUser;
        self.prompt(Prompt::UserName);
    }

    fn on_command_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            self.command_prompt();
            return;
        }
        if let Some(command) = local::parse(line, self.transfers.has_question()) {
            self.on_local(command);
            self.command_prompt();
            return;
        }
        if is_upload_line(line) {
            self.on_upload_line(line);
            return;
        }
        match parse_request_str(line) {
            // A person's shortcuts; a script keeps DESIGN §2's exact grammar (and has the
            // full timestamps: piped output prints them).
            Err(e) => match shortcuts::parse(line).filter(|_| self.config.interactive) {
                Some(shortcut) => self.on_shortcut(shortcut),
                None => {
                    let text = match &e {
                        // This client's own commands are commands too (HELP shows them).
                        RequestError::UnknownCommand(word) => {
                            unknown_command_text(word, &local::words())
                        }
                        other => other.to_string(),
                    };
                    self.show(Tone::Error, text);
                    self.command_prompt();
                }
            },
            Ok(Request::Help) => {
                let mut text = String::from(crate::proto::request::HELP_HEADER);
                for row in crate::proto::request::help_rows() {
                    text.push('\n');
                    text.push_str(&row);
                }
                if self.config.interactive {
                    text.push_str("\nShortcuts (this client fills in the timestamp it saw):");
                    for (usage, summary) in [
                        ("DLT n", "delete your message n"),
                        ("EDT n message", "edit your message n"),
                        ("RDM", "read the posts made since your last logout"),
                    ] {
                        text.push_str(&format!("\n  {usage:<24} {summary}"));
                    }
                }
                text.push_str("\nYour transfers (answered by this client):");
                for (usage, summary) in local::USAGE {
                    text.push_str(&format!("\n  {usage:<24} {summary}"));
                }
                self.show(Tone::Info, text);
                self.command_prompt();
            }
            Ok(Request::Out) => self.log_out(),
            Ok(request) => self.send_request(request),
        }
    }

    /// Send `request` and wait for its reply; `DLT 3 …` / `EDT 3 …` carry the id of the post
    /// the user saw as number 3 (`post_ids`).
    fn send_request(&mut self, request: Request) {
        let command = request.command();
        let request = match request {
            Request::Dlt { target, at } => Request::Dlt {
                target: self.seen.resolve(target),
                at,
            },
            Request::Edt { target, at, text } => Request::Edt {
                target: self.seen.resolve(target),
                at,
                text,
            },
            other => other,
        };
        self.send_line(&request.to_string());
        self.state = State::Waiting(command);
    }

    /// `DLT n` / `EDT n text`: sent as DESIGN §2's request for the post numbered n now (as
    /// this client followed the board's renumbering, `seen_posts`), with its id and the
    /// timestamp this client last saw for it, so the server's checks still catch a post that
    /// changed or moved meanwhile. A post never seen is said so, not guessed.
    fn on_shortcut(&mut self, shortcut: shortcuts::Shortcut) {
        let (n, command) = match &shortcut {
            shortcuts::Shortcut::Dlt(n) => (*n, Command::Dlt),
            shortcuts::Shortcut::Edt(n, _) => (*n, Command::Edt),
        };
        let Some((at, id)) = self.times.get(n).map(|s| (s.at, s.id)) else {
            self.show(
                Tone::Error,
                format!(
                    "This client has not seen message #{n}, so it cannot fill in its timestamp: type {command} {n} timestamp{} (RDM today lists today's posts with theirs).",
                    if command == Command::Edt { " text" } else { "" }
                ),
            );
            self.command_prompt();
            return;
        };
        // The id of the post now numbered n, not the one `post_ids` shows under n: this view
        // followed the renumbering the user was told of.
        let target = match id {
            Some(id) => format!("{n}@{id}"),
            None => n.to_string(),
        };
        let full = match &shortcut {
            shortcuts::Shortcut::Dlt(_) => format!("DLT {target} {at}"),
            shortcuts::Shortcut::Edt(_, text) => format!("EDT {target} {at} {text}"),
        };
        match parse_request_str(&full) {
            Ok(request) => self.send_request(request),
            Err(e) => {
                self.show(Tone::Error, e.to_string());
                self.command_prompt();
            }
        }
    }

    /// Log out now, or once the running transfers are over: a script that uploads and then
    /// logs out means the file to arrive, and so does a person who types `OUT` right after.
    ///
    /// A download that just finished stays a moment (silently) so that its presenter surely
    /// hears that the file arrived.
    fn log_out(&mut self) {
        if !self.queued.is_empty() {
            self.show(
                Tone::Info,
                narration::logging_out_after_queue(self.queued.len()),
            );
            self.state = State::Draining;
            self.start_queued();
        } else if self.transfers.is_busy() {
            self.show(
                Tone::Info,
                "Logging out once the running transfers finish (they give up on their own if the peer is gone)…",
            );
            self.state = State::Draining;
        } else if self.transfers.is_lingering() {
            self.state = State::Draining;
        } else {
            self.send_line("OUT");
            self.state = State::Waiting(Command::Out);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod test_world;

#[cfg(test)]
mod upload_tests;

#[cfg(test)]
mod consent_tests;

#[cfg(test)]
mod resume_tests;

#[cfg(test)]
mod progress_tests;

#[cfg(test)]
mod secure_tests;
