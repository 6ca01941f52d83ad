//! The server state machine: accounts, lockout, sessions, posts, inboxes, blocks.
//!
//! # Driving it
//! A [`Server`] is built from its [`ServerConfig`] and the contents of the data folder
//! ([`DataFiles`], bytes as read); [`Server::new`] refuses a folder with damaged lines
//! ([`DamagedFiles`], shown to the operator as it is) unless the config asks for a repair
//! ([`OnDamage::Repair`]). Then a driver loops:
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

pub use crate::store::{DamagedFiles, DataFiles};
pub use accounts::{MAX_PASSWORD, PasswordError, check_new_password};
pub use config::{Attempts, AttemptsError, OnDamage, ServerConfig};
pub use output::{ConnId, Output};

use crate::proto::event::Event;
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::reply::{Code, Reply};
use crate::store::{DataFile, Folder, Persist};
use crate::time::{Clock, Timestamp, UnixMillis};
use crate::types::UserName;

use accounts::Accounts;
use blocks::Blocks;
use board::Board;
use inbox::Inbox;
use lockout::Lockout;
use logins::Logins;
use sessions::Sessions;

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
    /// Refuses ([`DamagedFiles`]) when a data file has damaged lines, unless the config says
    /// [`OnDamage::Repair`]. Before any other output it emits what the start must write: each
    /// line it could not load goes to `<file>.rejected` (a torn last line always; a damaged
    /// one with a repair, after a backup copy of its file), then the files are rewritten
    /// without them, and `userlog.txt` is emptied since nobody is online yet. Problems are
    /// narrated as [`Output::Log`] lines.
    pub fn new(
        config: ServerConfig,
        files: &DataFiles,
        now: UnixMillis,
    ) -> Result<Self, DamagedFiles> {
        let zone = config.zone;
        let folder = Folder::read(files, zone);
        if config.on_damage == OnDamage::Refuse
            && let Some(damage) = folder.damage()
        {
            return Err(damage);
        }
        let cleaned_credentials = folder.without_rejected(files, DataFile::Credentials);
        let Folder {
            credentials,
            reserved,
            posts,
            inbox,
            blocks,
            logins,
            ref warnings,
        } = folder.clone();
        let mut server = Server {
            rng: ChaCha20Rng::from_seed(config.rng_seed),
            lockout: Lockout::new(config.attempts, config.block_millis),
            accounts: Accounts::new(credentials, reserved),
            board: Board::new(posts),
            inbox: Inbox::new(inbox),
            blocks: Blocks::new(blocks),
            logins: Logins::new(logins),
            sessions: Sessions::default(),
            conns: BTreeMap::new(),
            next_conn: 1,
            outputs: VecDeque::new(),
            credentials_need_newline: !cleaned_credentials.is_empty()
                && !cleaned_credentials.ends_with(b"\n"),
            clock: Clock::new(now),
            config,
        };
        for w in warnings {
            let what = match w.problem.rejected_bytes() {
                Some(_) => format!("moved to {}", w.file.rejected_name()),
                None => "kept; the file is rewritten".to_string(),
            };
            server.log(format!("warning: {w} ({what})"));
        }
        let now_ts = server.now_ts();
        let mut rewrite = folder.files_to_rewrite();
        rewrite.insert(DataFile::UserLog);
        for file in rewrite {
            for record in folder.cleanup(files, file, zone, now_ts) {
                if let Persist::Backup { name, .. } = &record {
                    server.log(format!("kept a copy of {file} as it was: {name}"));
                }
                server.persist(record);
            }
            let text = match file {
                DataFile::Credentials => cleaned_credentials.clone(),
                _ => server.render_bytes(file),
            };
            server.persist(Persist::Replace { file, text });
        }
        server.log(format!(
            "data loaded: {} accounts, {} messages, {} private messages waiting, {} blocks",
            server.accounts.len(),
            server.board.len(),
            server.inbox.len(),
            server.blocks.render().lines().count()
        ));
        Ok(server)
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
                framer: LineFramer::new(),
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

    /// The whole content a data file should have now, as text (for tests and consistency
    /// checks; bytes that are not UTF-8 show as U+FFFD). `credentials.txt` is only appended
    /// to, so it renders empty.
    pub fn render_file(&self, file: DataFile) -> String {
        String::from_utf8_lossy(&self.render_bytes(file)).into_owned()
    }

    /// The whole content a data file should have now, byte for byte.
    fn render_bytes(&self, file: DataFile) -> Vec<u8> {
        let zone = self.config.zone;
        match file {
            DataFile::Credentials => Vec::new(),
            DataFile::MessageLog => self.board.render(zone),
            DataFile::UserLog => self.sessions.render(zone).into(),
            DataFile::Inbox => self.inbox.render(zone),
            DataFile::Blocks => self.blocks.render().into(),
            DataFile::Logins => self.logins.render(zone).into(),
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
        let text = self.render_bytes(file);
        self.persist(Persist::Replace { file, text });
    }

    fn log(&mut self, text: String) {
        let line = format!("{}  {}", self.render_ts(self.now_ts()), text);
        self.outputs.push_back(Output::Log(line));
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Closed;
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
mod load_tests;
#[cfg(test)]
mod name_tests;
#[cfg(test)]
mod test_folder;
#[cfg(test)]
mod tests;
