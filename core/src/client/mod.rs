//! The client state machine: the login dialogue, one command at a time, pushed events.
//!
//! # Driving it
//! A driver owns the TCP connection and the terminal (or the pipe). It feeds
//! [`Client::handle_server_bytes`] with what arrives from the server,
//! [`Client::handle_server_closed`] when the connection ends, [`Client::handle_user_line`] with
//! each line the user typed in answer to a [`Prompt`], and [`Client::handle_input_closed`] when
//! input ends. After every input it drains [`Client::poll_output`]: send bytes, show lines,
//! ask for the next line, or exit.
//!
//! The client asks for a new line only once the previous request has its reply, which is
//! what lets a script pipe one command per line into it.

mod output;
mod render;
mod uploads;

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

pub use output::{
    ClientOutput, Direction, Display, ExitStatus, FileOp, FileProblem, FileResult, Progress,
    Prompt, Tone,
};
pub use render::human_bytes;

use crate::proto::event::Event;
use crate::proto::request::{is_upload_line, parse_user_upload};
use crate::proto::upload::parse_upload_grant;
use crate::time::Clock;
use crate::transfer::{TransferConfig, TransferId, base_name};
use crate::types::UserName;
use uploads::Transfers;

use crate::proto::event::{is_event_line, parse_event};
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::reply::{Code, Reply, ReplyAssembler};
use crate::proto::request::{Command, Request, parse_request_str};
use crate::time::UnixMillis;

/// Client settings.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// A person at a terminal (asks for a new password twice) rather than a script.
    pub interactive: bool,
    /// The UDP port this client receives uploads on, declared to the server before login.
    pub udp_port: Option<u16>,
    /// Settings of every upload and download.
    pub transfer: TransferConfig,
}

/// An upload the user asked for, waiting for the file check or the server's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingUpload {
    to: UserName,
    path: String,
}

/// Where the client is in its conversation with the server and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Connected; waiting for the greeting.
    Greeting,
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
    user: Option<String>,
    framer: LineFramer,
    replies: ReplyAssembler,
    outputs: VecDeque<ClientOutput>,
    transfers: Transfers,
    pending_upload: Option<PendingUpload>,
    clock: Clock,
}

impl Client {
    /// A client that has just connected to the server.
    pub fn new(config: ClientConfig, now: UnixMillis) -> Self {
        Self {
            transfers: Transfers::new(config.transfer.clone()),
            pending_upload: None,
            clock: Clock::new(now),
            config,
            state: State::Greeting,
            user: None,
            framer: LineFramer::with_limits(crate::proto::MAX_SERVER_LINE, None),
            replies: ReplyAssembler::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The user name, once logged in.
    pub fn user(&self) -> Option<&str> {
        match self.state {
            State::Ready | State::Waiting(_) | State::Inspecting => self.user.as_deref(),
            _ => None,
        }
    }

    /// Whether the client has finished (an [`ClientOutput::Exit`] was emitted).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.transfers.poll_timeout()
    }

    /// Whether an upload or download is running.
    pub fn is_transferring(&self) -> bool {
        self.transfers.is_busy()
    }

    /// Time passed; a spurious call is harmless.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        self.transfers.handle_timeout(now);
        self.pump();
    }

    /// A datagram arrived on the client's UDP socket.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: Bytes, now: UnixMillis) {
        let now = self.clock.advance(now);
        self.transfers.handle_datagram(from, bytes, now);
        self.pump();
    }

    /// The driver's answer to [`ClientOutput::InspectFile`].
    pub fn handle_inspected(&mut self, result: Result<u64, FileProblem>, now: UnixMillis) {
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
                    uploads::upload_problem(&pending.path, &problem),
                );
                self.command_prompt();
            }
        }
    }

    /// The driver's answer to a [`FileOp`] of transfer `id`.
    pub fn handle_file_result(&mut self, id: TransferId, result: FileResult, now: UnixMillis) {
        let now = self.clock.advance(now);
        let mut out = Vec::new();
        self.transfers.handle_file_result(id, result, now, &mut out);
        self.outputs.extend(out);
        self.pump();
    }

    /// Move what the transfers want done into the output queue.
    fn pump(&mut self) {
        let mut out = Vec::new();
        self.transfers.drain(self.clock.now(), &mut out);
        self.outputs.extend(out);
        if self.state == State::Draining && !self.transfers.is_busy() {
            self.send_line("OUT");
            self.state = State::Waiting(Command::Out);
        }
    }

    /// Bytes arrived from the server.
    pub fn handle_server_bytes(&mut self, bytes: &[u8], now: UnixMillis) {
        self.clock.advance(now);
        let mut frames = Vec::new();
        self.framer.push(bytes, &mut frames);
        for frame in frames {
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
        self.pump();
    }

    /// The server closed the connection (or it broke).
    pub fn handle_server_closed(&mut self, _now: UnixMillis) {
        if self.state == State::Done {
            return;
        }
        self.show(Tone::Error, "Connection to the server lost.");
        self.exit(ExitStatus::ConnectionLost);
    }

    /// The user typed `line` (without its line ending).
    pub fn handle_user_line(&mut self, line: &str, _now: UnixMillis) {
        let line = line.strip_suffix('\r').unwrap_or(line);
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
                if self.config.interactive {
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
            | State::DeclaringPort
            | State::SentUser
            | State::SentPassword
            | State::SentNewPassword
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
    pub fn handle_input_closed(&mut self, _now: UnixMillis) {
        match self.state {
            State::Ready => self.log_out(),
            State::Waiting(_) | State::Inspecting | State::Draining | State::Done => {}
            _ => {
                self.show(Tone::Error, "Input ended before login completed.");
                self.exit(ExitStatus::LoginFailed);
            }
        }
    }

    // ----- internals -----

    fn send_line(&mut self, line: &str) {
        let mut s = String::with_capacity(line.len() + 1);
        s.push_str(line);
        s.push('\n');
        self.outputs.push_back(ClientOutput::Send(Bytes::from(s)));
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

    fn command_prompt(&mut self) {
        self.state = State::Ready;
        let user = self.user.clone().unwrap_or_default();
        self.prompt(Prompt::Command(user));
    }

    fn exit(&mut self, status: ExitStatus) {
        self.state = State::Done;
        // Tell the peers of running transfers that we are leaving, so they stop at once
        // instead of waiting for their timeout.
        self.transfers.cancel_all(self.clock.now());
        self.pump();
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
            let (tone, text) = match parse_event(line) {
                Some(Event::Upload(grant)) => {
                    let mut out = Vec::new();
                    self.transfers
                        .start_download(grant, self.clock.now(), &mut out);
                    self.outputs.extend(out);
                    return;
                }
                Some(e) => render::event(&e),
                None => (Tone::Notice, format!("(unrecognised event) {}", &line[2..])),
            };
            self.outputs.push_back(ClientOutput::Show(Display {
                tone,
                text,
                pushed: true,
            }));
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
        let tone = if code.is_error() {
            Tone::Error
        } else {
            Tone::Info
        };
        match self.state.clone() {
            State::Greeting => {
                self.show(Tone::Info, reply.text());
                match self.config.udp_port {
                    Some(port) => {
                        self.send_line(&format!("UDP {port}"));
                        self.state = State::DeclaringPort;
                    }
                    None => self.ask_user(),
                }
            }
            State::DeclaringPort => {
                if code.is_error() {
                    self.show(Tone::Error, reply.text());
                }
                self.ask_user();
            }
            State::SentUser | State::SentPassword | State::SentNewPassword => match code {
                Code::ASK_PASSWORD => {
                    self.state = State::AskPassword;
                    self.prompt(Prompt::Password);
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
                    self.command_prompt();
                }
                Code::LOCKED_OUT => {
                    self.show(Tone::Error, reply.text());
                    self.exit(ExitStatus::LockedOut);
                }
                Code::CLOSING => {
                    self.show(Tone::Error, reply.text());
                    self.exit(ExitStatus::LoginFailed);
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
                        self.outputs.extend(out);
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
                if command == Command::Upd {
                    self.pending_upload = None;
                }
                let tone = if code.is_error() {
                    Tone::Error
                } else if code == Code::OK {
                    Tone::Success
                } else {
                    Tone::Info
                };
                self.show(tone, reply.text());
                if command == Command::Out && code == Code::BYE {
                    self.exit(ExitStatus::LoggedOut);
                } else if code == Code::CLOSING {
                    self.exit(ExitStatus::ConnectionLost);
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
                // A reply nobody asked for: the server is closing (shutdown) or confused.
                self.show(tone, reply.text());
                if code == Code::CLOSING {
                    self.exit(ExitStatus::ConnectionLost);
                }
            }
            State::Done => {}
        }
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
        self.pending_upload = Some(PendingUpload {
            to,
            path: path.clone(),
        });
        self.state = State::Inspecting;
        self.outputs.push_back(ClientOutput::InspectFile { path });
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
        if is_upload_line(line) {
            self.on_upload_line(line);
            return;
        }
        match parse_request_str(line) {
            Err(e) => {
                self.show(Tone::Error, e.to_string());
                self.command_prompt();
            }
            Ok(Request::Help) => {
                let mut text = String::from(
                    "Commands (case-insensitive; timestamps as DD Mon YYYY HH:MM:SS):",
                );
                for c in Command::ALL {
                    text.push_str(&format!("\n  {:<24} {}", c.usage(), c.summary()));
                }
                self.show(Tone::Info, text);
                self.command_prompt();
            }
            Ok(Request::Out) => self.log_out(),
            Ok(request) => {
                let command = request.command();
                self.send_line(&request.to_string());
                self.state = State::Waiting(command);
            }
        }
    }

    /// Log out now, or once the running transfers are over: a script that uploads and then
    /// logs out means the file to arrive, and so does a person who types `OUT` right after.
    fn log_out(&mut self) {
        if self.transfers.is_busy() {
            self.show(
                Tone::Info,
                "Logging out once the running transfers finish (they give up on their own if the peer is gone)…",
            );
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
mod upload_tests;
