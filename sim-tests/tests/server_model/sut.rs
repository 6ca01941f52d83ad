//! The system under test: the real server core, driven in memory, compared with the model
//! after every transition.
//!
//! Each `Login` opens a fresh connection (as a client would), sends the user name and, if
//! asked, the password; a connection that did not log in is then closed by the client. Every
//! persist record is applied to an in-memory folder at once, so after each transition the
//! folder must equal what the server says its files are, and those must equal the model.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use huddle_core::UnixMillis;
use huddle_core::proto::event::{Event, is_event_line, parse_event};
use huddle_core::proto::reply::{Reply, ReplyAssembler};
use huddle_core::server::{
    Attempts, ConnId, DataFiles, HashMemory, Input, Output, PlaintextLogin, Server, ServerConfig,
};
use huddle_core::store::{
    BlockRecord, DataFile, InboxRecord, Persist, PostRecord, render_block, render_inbox,
    render_post,
};
use huddle_core::time::{Timestamp, Zone};
use huddle_core::types::{MessageNumber, UserName};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use super::reference::{
    BACKLOG, BLOCK_MS, Ev, Model, PRELOADED, RefState, T0, Transition, USERS, ip, password, render,
};

/// The server core plus what its connections and its data folder received.
pub struct Sut {
    server: Server,
    config: ServerConfig,
    now: u64,
    sessions: BTreeMap<usize, ConnId>,
    files: BTreeMap<DataFile, String>,
    received: BTreeMap<ConnId, String>,
    closed: Vec<ConnId>,
    next_port: u16,
    /// Connections left waiting at the password prompt, by when they were opened.
    stalled: Vec<(ConnId, u64)>,
    /// What the last graceful stop told whom.
    shutdown: Option<Shutdown>,
}

/// What a graceful stop sent: per logged-in user their reply codes and events, and the reply
/// codes of each stalled connection.
#[derive(Debug, Default)]
struct Shutdown {
    codes: BTreeMap<usize, Vec<u16>>,
    events: BTreeMap<usize, Vec<Ev>>,
    stalled: Vec<Vec<u16>>,
}

fn secs(at: huddle_core::time::CivilTime) -> i64 {
    Zone::UTC
        .timestamp_of(at)
        .expect("a real instant")
        .unix_secs()
}

fn ev(e: Event) -> Ev {
    match e {
        Event::Post {
            number,
            id,
            at,
            author,
            edited,
            text,
        } => Ev::Post {
            number: number.get(),
            id: id.0,
            at: secs(at),
            author: author.to_string(),
            edited,
            text,
        },
        Event::Edited {
            number,
            id,
            at,
            author,
            text,
        } => Ev::Edit {
            number: number.get(),
            id: id.0,
            at: secs(at),
            author: author.to_string(),
            text,
        },
        Event::Deleted { number, id, author } => Ev::Delete {
            number: number.get(),
            id: id.0,
            author: author.to_string(),
        },
        Event::Private { at, from, text } => Ev::Pvt {
            at: secs(at),
            from: from.to_string(),
            text,
        },
        Event::Backlog { hidden, .. } => Ev::Backlog { hidden },
        Event::Online { user } => Ev::Online(user.to_string()),
        Event::Offline { user } => Ev::Offline(user.to_string()),
        Event::Notice { text } => panic!("unexpected notice {text:?}"),
        Event::Ping { token } => panic!("unexpected keepalive ping {token}"),
        Event::Upload(grant) => panic!("unexpected upload {grant}"),
        Event::Posted { number, id } => panic!("POSTED {number}@{id} is filtered out before"),
    }
}

/// Split what a connection received into its replies and its events.
fn split(text: &str) -> (Vec<Reply>, Vec<Ev>) {
    let mut asm = ReplyAssembler::new();
    let (mut replies, mut events) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if is_event_line(line) && !asm.is_pending() {
            match parse_event(line).expect("events parse") {
                // The author's own post's id: the model has no ids.
                Event::Posted { .. } => {}
                e => events.push(ev(e)),
            }
        } else if let Some(r) = asm.push(line).expect("replies parse") {
            replies.push(r);
        }
    }
    assert!(!asm.is_pending(), "a reply was cut short: {text:?}");
    (replies, events)
}

impl Sut {
    fn new(attempts: u8) -> Self {
        let mut files = DataFiles::new();
        let creds: String = (0..PRELOADED)
            .map(|u| format!("{} {}\n", USERS[u], password(u)))
            .collect();
        files.insert(DataFile::Credentials, creds.clone());
        let config = ServerConfig {
            attempts: Attempts::new(attempts).unwrap(),
            block_millis: BLOCK_MS,
            backlog_limit: BACKLOG,
            hash_memory_kib: 64,
            // The model's users come from 10.0.0.x and speak in clear (TLS is tested apart).
            plaintext_login: PlaintextLogin::Anywhere,
            // The reference model has no keepalive (its sessions answer nothing): off here,
            // tested in keepalive.rs and the core's liveness tests.
            keepalive_idle_millis: 0,
            ..ServerConfig::default()
        };
        let mut sut = Sut {
            server: Server::new(config.clone(), &files, UnixMillis(T0)).expect("a clean folder"),
            config,
            now: T0,
            sessions: BTreeMap::new(),
            files: BTreeMap::from([(DataFile::Credentials, creds)]),
            received: BTreeMap::new(),
            closed: Vec::new(),
            next_port: 50_000,
            stalled: Vec::new(),
            shutdown: None,
        };
        sut.drain();
        sut.received.clear();
        sut
    }

    /// Carry out every output as a runtime with a perfect network would: writes complete
    /// and are reported, hashes are computed at once. Closed connections stay until the
    /// model says the socket is gone ([`Sut::gone`]).
    fn drain(&mut self) {
        let mut memory = HashMemory::new();
        loop {
            let mut written: BTreeMap<ConnId, usize> = BTreeMap::new();
            let mut hashed = Vec::new();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    assert!(
                        !self.closed.contains(&conn),
                        "sent on {conn} after closing it"
                    );
                    let text = std::str::from_utf8(bytes).expect("UTF-8");
                    self.received.entry(conn).or_default().push_str(text);
                    *written.entry(conn).or_default() += bytes.len();
                }
                match out {
                    Output::Persist(Persist::Append { file, text }) => self
                        .files
                        .entry(file)
                        .or_default()
                        .push_str(std::str::from_utf8(&text).expect("UTF-8")),
                    Output::Persist(Persist::Replace { file, text }) => {
                        self.files
                            .insert(file, String::from_utf8(text).expect("UTF-8"));
                    }
                    Output::Persist(other) => {
                        panic!("the loader found nothing to set aside at a clean start: {other:?}")
                    }
                    Output::Close { conn } | Output::Cut { conn } => self.closed.push(conn),
                    Output::Hash(job) => hashed.push(job.run(&mut memory)),
                    _ => {}
                }
            }
            if written.is_empty() && hashed.is_empty() {
                return;
            }
            for (conn, n) in written {
                self.server.handle_written(conn, n, UnixMillis(self.now));
            }
            for done in hashed {
                self.server
                    .handle_input(Input::Hashed(done), UnixMillis(self.now));
            }
        }
    }

    fn send(&mut self, conn: ConnId, line: &str) {
        let bytes = format!("{line}\n");
        self.server
            .handle_bytes(conn, bytes.as_bytes(), UnixMillis(self.now));
        self.drain();
    }

    /// The driver saw `conn` go (the client closed it, or the server did and the socket is
    /// now gone): tell the core, as a runtime does.
    fn gone(&mut self, conn: ConnId) {
        self.server.handle_disconnect(conn, UnixMillis(self.now));
        self.drain();
    }

    /// A new server process from the folder.
    fn restart(&mut self) {
        let mut files = DataFiles::new();
        for (f, t) in &self.files {
            files.insert(*f, t.clone());
        }
        self.server = Server::new(self.config.clone(), &files, UnixMillis(self.now))
            .expect("the server wrote a clean folder");
        self.sessions.clear();
        self.stalled.clear();
        self.closed.clear();
        self.drain();
        self.received.clear();
    }

    /// Carry out `t`; returns the acting connection (if any) and the replies it got.
    fn run(&mut self, t: &Transition) -> (Option<(usize, ConnId)>, Vec<Reply>) {
        self.received.clear();
        let (actor, conn) = match t {
            Transition::Tick { ms } => {
                self.now += ms;
                self.server.handle_timeout(UnixMillis(self.now));
                self.drain();
                let closed: Vec<ConnId> = self
                    .stalled
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| self.closed.contains(c))
                    .collect();
                for conn in closed {
                    self.gone(conn);
                }
                return (None, Vec::new());
            }
            Transition::Shutdown => {
                self.server.shutdown(UnixMillis(self.now));
                self.drain();
                let mut report = Shutdown::default();
                for (&user, &conn) in &self.sessions {
                    let (replies, events) =
                        split(self.received.get(&conn).map_or("", String::as_str));
                    report
                        .codes
                        .insert(user, replies.iter().map(|r| r.code.get()).collect());
                    if !events.is_empty() {
                        report.events.insert(user, events);
                    }
                }
                for (conn, _) in &self.stalled {
                    let (replies, _) = split(self.received.get(conn).map_or("", String::as_str));
                    report
                        .stalled
                        .push(replies.iter().map(|r| r.code.get()).collect());
                }
                self.shutdown = Some(report);
                self.restart();
                return (None, Vec::new());
            }
            Transition::Restart => {
                self.restart();
                return (None, Vec::new());
            }
            Transition::Stall { user } => {
                self.next_port += 1;
                let peer: SocketAddr = format!("{}:{}", ip(*user), self.next_port).parse().unwrap();
                let conn = self.server.handle_connect(peer, UnixMillis(self.now));
                self.drain();
                self.received.remove(&conn);
                self.send(conn, USERS[*user]);
                if self.closed.contains(&conn) {
                    self.gone(conn);
                } else {
                    self.stalled.push((conn, self.now));
                }
                (*user, conn)
            }
            Transition::Login { user, right } => {
                self.next_port += 1;
                let peer: SocketAddr = format!("{}:{}", ip(*user), self.next_port).parse().unwrap();
                let conn = self.server.handle_connect(peer, UnixMillis(self.now));
                self.drain();
                self.received.remove(&conn);
                self.send(conn, USERS[*user]);
                let asked = self.received.get(&conn).map_or("", |r| &r[..3]).to_string();
                let pw = match (asked.as_str(), *right) {
                    ("332" | "333", true) => Some(password(*user)),
                    ("332", false) => Some("not-the-password".to_string()),
                    // Refused for a new account: a password may not start with a space.
                    ("333", false) => Some(" spaced out".to_string()),
                    _ => None,
                };
                if let Some(pw) = pw {
                    self.send(conn, &pw);
                }
                let (replies, _) = split(self.received.get(&conn).map_or("", String::as_str));
                if replies.last().map(|r| r.code.get()) == Some(230) {
                    self.sessions.insert(*user, conn);
                } else {
                    // The client gives up on a connection that did not log in (or the server
                    // closed it).
                    self.gone(conn);
                }
                (*user, conn)
            }
            other => {
                let user = other.user().unwrap();
                let conn = self.sessions[&user];
                match other {
                    Transition::Drop { .. } => {
                        self.sessions.remove(&user);
                        self.server.handle_disconnect(conn, UnixMillis(self.now));
                        self.drain();
                    }
                    Transition::Logout { .. } => {
                        self.sessions.remove(&user);
                        self.send(conn, "OUT");
                        assert!(self.closed.contains(&conn), "OUT closes the connection");
                        self.gone(conn);
                    }
                    Transition::Msg { text, .. } => self.send(conn, &format!("MSG {text}")),
                    Transition::Edt {
                        number, at, text, ..
                    } => self.send(conn, &format!("EDT {number} {} {text}", render(*at))),
                    Transition::Dlt { number, at, .. } => {
                        self.send(conn, &format!("DLT #{number} {}", render(*at)))
                    }
                    Transition::Pvt { to, text, .. } => {
                        self.send(conn, &format!("PVT {to} {text}"))
                    }
                    Transition::Blk { target, .. } => self.send(conn, &format!("BLK {target}")),
                    Transition::Unb { target, .. } => self.send(conn, &format!("unb {target}")),
                    Transition::Rdm { since, .. } => {
                        self.send(conn, &format!("RDM {}", render(*since)))
                    }
                    Transition::Atu { .. } => self.send(conn, "ATU"),
                    Transition::Rcu { minutes, .. } => match minutes {
                        Some(m) => self.send(conn, &format!("RCU {m}")),
                        None => self.send(conn, "rcu"),
                    },
                    Transition::Tick { .. }
                    | Transition::Login { .. }
                    | Transition::Stall { .. }
                    | Transition::Restart
                    | Transition::Shutdown => unreachable!(),
                }
                (user, conn)
            }
        };
        let (replies, _) = split(self.received.get(&conn).map_or("", String::as_str));
        (Some((actor, conn)), replies)
    }

    /// The events each user got in the last transition.
    fn events(&self, actor: Option<(usize, ConnId)>) -> BTreeMap<usize, Vec<Ev>> {
        let mut out = BTreeMap::new();
        let mut conns: Vec<(usize, ConnId)> = self.sessions.iter().map(|(u, c)| (*u, *c)).collect();
        conns.extend(actor);
        for (user, conn) in conns {
            let (_, events) = split(self.received.get(&conn).map_or("", String::as_str));
            if !events.is_empty() {
                out.insert(user, events);
            }
        }
        out
    }
}

/// The files the model says the server must have.
fn model_files(m: &RefState) -> Vec<(DataFile, String)> {
    let user = |s: &str| UserName::new(s).unwrap();
    let board: String = m
        .posts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            render_post(
                &PostRecord {
                    number: MessageNumber::from_index(i),
                    at: Timestamp::from_unix_secs(p.at),
                    author: user(&p.author),
                    text: p.text.as_str().into(),
                    edited: p.edited,
                },
                Zone::UTC,
            )
        })
        .map(|bytes| String::from_utf8(bytes).expect("UTF-8"))
        .collect();
    let inbox: String = m
        .inbox
        .iter()
        .map(|l| {
            render_inbox(
                &InboxRecord {
                    to: user(&l.to),
                    at: Timestamp::from_unix_secs(l.at),
                    from: user(&l.from),
                    text: l.text.as_str().into(),
                },
                Zone::UTC,
            )
        })
        .map(|bytes| String::from_utf8(bytes).expect("UTF-8"))
        .collect();
    let blocks: String = m
        .blocks
        .iter()
        .map(|(a, b)| {
            render_block(&BlockRecord {
                blocker: user(a),
                blocked: user(b),
            })
        })
        .collect();
    vec![
        (DataFile::MessageLog, board),
        (DataFile::Inbox, inbox),
        (DataFile::Blocks, blocks),
    ]
}

/// The model-based test: the model generates, the core must agree.
pub struct ServerAgainstModel;

impl StateMachineTest for ServerAgainstModel {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(model: &<Self::Reference as ReferenceStateMachine>::State) -> Sut {
        Sut::new(model.attempts)
    }

    fn apply(mut sut: Sut, model: &RefState, t: Transition) -> Sut {
        let (actor, replies) = sut.run(&t);
        if let Some(report) = sut.shutdown.take() {
            let told: Vec<usize> = report.codes.keys().copied().collect();
            let mut online = model.expect.stopped.clone();
            online.sort();
            assert_eq!(told, online, "a stop tells every logged-in user");
            for (user, codes) in &report.codes {
                assert_eq!(codes, &[421], "{} is told the server stops", USERS[*user]);
            }
            assert_eq!(
                report.events, model.expect.events,
                "events pushed by the stop"
            );
            assert_eq!(report.stalled.len(), model.expect.timed_out.len());
            for codes in &report.stalled {
                assert_eq!(
                    codes,
                    &[421],
                    "a stalled connection is told the server stops"
                );
            }
            return sut;
        }
        // Stalled connections the login timeout closed in this transition.
        let mut timed_out = Vec::new();
        for &(conn, opened) in &sut.stalled {
            if matches!(&t, Transition::Stall { .. }) && actor.map(|a| a.1) == Some(conn) {
                continue;
            }
            let (replies, _) = split(sut.received.get(&conn).map_or("", String::as_str));
            if !replies.is_empty() {
                let codes: Vec<u16> = replies.iter().map(|r| r.code.get()).collect();
                assert_eq!(
                    codes,
                    [421],
                    "a stalled connection is only ever told it timed out"
                );
                assert!(sut.closed.contains(&conn), "and then closed");
                timed_out.push(opened);
            }
        }
        sut.stalled
            .retain(|(_, opened)| !timed_out.contains(opened));
        assert_eq!(
            timed_out, model.expect.timed_out,
            "stalled connections closed by {t:?} (opened at)"
        );
        let codes: Vec<u16> = replies.iter().map(|r| r.code.get()).collect();
        assert_eq!(
            codes, model.expect.codes,
            "reply codes to {t:?}: {replies:?}"
        );
        let events = sut.events(actor);
        assert_eq!(events, model.expect.events, "events pushed by {t:?}");
        if let Some(listing) = &model.expect.listing {
            let lines = &replies[0].lines;
            if let Transition::Rdm { .. } = t {
                if listing.is_empty() {
                    assert_eq!(lines.len(), 1, "RDM with nothing to list: {replies:?}");
                    assert!(lines[0].starts_with("No new messages since"), "{lines:?}");
                } else {
                    assert_eq!(&lines[1..], &listing[..], "RDM listing for {t:?}");
                }
            } else {
                assert_eq!(lines, listing, "the reply to {t:?}");
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &RefState) {
        assert_eq!(
            sut.server.online_count(),
            model.online.len(),
            "who is online"
        );
        let creds = sut
            .files
            .get(&DataFile::Credentials)
            .map_or("", String::as_str);
        for (u, name) in USERS.iter().enumerate() {
            let has = creds.lines().any(|l| l.split(' ').next() == Some(*name));
            assert_eq!(
                has, model.accounts[u],
                "{name}'s account in credentials.txt"
            );
        }
        for (file, want) in model_files(model) {
            assert_eq!(
                sut.server.render_file(file),
                want,
                "{file:?} against the model"
            );
        }
        // The data folder holds the server's state: who is online as written, everything else
        // as a server restarted from the folder right now would have it. (A restart may
        // normalise while loading, e.g. take a user who was online at a crash to have logged
        // out at their login, so the live state is compared with a restarted one.)
        let on_disk = |f: DataFile| sut.files.get(&f).map_or("", String::as_str);
        assert_eq!(
            on_disk(DataFile::UserLog),
            sut.server.render_file(DataFile::UserLog),
            "userlog.txt differs from who is online"
        );
        assert_eq!(
            on_disk(DataFile::UserLog),
            model.userlog(),
            "userlog.txt against the model"
        );
        let mut files = DataFiles::new();
        for (f, t) in &sut.files {
            files.insert(*f, t.clone());
        }
        let restarted = Server::new(sut.config.clone(), &files, UnixMillis(sut.now))
            .expect("the server wrote a clean folder");
        // A user online now is "online at the crash" to the restarted server.
        let offline_only = |text: String| -> String {
            text.lines()
                .filter(|l| {
                    let user = l.split("; ").next().unwrap_or("");
                    !model.online.iter().any(|&u| USERS[u] == user)
                })
                .map(|l| format!("{l}\n"))
                .collect()
        };
        for file in [DataFile::MessageLog, DataFile::Inbox, DataFile::Blocks] {
            assert_eq!(
                restarted.render_file(file),
                sut.server.render_file(file),
                "{file:?}: a server restarted from the folder would differ from the live one"
            );
        }
        assert_eq!(
            offline_only(restarted.render_file(DataFile::Logins)),
            offline_only(sut.server.render_file(DataFile::Logins)),
            "logins.txt: a server restarted from the folder would differ from the live one"
        );
    }
}
