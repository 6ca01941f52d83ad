//! The server state machine: accounts, lockout, sessions, posts, inboxes, blocks.
//!
//! # Driving it
//! A [`Server`] is built from its [`ServerConfig`] and the contents of the data folder
//! ([`DataFiles`]). Then a driver loops:
//! - network input: [`Server::handle_connect`] when a client connects (the server names the
//!   connection), [`Server::handle_bytes`] with whatever bytes arrived on it,
//!   [`Server::handle_disconnect`] when it closed;
//! - time: [`Server::handle_timeout`] once [`Server::poll_timeout`] is reached (calling it early
//!   or spuriously is harmless);
//! - output: after every input, [`Server::poll_output`] until it returns `None`, carrying out
//!   each [`Output`] in order — with one freedom: persist records may be gathered and made
//!   durable together, as long as that happens before any later send or close (group commit).
//!
//! Every input carries `now`, the wall clock in milliseconds since the Unix epoch. The server
//! never reads a clock, a socket or a file.

mod accounts;
mod blocks;
mod board;
mod commands;
mod config;
mod inbox;
mod lockout;
mod login;
mod logins;
mod output;
mod sessions;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub use accounts::{MAX_PASSWORD, PasswordError, check_new_password};
pub use config::{Attempts, AttemptsError, ServerConfig};
pub use output::{ConnId, Output};

use crate::proto::event::Event;
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::reply::{Code, Reply};
use crate::store::{self, DataFile, LoadWarning, Persist};
use crate::time::{Clock, Timestamp, UnixMillis};
use crate::types::UserName;

use accounts::Accounts;
use blocks::Blocks;
use board::Board;
use inbox::Inbox;
use lockout::Lockout;
use logins::Logins;
use sessions::Sessions;

/// The contents of the data folder's files, as the driver read them at start.
///
/// A missing file is simply absent. Files that are not valid UTF-8 should be handed in with
/// [`String::from_utf8_lossy`]; the bad bytes then show up as warnings, not crashes.
#[derive(Debug, Clone, Default)]
pub struct DataFiles {
    files: BTreeMap<DataFile, String>,
}

impl DataFiles {
    /// No files at all: a fresh data folder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the content of one file.
    pub fn insert(&mut self, file: DataFile, text: String) {
        self.files.insert(file, text);
    }

    /// The content of one file, empty if absent.
    pub fn get(&self, file: DataFile) -> &str {
        self.files.get(&file).map(String::as_str).unwrap_or("")
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for a user name.
    AwaitUser,
    /// Waiting for the password of an existing account.
    AwaitPassword(UserName),
    /// Waiting for the password of a new account.
    AwaitNewPassword(UserName),
    /// Logged in.
    LoggedIn(UserName),
    /// The server has closed it; further input is ignored.
    Closed,
}

#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    framer: LineFramer,
    phase: Phase,
    udp_port: Option<u16>,
    /// Until login succeeds: when the connection is closed if it has not.
    login_deadline: Option<UnixMillis>,
}

/// The huddle server, Sans-IO.
pub struct Server {
    config: ServerConfig,
    clock: Clock,
    rng: ChaCha20Rng,
    accounts: Accounts,
    lockout: Lockout,
    board: Board,
    inbox: Inbox,
    blocks: Blocks,
    logins: Logins,
    sessions: Sessions,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    outputs: VecDeque<Output>,
    credentials_need_newline: bool,
}

impl Server {
    /// A server restored from the data folder.
    ///
    /// Problems in the files are reported as [`Output::Log`] lines; files cut short by a crash
    /// are rewritten whole, and `userlog.txt` is emptied since nobody is online yet.
    pub fn new(config: ServerConfig, files: &DataFiles, now: UnixMillis) -> Self {
        let zone = config.zone;
        let mut warnings: Vec<LoadWarning> = Vec::new();
        let credentials = store::parse_credentials(files.get(DataFile::Credentials), &mut warnings);
        let n_cred_warnings = warnings.len();
        let posts = store::parse_messagelog(files.get(DataFile::MessageLog), zone, &mut warnings);
        let inbox = store::parse_inbox(files.get(DataFile::Inbox), zone, &mut warnings);
        let blocks = store::parse_blocks(files.get(DataFile::Blocks), &mut warnings);
        let logins = store::parse_logins(files.get(DataFile::Logins), zone, &mut warnings);
        let cred_text = files.get(DataFile::Credentials);
        let mut server = Server {
            rng: ChaCha20Rng::from_seed(config.rng_seed),
            lockout: Lockout::new(config.attempts, config.block_millis),
            accounts: Accounts::new(credentials),
            board: Board::new(posts),
            inbox: Inbox::new(inbox),
            blocks: Blocks::new(blocks),
            logins: Logins::new(logins),
            sessions: Sessions::default(),
            conns: BTreeMap::new(),
            next_conn: 1,
            outputs: VecDeque::new(),
            credentials_need_newline: !cred_text.is_empty() && !cred_text.ends_with('\n'),
            clock: Clock::new(now),
            config,
        };
        for w in &warnings {
            server.log(format!("warning: {w}"));
        }
        let mut rewrite: Vec<DataFile> = warnings[n_cred_warnings..]
            .iter()
            .filter_map(|w| DataFile::ALL.into_iter().find(|f| f.file_name() == w.file))
            .collect();
        rewrite.push(DataFile::UserLog);
        rewrite.sort();
        rewrite.dedup();
        for file in rewrite {
            let text = server.render_file(file);
            server.persist(Persist::Replace { file, text });
        }
        server.log(format!(
            "data loaded: {} accounts, {} messages, {} private messages waiting, {} blocks",
            server.accounts.len(),
            server.board.len(),
            server.inbox.len(),
            server.blocks.render().lines().count()
        ));
        server
    }

    /// A client connected from `peer`; returns the name of its connection.
    pub fn handle_connect(&mut self, peer: SocketAddr, now: UnixMillis) -> ConnId {
        let now = self.clock.advance(now);
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            conn,
            Conn {
                peer,
                framer: LineFramer::with_limits(
                    crate::proto::MAX_LINE,
                    Some(self.config.runaway_line_bytes),
                ),
                phase: Phase::AwaitUser,
                udp_port: None,
                login_deadline: Some(now.plus_millis(self.config.login_timeout_millis)),
            },
        );
        self.log(format!("{peer} connected"));
        self.reply(
            conn,
            Reply::new(
                Code::ASK_USER,
                "Welcome to huddle. Please log in with your user name.",
            ),
        );
        conn
    }

    /// Bytes arrived on `conn`.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: UnixMillis) {
        self.clock.advance(now);
        let mut frames = Vec::new();
        match self.conns.get_mut(&conn) {
            Some(c) if c.phase != Phase::Closed => c.framer.push(bytes, &mut frames),
            _ => return,
        }
        for frame in frames {
            let open = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.phase != Phase::Closed);
            if !open {
                break;
            }
            match frame {
                Frame::TooLong => self.reply(
                    conn,
                    Reply::new(
                        Code::BAD_LINE,
                        format!(
                            "Line too long: a request is at most {} bytes",
                            crate::proto::MAX_LINE
                        ),
                    ),
                ),
                Frame::Runaway => {
                    let limit = self.config.runaway_line_bytes;
                    let peer = self.conns.get(&conn).map(|c| c.peer);
                    if let Some(peer) = peer {
                        self.log(format!(
                            "{peer}: sent more than {limit} bytes without a newline; connection closed"
                        ));
                    }
                    self.reply(
                        conn,
                        Reply::new(
                            Code::CLOSING,
                            format!(
                                "More than {limit} bytes without a newline: this is not a huddle client. Goodbye."
                            ),
                        ),
                    );
                    self.close(conn);
                }
                Frame::Line(line) => self.handle_line(conn, &line),
            }
        }
    }

    /// `conn` was closed by the peer or failed.
    pub fn handle_disconnect(&mut self, conn: ConnId, now: UnixMillis) {
        self.clock.advance(now);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        match c.phase {
            Phase::LoggedIn(user) => {
                self.logout(conn, &user);
                self.log(format!(
                    "{user} disconnected from {} without logging out",
                    c.peer
                ));
            }
            Phase::Closed => {}
            _ => self.log(format!("{} disconnected before logging in", c.peer)),
        }
    }

    /// Time passed; a spurious call is harmless.
    ///
    /// Closes connections that did not log in within the login timeout, so a half-open
    /// dialogue cannot hold a connection forever.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let now = self.clock.advance(now);
        let expired: Vec<(ConnId, SocketAddr)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.login_deadline.is_some_and(|d| d <= now) && c.phase != Phase::Closed)
            .map(|(&id, c)| (id, c.peer))
            .collect();
        for (conn, peer) in expired {
            let secs = self.config.login_timeout_millis / 1000;
            self.log(format!(
                "{peer} did not log in within {secs} s; connection closed"
            ));
            self.reply(
                conn,
                Reply::new(
                    Code::CLOSING,
                    format!("Login timed out after {secs} seconds. Goodbye."),
                ),
            );
            self.close(conn);
        }
    }

    /// When [`Server::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.conns
            .values()
            .filter(|c| c.phase != Phase::Closed)
            .filter_map(|c| c.login_deadline)
            .min()
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        // A burst (a post fanned out to thousands) must not pin its peak capacity for good.
        if out.is_none() && self.outputs.capacity() > 4096 {
            self.outputs.shrink_to(64);
        }
        out
    }

    /// Tell everyone the server is stopping and close every connection.
    pub fn shutdown(&mut self, now: UnixMillis) {
        self.clock.advance(now);
        // Connections already closed (after OUT or a lockout) get nothing more.
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Closed)
            .map(|(&id, _)| id)
            .collect();
        // Log everyone out first, so logins.txt has their logout time and userlog.txt is empty.
        let online: Vec<(ConnId, UserName)> = self
            .sessions
            .iter()
            .map(|o| (o.conn, o.user.clone()))
            .collect();
        for (conn, user) in online {
            self.logout(conn, &user);
        }
        for conn in conns {
            self.reply(
                conn,
                Reply::new(Code::CLOSING, "The server is shutting down. Goodbye."),
            );
            self.close(conn);
        }
        self.log("server shutting down".to_string());
    }

    /// How many users are logged in.
    pub fn online_count(&self) -> usize {
        self.sessions.len()
    }

    /// The whole content a data file should have now (for tests and consistency checks).
    pub fn render_file(&self, file: DataFile) -> String {
        let zone = self.config.zone;
        match file {
            DataFile::Credentials => String::new(),
            DataFile::MessageLog => self.board.render(zone),
            DataFile::UserLog => self.sessions.render(zone),
            DataFile::Inbox => self.inbox.render(zone),
            DataFile::Blocks => self.blocks.render(),
            DataFile::Logins => self.logins.render(zone),
        }
    }

    // ----- helpers shared by the login dialogue and the commands -----

    fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    fn now_ts(&self) -> Timestamp {
        self.clock.now().timestamp()
    }

    fn render_ts(&self, ts: Timestamp) -> String {
        self.config.zone.render(ts)
    }

    fn reply(&mut self, conn: ConnId, reply: Reply) {
        self.outputs.push_back(Output::Send {
            conn,
            bytes: Bytes::from(reply.render()),
        });
    }

    fn event(&mut self, conn: ConnId, event: &Event) {
        self.outputs.push_back(Output::Send {
            conn,
            bytes: Bytes::from(event.render()),
        });
    }

    /// Push one event to many connections, rendered once: the bytes are shared, so a post to
    /// 10,000 users costs one allocation, not 10,000.
    fn broadcast(&mut self, conns: Vec<ConnId>, event: &Event) {
        let bytes = Bytes::from(event.render());
        for conn in conns {
            self.outputs.push_back(Output::Send {
                conn,
                bytes: bytes.clone(),
            });
        }
    }

    fn persist(&mut self, p: Persist) {
        self.outputs.push_back(Output::Persist(p));
    }

    fn persist_whole(&mut self, file: DataFile) {
        let text = self.render_file(file);
        self.persist(Persist::Replace { file, text });
    }

    fn log(&mut self, text: String) {
        let line = format!("{}  {}", self.render_ts(self.now_ts()), text);
        self.outputs.push_back(Output::Log(line));
    }

    /// Close `conn` once what is queued for it is written; a user still logged in on it is
    /// logged out first, so nothing more is fanned out to it.
    fn close(&mut self, conn: ConnId) {
        let phase = self
            .conns
            .get_mut(&conn)
            .map(|c| std::mem::replace(&mut c.phase, Phase::Closed));
        if let Some(Phase::LoggedIn(user)) = phase {
            self.logout(conn, &user);
        }
        self.outputs.push_back(Output::Close { conn });
    }

    fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn handle_line(&mut self, conn: ConnId, line: &[u8]) {
        let Some(phase) = self.conns.get(&conn).map(|c| c.phase.clone()) else {
            return;
        };
        match phase {
            Phase::LoggedIn(user) => self.on_command(conn, user, line),
            Phase::Closed => {}
            other => self.on_login_line(conn, other, line),
        }
    }

    /// Remove `user`'s session on `conn`: record the logout, rewrite the user log, tell others.
    fn logout(&mut self, conn: ConnId, user: &UserName) {
        if self.sessions.remove(conn).is_none() {
            return;
        }
        let now = self.now_ts();
        self.logins.logout(user, now);
        self.persist_whole(DataFile::Logins);
        self.persist_whole(DataFile::UserLog);
        let others: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|o| !self.blocks.blocks(&o.user, user))
            .map(|o| o.conn)
            .collect();
        self.broadcast(others, &Event::Offline { user: user.clone() });
    }
}

#[cfg(test)]
mod tests;
