//! The server state machine: accounts, lockout, sessions, posts, inboxes, blocks — and the
//! rules of the loop that drives it (batching, flow control, fair shares), so every runtime
//! and the simulator run the same loop and a simulation's seed replays what production runs.
//!
//! # Driving it
//! A [`Server`] is built from its [`ServerConfig`] and the contents of the data folder
//! ([`DataFiles`], bytes as read); [`Server::new`] refuses a folder with damaged lines
//! ([`DamagedFiles`], shown to the operator as it is) unless the config asks for a repair
//! ([`OnDamage::Repair`]). Then a driver loops, as str0m's README describes:
//! 1. wait for an input, at most until [`Server::poll_timeout`];
//! 2. hand it to [`Server::handle_input`] (or [`Input::Timeout`] if the wait timed out), then
//!    every further input already waiting, as long as [`Server::wants_input`] says the batch
//!    has room;
//! 3. drain [`Server::poll_output`] until it returns `None`, carrying out each [`Output`] in
//!    order. The batch's persist records come first: apply them together, durably (one fsync
//!    per file: group commit), before carrying out anything after them.
//!
//! The inputs, all in [`Input`]: a connection opened (the server names it), bytes arrived on
//! it, the driver wrote some of its output, it closed, a password hash finished, stop, time
//! passed. Every input carries `now`, the wall clock in milliseconds since the Unix epoch. A
//! spurious or early [`Input::Timeout`] is harmless. The server never reads a clock, a
//! socket or a file, and never runs a hash itself: [`Output::Hash`] hands that to the driver.
//!
//! # What the loop's rules are
//! - **Group commit**: replies wait for the batch's records to be durable, so a batch is
//!   short: [`ServerConfig::max_batch_inputs`], [`ServerConfig::max_batch_lines`] and
//!   [`ServerConfig::max_batch_fanout_bytes`] bound it.
//! - **Fair turns**: a connection has at most [`ServerConfig::lines_per_turn`] requests
//!   handled before the next one's turn; the rest wait in its buffer, and the driver is told
//!   to stop reading ([`Output::PauseReading`]) once that holds
//!   [`ServerConfig::max_input_buffer`] bytes.
//! - **Backpressure by output**: the driver reports what it wrote ([`Input::Wrote`]); a
//!   connection with more than [`ServerConfig::output_high_water`] unsent bytes has no
//!   requests taken until it is back under [`ServerConfig::output_low_water`]; long listings
//!   are produced as the output drains; a connection whose output makes no progress for
//!   [`ServerConfig::write_timeout_millis`] is cut off ([`Output::Cut`]). A driver may report
//!   writes in batches (at once for a paused connection, every few KiB for the others) as
//!   long as it answers [`Output::CheckProgress`] with what it has not reported yet.
//! - **Fair shares**: per-user token buckets for posts and the like, per-address limits on
//!   sign-ups and on connections that have not logged in (see [`ServerConfig`]).
//! - **TLS in the byte path**: with a certificate ([`ServerConfig::tls`]) the greeting offers
//!   `STARTTLS`; an upgraded connection's bytes are opened and sealed here, in the core, so
//!   the driver moves ciphertext only and every count above is of bytes on the wire. A user
//!   name in clear is refused (`530`) from addresses [`ServerConfig::plaintext_login`] does
//!   not allow (all but loopback, by default).

mod accounts;
mod admission;
mod blocks;
mod board;
mod commands;
mod config;
mod conn;
mod flow;
mod guessing;
mod inbox;
mod input;
mod link;
mod listing;
mod liveness;
mod lockout;
mod login;
mod logins;
mod output;
mod passwords;
mod rehash;
mod sessions;
mod starttls;
mod storage_health;
mod throttle;
mod timers;
mod uploads;
mod wording;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub use crate::store::{DamagedFiles, DataFiles};
pub use accounts::{MAX_PASSWORD, PasswordError, check_new_password};
pub use admission::OUT_OF_RESOURCES_LINE;
pub use config::{
    Attempts, AttemptsError, ConfigError, MAX_READ_CHUNK, OnDamage, PlaintextLogin, ServerConfig,
};
pub use input::Input;
pub use output::{Audience, ConnId, Output};
pub use passwords::{HashDone, HashJob, HashMemory, HashResult, JobId, MAX_HASH_MEMORY_KIB};

use crate::proto::event::Event;
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::reply::{Code, Reply};
use crate::proto::starttls::{GREETING, GREETING_OFFER};
use crate::store::{DataFile, Folder, Persist, Reason};
use crate::time::{Clock, Timestamp, UnixMillis};
use crate::types::UserName;

use accounts::Accounts;
use admission::{Admission, Refusal};
use blocks::Blocks;
use board::Board;
use conn::{Conn, Conns, Phase};
use flow::Flow;
use inbox::{Inbox, LetterId};
use link::Link;
use lockout::Lockout;
use logins::Logins;
use sessions::Sessions;
use throttle::{Buckets, Rate};
use timers::{TimerKind, Timers};

/// Work handed to the driver's hash workers, waiting for its result.
#[derive(Debug)]
enum PendingHash {
    /// A login's password check.
    Login { conn: ConnId, name: UserName },
    /// A sign-up's new hash; the password is kept only to store it in clear should hashing
    /// fail (which `credentials.txt` allows) rather than lose the account.
    SignUp {
        conn: ConnId,
        name: UserName,
        password: String,
    },
    /// A plaintext password from `credentials.txt` that just logged in, hashed to replace it
    /// (see `rehash`); `plain` is what it replaces, so a change meanwhile is not undone.
    Rehash { name: UserName, plain: String },
}

/// What the current batch has taken so far.
#[derive(Debug, Default)]
struct BatchCount {
    inputs: usize,
    lines: usize,
    fanout_bytes: usize,
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
    conns: Conns,
    timers: Timers,
    /// Connections with requests waiting for their turn.
    ready: VecDeque<ConnId>,
    /// Connections with a listing in progress (their events are held).
    holding: BTreeSet<ConnId>,
    /// Upgraded connections with fan-out staged, sealed before the batch's outputs go out
    /// (see `link`'s docs); may name a connection twice or one staged no more.
    staged: Vec<ConnId>,
    admission: Admission,
    post_rate: Buckets<UserName>,
    signup_rate: Buckets<IpAddr>,
    guessing: guessing::Guessing,
    hashes: HashMap<JobId, PendingHash>,
    next_job: u64,
    /// Names being signed up while their hash is computed: nobody else may take them.
    signing_up: HashSet<UserName>,
    persists: VecDeque<Persist>,
    /// Files to rewrite whole at the end of the batch (rendered once, however many changes).
    dirty: BTreeSet<DataFile>,
    outputs: VecDeque<Output>,
    narration: String,
    batch: BatchCount,
    stopping: bool,
    credentials_need_newline: bool,
    /// `credentials.txt` as it is on disk, byte for byte (it is rewritten whole only to
    /// replace a plaintext password by its hash).
    credentials_text: Vec<u8>,
    /// The `* POSTED` event of the `MSG` being answered, sent just before its reply.
    posted: Option<Event>,
    /// Whether the data folder can be written (read-only mode, see `storage_health`).
    health: storage_health::StorageHealth,
}

/// Whether a server would start on `files` with `config` ([`Server::new`]'s refusals, nothing
/// built): a runtime asks before it creates anything (a certificate) in a folder it would
/// then refuse.
pub fn check_start(config: &ServerConfig, files: &DataFiles) -> Result<(), StartError> {
    config.check()?;
    if config.on_damage == OnDamage::Refuse
        && let Some(damage) = Folder::read(files, config.zone).damage()
    {
        return Err(damage.into());
    }
    Ok(())
}

/// Why a server did not start ([`Server::new`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting the server cannot work with.
    #[error("invalid setting: {0}")]
    Config(#[from] ConfigError),
    /// Damaged lines in the data files, and no repair asked for.
    #[error(transparent)]
    Damaged(#[from] DamagedFiles),
}

impl Server {
    /// A server restored from the data folder.
    ///
    /// Refuses settings it cannot work with ([`ServerConfig::check`]), and
    /// ([`DamagedFiles`]) a folder whose data files have damaged lines, unless the config says
    /// [`OnDamage::Repair`]. Before any other output it emits what the start must write: each
    /// line it could not load goes to `<file>.rejected` (a torn last line always; a damaged
    /// one with a repair, after a backup copy of its file), then the files are rewritten
    /// without them, and `userlog.txt` is emptied since nobody is online yet. Problems are
    /// narrated as [`Output::Log`] lines.
    pub fn new(
        config: ServerConfig,
        files: &DataFiles,
        now: UnixMillis,
    ) -> Result<Self, StartError> {
        config.check()?;
        let zone = config.zone;
        let folder = Folder::read(files, zone);
        if config.on_damage == OnDamage::Refuse
            && let Some(damage) = folder.damage()
        {
            return Err(damage.into());
        }
        let cleaned_credentials = folder.without_rejected(files, DataFile::Credentials);
        let Folder {
            credentials,
            reserved,
            posts,
            inbox,
            blocks,
            logins,
            post_ids,
            ref warnings,
        } = folder.clone();
        let post_rate = Rate {
            burst: config.post_burst,
            per_minute: config.post_rate_per_sec.saturating_mul(60),
        };
        let signup_rate = Rate {
            burst: config.signups_per_ip_per_minute,
            per_minute: config.signups_per_ip_per_minute,
        };
        let mut server = Server {
            rng: ChaCha20Rng::from_seed(config.rng_seed),
            lockout: Lockout::new(config.attempts, config.block_millis),
            accounts: Accounts::new(credentials, reserved),
            board: Board::new(posts, &post_ids.ids, post_ids.next),
            inbox: Inbox::new(inbox),
            blocks: Blocks::new(blocks),
            logins: Logins::new(logins),
            sessions: Sessions::default(),
            conns: Conns::default(),
            timers: Timers::default(),
            ready: VecDeque::new(),
            holding: BTreeSet::new(),
            staged: Vec::new(),
            admission: Admission::new(
                &config.exempt,
                config.max_unauthenticated_per_ip,
                config.max_connections,
            ),
            post_rate: Buckets::new(post_rate, Some(config.throttle_refuse_after_millis)),
            signup_rate: Buckets::new(signup_rate, None),
            guessing: guessing::Guessing::new(guessing::GuessRules {
                free_failures: config.guess_free_failures,
                delay_millis: config.guess_delay_millis,
                max_delay_millis: config.guess_max_delay_millis,
                forget_millis: config.guess_forget_millis,
            }),
            hashes: HashMap::new(),
            next_job: 1,
            signing_up: HashSet::new(),
            persists: VecDeque::new(),
            dirty: BTreeSet::new(),
            outputs: VecDeque::new(),
            narration: String::new(),
            batch: BatchCount::default(),
            stopping: false,
            credentials_need_newline: !cleaned_credentials.is_empty()
                && !cleaned_credentials.ends_with(b"\n"),
            credentials_text: cleaned_credentials.clone(),
            posted: None,
            health: storage_health::StorageHealth::default(),
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
        for r in &folder.reserved {
            if let Reason::Authored { posts, letters } = r.why {
                let plural =
                    |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                let what: Vec<String> = [
                    (posts > 0).then(|| format!("{} on the board", plural(posts, "post"))),
                    (letters > 0).then(|| {
                        format!(
                            "{} waiting (sent or received)",
                            plural(letters, "private message")
                        )
                    }),
                ]
                .into_iter()
                .flatten()
                .collect();
                server.log(format!(
                    "warning: {} has {} but no account in credentials.txt: the name is reserved (nobody can sign up as it) until its line is restored",
                    r.name,
                    what.join(" and "),
                ));
            }
        }
        if let Some(note) = &post_ids.note {
            server.log(format!("warning: {note}"));
        }
        let now_ts = server.now_ts();
        let mut rewrite = folder.files_to_rewrite();
        rewrite.insert(DataFile::UserLog);
        // The ids journal starts afresh as a snapshot of the board as loaded.
        rewrite.insert(DataFile::PostIds);
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
        let count = |n: usize, what| wording::count(n as u64, what);
        server.log(format!(
            "data loaded: {}, {}, {} waiting, {}",
            count(server.accounts.len(), "account"),
            count(server.board.len(), "message"),
            count(server.inbox.len(), "private message"),
            count(server.blocks.render().lines().count(), "block")
        ));
        Ok(server)
    }

    // ----- the driver's interface -----

    /// Take one input. Returns the name of the connection for [`Input::Connected`].
    pub fn handle_input(&mut self, input: Input<'_>, now: UnixMillis) -> Option<ConnId> {
        self.clock.advance(now);
        self.batch.inputs += 1;
        match input {
            Input::Connected { peer } => return Some(self.connect(peer)),
            Input::Bytes { conn, bytes } => self.on_bytes(conn, bytes),
            Input::Wrote { conn, bytes } => self.on_wrote(conn, bytes),
            Input::Closed { conn, unacked } => self.on_closed(conn, unacked),
            Input::Hashed(done) => self.on_hashed(done),
            Input::Shutdown => self.shutdown_all(),
            Input::Timeout => self.run_due(),
            Input::StoreFailed {
                error,
                dropped,
                files,
            } => self.on_store_failed(error, dropped, files),
            Input::Probed { error } => self.on_probed(error),
        }
        None
    }

    /// Whether the current batch has room for another input; once it has not, drain
    /// [`Server::poll_output`] before taking more.
    pub fn wants_input(&self) -> bool {
        self.batch.inputs < self.config.max_batch_inputs && self.batch_has_room()
    }

    /// The next thing to do, in order: the batch's persist records first.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.batch.inputs > 0 || !self.ready.is_empty() {
            // Timers due after an input, and requests waiting for their turn.
            self.run_due();
            self.run_ready();
            self.batch.inputs = 0;
        }
        self.seal_all_staged();
        self.render_dirty();
        self.defer_persists();
        if let Some(p) = self.persists.pop_front() {
            return Some(Output::Persist(p));
        }
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        if !self.narration.is_empty() {
            let mut text = std::mem::take(&mut self.narration);
            text.pop();
            return Some(Output::Log(text));
        }
        // The batch is over.
        self.batch = BatchCount::default();
        let now = self.now();
        if self.post_rate.len() > 1024 {
            self.post_rate.forget_full(now);
        }
        if self.signup_rate.len() > 1024 {
            self.signup_rate.forget_full(now);
        }
        if self.guessing.len() > 1024 {
            self.guessing.forget_old(now);
        }
        // A burst (a post fanned out to thousands) must not pin its peak capacity for good.
        if self.outputs.capacity() > 4096 {
            self.outputs.shrink_to(64);
        }
        None
    }

    /// When to hand in [`Input::Timeout`] if nothing else comes first, if ever.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        if !self.ready.is_empty() {
            return Some(self.clock.now());
        }
        match (self.timers.next(), self.health.next_probe()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The outputs queued and not yet polled, persist records aside (for observers such as
    /// a simulator's probe; carrying them out is still [`Server::poll_output`]'s job).
    pub fn queued_outputs(&self) -> impl Iterator<Item = &Output> {
        self.outputs.iter()
    }

    /// After [`Input::Shutdown`]: whether every connection is gone, so the driver may end.
    pub fn is_finished(&self) -> bool {
        self.stopping && self.conns.len() == 0
    }

    // ----- one-input conveniences (tests, simple drivers) -----

    /// [`Input::Connected`]: a client connected from `peer`; returns its name.
    pub fn handle_connect(&mut self, peer: SocketAddr, now: UnixMillis) -> ConnId {
        self.clock.advance(now);
        self.batch.inputs += 1;
        self.connect(peer)
    }

    /// [`Input::Bytes`].
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: UnixMillis) {
        self.handle_input(Input::Bytes { conn, bytes }, now);
    }

    /// [`Input::Wrote`].
    pub fn handle_written(&mut self, conn: ConnId, bytes: usize, now: UnixMillis) {
        self.handle_input(Input::Wrote { conn, bytes }, now);
    }

    /// [`Input::Closed`] with every written byte acknowledged.
    pub fn handle_disconnect(&mut self, conn: ConnId, now: UnixMillis) {
        self.handle_input(Input::Closed { conn, unacked: 0 }, now);
    }

    /// [`Input::Timeout`].
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.handle_input(Input::Timeout, now);
    }

    /// [`Input::Shutdown`]: tell everyone the server is stopping and close every connection.
    pub fn shutdown(&mut self, now: UnixMillis) {
        self.handle_input(Input::Shutdown, now);
    }

    /// How many users are logged in.
    pub fn online_count(&self) -> usize {
        self.sessions.len()
    }

    /// How many connections the server holds (open, or closed and not yet reported gone).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
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
            DataFile::PostIds => crate::store::postids::render_snapshot(
                self.board
                    .iter()
                    .map(|(_, p)| (p.id, p.at, &p.author, &p.text)),
                self.board.next_id(),
            ),
            DataFile::UserLog => self.sessions.render(zone).into(),
            DataFile::Inbox => self.inbox.render(zone),
            DataFile::Blocks => self.blocks.render().into(),
            DataFile::Logins => self.logins.render(zone).into(),
        }
    }

    // ----- inputs -----

    fn connect(&mut self, peer: SocketAddr) -> ConnId {
        let now = self.now();
        let id = self.conns.next_id();
        let open = self.conns.len();
        self.conns.insert(Conn {
            id,
            peer,
            framer: LineFramer::with_limits(
                crate::proto::MAX_LINE,
                Some(self.config.runaway_line_bytes),
            ),
            link: Link::Clear,
            phase: Phase::AwaitUser,
            udp_port: None,
            login_deadline: None,
            flow: Flow::new(now),
            listing: None,
            paused: false,
            delayed: None,
            wake_at: None,
            ready: false,
            pending_admission: false,
            checking: false,
            armed: Default::default(),
            liveness: liveness::Liveness::new(now),
            uploads: Default::default(),
        });
        let refusal = if self.stopping {
            Some("The server is shutting down. Goodbye.".to_string())
        } else {
            match self.admission.check(peer.ip(), open) {
                Ok(()) => None,
                Err(Refusal::Full { limit }) => {
                    self.log(format!(
                        "{peer} refused: the server is full ({limit} connections)"
                    ));
                    Some(format!(
                        "The server is full ({limit} connections). Please try again later."
                    ))
                }
                Err(Refusal::TooManyFromAddress { limit }) => {
                    self.log(format!(
                        "{peer} refused: {limit} connections from {} have not logged in",
                        peer.ip()
                    ));
                    Some(format!(
                        "Too many connections from {} that have not logged in (at most {limit}). Log in on one of them or try again later.",
                        peer.ip()
                    ))
                }
            }
        };
        if let Some(text) = refusal {
            self.reply(id, Reply::new(Code::CLOSING, text));
            self.close(id);
            return id;
        }
        self.admission.arrived(peer.ip());
        let deadline = now.plus_millis(self.config.login_timeout_millis);
        if let Some(c) = self.conns.get_mut(id) {
            c.pending_admission = true;
            c.login_deadline = Some(deadline);
            self.timers
                .arm(&mut c.armed, id, TimerKind::Login, deadline);
        }
        self.log(format!("{peer} connected"));
        let greeting = match self.config.tls {
            Some(_) => format!("{GREETING}{GREETING_OFFER}"),
            None => GREETING.to_string(),
        };
        self.reply(id, Reply::new(Code::ASK_USER, greeting));
        id
    }

    fn on_bytes(&mut self, conn: ConnId, bytes: &[u8]) {
        let now = self.now();
        let opened = match self.conns.get_mut(conn) {
            Some(c) if c.phase != Phase::Closed => {
                c.liveness.heard(now);
                let Conn { link, framer, .. } = c;
                link.open(bytes, now, |plaintext| framer.extend(plaintext))
            }
            _ => return,
        };
        self.after_tls(conn, opened);
        self.serve(conn);
    }

    fn on_wrote(&mut self, conn: ConnId, n: usize) {
        let now = self.now();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if n == 0 {
            return;
        }
        c.flow.wrote(n, now);
        c.checking = false;
        self.produce(conn);
        self.serve_later(conn);
    }

    fn on_closed(&mut self, conn: ConnId, unacked: usize) {
        let Some(mut c) = self.conns.remove(conn) else {
            return;
        };
        self.holding.remove(&conn);
        if c.pending_admission {
            self.admission.left(c.peer.ip());
        }
        let (delivered, _undelivered) = c.flow.settle_letters(unacked);
        let mut removed = 0;
        for id in delivered {
            removed += usize::from(self.inbox.delivered(id));
        }
        if removed > 0 {
            self.persist_whole(DataFile::Inbox);
        }
        match c.phase {
            Phase::LoggedIn(user) => {
                self.logout_presenting(conn, &user, &c.uploads.audiences());
                self.log(format!(
                    "{user} disconnected from {} without logging out",
                    c.peer
                ));
            }
            Phase::Closed => {
                if let Some(online) = self.sessions.on(conn).map(|o| o.user.clone()) {
                    self.logout_presenting(conn, &online, &c.uploads.audiences());
                }
            }
            _ => self.log(format!("{} disconnected before logging in", c.peer)),
        }
    }

    /// Time passed: fire every timer that is due.
    fn run_due(&mut self) {
        let now = self.now();
        while let Some((conn, kind)) = self.timers.pop_due(now) {
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            Timers::fired(&mut c.armed, kind);
            let deadline = match kind {
                TimerKind::Login => c.login_deadline.filter(|_| c.phase.is_pre_login()),
                TimerKind::Stall => c
                    .flow
                    .stall_deadline(self.config.write_timeout_millis)
                    .filter(|_| c.phase != Phase::Closed)
                    .map(|d| if c.checking { d.min(now) } else { d }),
                TimerKind::Wake => c.wake_at,
                TimerKind::Handshake => c.link.poll_timeout(),
                TimerKind::Keepalive => match c.phase {
                    Phase::LoggedIn(_) => c.liveness.deadline(
                        self.config.keepalive_idle_millis,
                        self.config.keepalive_timeout_millis,
                    ),
                    _ => None,
                },
            };
            match deadline {
                Some(at) if at <= now => self.fire(conn, kind),
                Some(at) => self.timers.arm(&mut c.armed, conn, kind, at),
                None => {}
            }
        }
    }

    fn fire(&mut self, conn: ConnId, kind: TimerKind) {
        match kind {
            TimerKind::Login => {
                let Some(peer) = self.conns.get(conn).map(|c| c.peer) else {
                    return;
                };
                let after = wording::seconds(self.config.login_timeout_millis);
                self.log(format!(
                    "{peer} did not log in within {after}; connection closed"
                ));
                self.reply(
                    conn,
                    Reply::new(
                        Code::CLOSING,
                        format!("Login timed out after {after}. Goodbye."),
                    ),
                );
                self.close(conn);
            }
            TimerKind::Stall => {
                let Some(c) = self.conns.get_mut(conn) else {
                    return;
                };
                // A driver may report writes in batches: before cutting, ask it for the
                // latest, and look again after a quarter of the timeout (any write reported
                // meanwhile counts).
                if !std::mem::replace(&mut c.checking, true) {
                    let grace = (self.config.write_timeout_millis / 4).max(1);
                    let at = self.clock.now().plus_millis(grace);
                    self.timers.arm(&mut c.armed, conn, TimerKind::Stall, at);
                    self.outputs.push_back(Output::CheckProgress { conn });
                    return;
                }
                let who = match &c.phase {
                    Phase::LoggedIn(u) => format!("{u} ({})", c.peer),
                    _ => c.peer.to_string(),
                };
                let waiting = c.flow.unsent();
                let secs = self.config.write_timeout_millis as f64 / 1000.0;
                self.cut(
                    conn,
                    format!(
                        "{who}: disconnected: it accepted no bytes for {secs} s ({waiting} bytes waiting)"
                    ),
                );
            }
            TimerKind::Wake => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.wake_at = None;
                }
                self.serve_later(conn);
            }
            TimerKind::Handshake => self.on_handshake_timeout(conn),
            TimerKind::Keepalive => self.keepalive_due(conn),
        }
    }

    /// Stop: log everyone out, tell every connection, close them all; refuse new ones.
    fn shutdown_all(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let online: Vec<(ConnId, UserName)> = self
            .sessions
            .iter()
            .map(|o| (o.conn, o.user.clone()))
            .collect();
        // Log everyone out first, so logins.txt has their logout time and userlog.txt is empty.
        for (conn, user) in online {
            self.logout(conn, &user);
        }
        // Connections already closed (after OUT or a lockout) get nothing more.
        let open: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.phase != Phase::Closed)
            .map(|c| c.id)
            .collect();
        for conn in open {
            // A listing in progress ends here: the goodbye must not land inside it.
            if let Some(c) = self.conns.get_mut(conn) {
                c.listing = None;
            }
            self.holding.remove(&conn);
            self.reply(
                conn,
                Reply::new(Code::CLOSING, "The server is shutting down. Goodbye."),
            );
            self.close(conn);
        }
        self.log("server shutting down".to_string());
    }

    // ----- taking requests -----

    /// Whether `conn` may have a request handled now.
    fn can_take(&mut self, conn: ConnId) -> bool {
        let (high, low) = (self.config.output_high_water, self.config.output_low_water);
        let Some(c) = self.conns.get_mut(conn) else {
            return false;
        };
        !matches!(c.phase, Phase::Closed | Phase::Hashing)
            && c.listing.is_none()
            && c.wake_at.is_none()
            && c.flow.accepting(high, low)
    }

    fn batch_has_room(&self) -> bool {
        self.batch.lines < self.config.max_batch_lines
            && self.batch.fanout_bytes < self.config.max_batch_fanout_bytes
    }

    /// Handle `conn`'s waiting requests, up to its turn and the batch's room; queue it for
    /// another turn if more wait; tell the driver whether to read from it.
    fn serve(&mut self, conn: ConnId) {
        let mut handled = 0;
        while handled < self.config.lines_per_turn && self.batch_has_room() && self.can_take(conn) {
            let Some(c) = self.conns.get_mut(conn) else {
                return;
            };
            let frame = match c.delayed.take() {
                Some(line) => Frame::Line(line),
                None => match c.framer.next_frame() {
                    Some(f) => f,
                    None => break,
                },
            };
            handled += 1;
            self.batch.lines += 1;
            self.handle_frame(conn, frame);
        }
        let more = self
            .conns
            .get(conn)
            .is_some_and(|c| c.delayed.is_some() || c.framer.has_frame());
        if more && handled > 0 && self.can_take(conn) {
            self.enqueue(conn);
        }
        self.update_reading(conn);
    }

    /// `conn` may be able to go on (its output drained, its hash came, its delay ended).
    fn serve_later(&mut self, conn: ConnId) {
        if self.can_take(conn) {
            let more = self
                .conns
                .get(conn)
                .is_some_and(|c| c.delayed.is_some() || c.framer.has_frame());
            if more {
                self.enqueue(conn);
            }
        }
        self.update_reading(conn);
    }

    fn enqueue(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn)
            && !c.ready
        {
            c.ready = true;
            self.ready.push_back(conn);
        }
    }

    /// Give every connection with waiting requests a turn, round-robin, while the batch has
    /// room.
    fn run_ready(&mut self) {
        let turns = self.ready.len();
        for _ in 0..turns {
            if !self.batch_has_room() {
                return;
            }
            let Some(conn) = self.ready.pop_front() else {
                return;
            };
            match self.conns.get_mut(conn) {
                Some(c) => c.ready = false,
                None => continue,
            }
            self.serve(conn);
        }
    }

    /// Pause reading a connection the server cannot take requests from, or whose buffer is
    /// full; resume otherwise.
    fn update_reading(&mut self, conn: ConnId) {
        let can = self.can_take(conn);
        let limit = self.config.max_input_buffer;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.phase == Phase::Closed {
            return;
        }
        let pause = !can || c.framer.buffered() >= limit;
        if pause != c.paused {
            c.paused = pause;
            self.outputs.push_back(if pause {
                Output::PauseReading { conn }
            } else {
                Output::ResumeReading { conn }
            });
        }
    }

    fn handle_frame(&mut self, conn: ConnId, frame: Frame) {
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
                if let Some(peer) = self.conns.get(conn).map(|c| c.peer) {
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
            Frame::Line(line) => {
                if liveness::is_pong(&line) {
                    // The answer to a keepalive: hearing it was the point (see `liveness`).
                    return;
                }
                let Some(phase) = self.conns.get(conn).map(|c| c.phase.clone()) else {
                    return;
                };
                match phase {
                    Phase::LoggedIn(user) => self.on_command(conn, user, line),
                    Phase::Closed | Phase::Hashing => {}
                    other => self.on_login_line(conn, other, &line),
                }
            }
        }
    }

    // ----- output -----

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
        self.send_direct(conn, Bytes::from(reply.render()), None);
    }

    /// Hand bytes to the driver for `conn` now — sealed into TLS records on an upgraded
    /// connection — accounting for the bytes that go on the wire.
    fn send_direct(&mut self, conn: ConnId, bytes: Bytes, letter: Option<LetterId>) {
        let now = self.now();
        let Some(wire) = self
            .conns
            .get_mut(conn)
            .and_then(|c| c.link.seal(bytes, now))
        else {
            return;
        };
        // Empty while a handshake runs: the session sends it once the handshake is done.
        if !wire.is_empty() && self.account(conn, wire.len(), letter) {
            self.outputs.push_back(Output::Send { conn, bytes: wire });
        }
    }

    /// An event for one connection: held if its listing is in progress.
    fn send_event(&mut self, conn: ConnId, event: &Event, letter: Option<LetterId>) {
        let bytes = Bytes::from(event.render());
        if self.holding.contains(&conn) {
            if let Some(c) = self.conns.get_mut(conn) {
                c.flow.hold(bytes, letter);
            }
            self.check_limit(conn);
        } else {
            self.send_direct(conn, bytes, letter);
        }
    }

    /// Count `len` bytes handed out to `conn`; false if there is no such open connection.
    fn account(&mut self, conn: ConnId, len: usize, letter: Option<LetterId>) -> bool {
        let now = self.now();
        let timeout = self.config.write_timeout_millis;
        let Some(c) = self.conns.get_mut(conn) else {
            return false;
        };
        if c.flow.hand_out(len, letter, now) {
            self.timers.arm(
                &mut c.armed,
                conn,
                TimerKind::Stall,
                now.plus_millis(timeout),
            );
        }
        true
    }

    /// Cut `conn` off if more than the hard limit waits for it.
    fn check_limit(&mut self, conn: ConnId) {
        let limit = self.config.max_unsent_bytes;
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let unsent = c.flow.unsent();
        if unsent <= limit || c.phase == Phase::Closed {
            return;
        }
        let who = match &c.phase {
            Phase::LoggedIn(u) => format!("{u} ({})", c.peer),
            _ => c.peer.to_string(),
        };
        self.cut(
            conn,
            format!(
                "{who}: disconnected: it fell too far behind ({unsent} bytes waiting, limit {limit})"
            ),
        );
    }

    /// Fan `event` out to every online user except `author`'s own connection and the users
    /// who block `author`; rendered once, shared by all.
    fn broadcast(&mut self, author_conn: Option<ConnId>, author: &UserName, event: &Event) {
        let bytes = Bytes::from(event.render());
        let mut except: Vec<ConnId> = author_conn.into_iter().collect();
        for blocker in self.blocks.blockers_of(author) {
            if let Some(o) = self.sessions.find(blocker) {
                except.push(o.conn);
            }
        }
        let holding: Vec<ConnId> = self
            .holding
            .iter()
            .copied()
            .filter(|c| !except.contains(c) && self.sessions.on(*c).is_some())
            .collect();
        for conn in &holding {
            if let Some(c) = self.conns.get_mut(*conn) {
                c.flow.hold(bytes.clone(), None);
            }
            except.push(*conn);
        }
        self.batch.fanout_bytes += bytes.len();
        let limit = self.config.max_unsent_bytes;
        let mut over = Vec::new();
        // Each encrypted connection gets its own records of the event (its own keys and
        // sequence numbers): staged, then sealed with the batch's other events for it and
        // accounted at the end of the batch (or once a record's worth has gathered).
        let encrypted = self.sessions.conns(true);
        if !encrypted.is_empty() {
            let many: Option<HashSet<ConnId>> =
                (except.len() > 16).then(|| except.iter().copied().collect());
            let skip = |c: &ConnId| match &many {
                Some(set) => set.contains(c),
                None => except.contains(c),
            };
            for &conn in encrypted.iter().filter(|c| !skip(c)) {
                let Some(staged) = self.conns.get_mut(conn).and_then(|c| c.link.stage(&bytes))
                else {
                    continue;
                };
                if staged == bytes.len() {
                    self.staged.push(conn);
                }
                if staged >= link::MAX_STAGED {
                    self.seal_staged(conn);
                }
            }
        }
        let members = self.sessions.conns(false);
        if !members.is_empty() {
            let audience = if except.len() > 16 {
                let only: std::sync::Arc<[ConnId]> = members
                    .iter()
                    .copied()
                    .filter(|c| !except.contains(c))
                    .collect();
                Audience::new(only, Vec::new())
            } else {
                Audience::new(members, except)
            };
            // Accounting is per recipient; nothing is allocated per recipient.
            for conn in audience.iter() {
                if self.account(conn, bytes.len(), None)
                    && self
                        .conns
                        .get(conn)
                        .is_some_and(|c| c.flow.unsent() > limit)
                {
                    over.push(conn);
                }
            }
            self.outputs
                .push_back(Output::Broadcast { audience, bytes });
        }
        for conn in over.into_iter().chain(holding) {
            self.check_limit(conn);
        }
    }

    /// Seal and hand out what is staged for `conn`, then apply the unsent-bytes limit.
    fn seal_staged(&mut self, conn: ConnId) {
        let now = self.now();
        let Some(wire) = self
            .conns
            .get_mut(conn)
            .and_then(|c| c.link.seal_staged(now))
        else {
            return;
        };
        if self.account(conn, wire.len(), None) {
            self.outputs.push_back(Output::Send { conn, bytes: wire });
            self.check_limit(conn);
        }
    }

    /// The end of a batch's work: seal every connection's staged fan-out.
    fn seal_all_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        // Sealing may cut a connection that is over its limit, and its user's `* OFFLINE`
        // stages more: go on until nothing is left.
        let mut spare = Vec::new();
        while !self.staged.is_empty() {
            let staged = std::mem::replace(&mut self.staged, spare);
            for &conn in &staged {
                self.seal_staged(conn);
            }
            spare = staged;
            spare.clear();
        }
        // Keep the list's capacity for the next batch, unless a burst blew it up.
        if spare.capacity() <= 4096 {
            self.staged = spare;
        }
    }

    fn persist(&mut self, p: Persist) {
        self.persists.push_back(p);
    }

    /// Rewrite `file` whole at the end of the batch, from the state then.
    fn persist_whole(&mut self, file: DataFile) {
        if file != DataFile::Credentials {
            self.dirty.insert(file);
        }
    }

    /// Turn the batch's dirty files into whole-file records; appends to them are included.
    fn render_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        self.persists.retain(|p| match p {
            Persist::Append { file, .. } => !dirty.contains(file),
            Persist::Replace { file, .. } => !dirty.contains(file),
            Persist::Reject { .. } | Persist::Backup { .. } => true,
        });
        for file in dirty {
            let text = self.render_bytes(file);
            self.persists.push_back(Persist::Replace { file, text });
        }
    }

    fn log(&mut self, text: String) {
        let line = format!("{}  {}\n", self.render_ts(self.now_ts()), text);
        self.narration.push_str(&line);
    }

    /// Close `conn` once what is queued for it is written; a user still logged in on it is
    /// logged out first, so nothing more is fanned out to it.
    fn close(&mut self, conn: ConnId) {
        self.end(conn);
        // An upgraded connection says goodbye to its session too (`close_notify`).
        let now = self.now();
        if let Some(bye) = self.conns.get_mut(conn).and_then(|c| c.link.close(now)) {
            self.hand_out_sealed(conn, bye);
        }
        // The driver must go on reading (and the core discarding) until the peer's end
        // comes, or a paused reader would hold the connection open for good.
        if let Some(c) = self.conns.get_mut(conn)
            && std::mem::take(&mut c.paused)
        {
            self.outputs.push_back(Output::ResumeReading { conn });
        }
        self.outputs.push_back(Output::Close { conn });
    }

    /// Cut `conn` now, dropping what waits for it, and say why on the console.
    fn cut(&mut self, conn: ConnId, why: String) {
        self.log(why);
        if let Some(c) = self.conns.get_mut(conn) {
            c.link.discard_staged();
        }
        self.end(conn);
        self.outputs.push_back(Output::Cut { conn });
    }

    fn end(&mut self, conn: ConnId) {
        self.holding.remove(&conn);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.listing = None;
        c.delayed = None;
        let phase = std::mem::replace(&mut c.phase, Phase::Closed);
        if c.pending_admission {
            c.pending_admission = false;
            let ip = c.peer.ip();
            self.admission.left(ip);
        }
        if let Phase::LoggedIn(user) = phase {
            self.logout(conn, &user);
        }
    }

    fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn set_phase(&mut self, conn: ConnId, phase: Phase) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.phase = phase;
        }
    }

    fn peer(&self, conn: ConnId) -> String {
        self.conns
            .get(conn)
            .map(|c| c.peer.to_string())
            .unwrap_or_default()
    }

    /// A hash job for the driver.
    fn hash(&mut self, job: impl FnOnce(JobId) -> HashJob, pending: PendingHash) {
        let id = JobId(self.next_job);
        self.next_job += 1;
        self.hashes.insert(id, pending);
        self.outputs.push_back(Output::Hash(job(id)));
    }

    /// Remove `user`'s session on `conn`: record the logout, rewrite the user log, tell others.
    fn logout(&mut self, conn: ConnId, user: &UserName) {
        let presented = self
            .conns
            .get(conn)
            .map(|c| c.uploads.audiences())
            .unwrap_or_default();
        self.logout_presenting(conn, user, &presented);
    }

    /// [`Server::logout`] of a connection already gone, whose unreported uploads went to
    /// `presented`.
    fn logout_presenting(&mut self, conn: ConnId, user: &UserName, presented: &[UserName]) {
        if self.sessions.remove(conn).is_none() {
            return;
        }
        let now = self.now_ts();
        self.logins.logout(user, now);
        self.persist_whole(DataFile::Logins);
        self.persist_whole(DataFile::UserLog);
        // At a shutdown nobody's client went offline: everyone is told the server stops, and
        // an `* OFFLINE` now would end their peer-to-peer transfers as if a client had died.
        if self.stopping {
            return;
        }
        let offline = Event::Offline { user: user.clone() };
        self.broadcast(None, user, &offline);
        for peer in self.blockers_in_uploads_with(user, presented) {
            self.send_event(peer, &offline, None);
        }
    }
}

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod name_tests;
#[cfg(test)]
mod storage_health_tests;
#[cfg(test)]
mod test_folder;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
