//! Scenario 2 (issue 5): twenty users post, edit, delete and read at once for a simulated
//! minute, each behind a link of its own random latency.
//!
//! A probe inside the server loop checks every request at the instant it is applied:
//! - the board is numbered 1..n without gaps after every input;
//! - an `EDT`/`DLT` is accepted exactly when the requester is the author and names the
//!   post's timestamp at that moment (otherwise 550, 553 or 551, and nothing changes), and an
//!   accepted one changes exactly that post (text, timestamp = now, `edited`) or removes it;
//! - a `MSG` appends exactly one post with a new id, greater than every id given before;
//!   nothing else changes the board;
//! - a post named by id (`@id`), or by number and id (`n@id`), is found by its id wherever
//!   it moved, and refused (550, or 551 when it is no longer number n) when it is gone or moved;
//!   every post keeps its id through renumbering and edits;
//! - after every fsync the durable `messagelog.txt` equals the server's own rendering.
//!
//! The clients check that each request gets exactly one reply and that it answers that very
//! request, in order. At the end every acknowledged post is on the board unless its author
//! deleted it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::proto::request::{Request, parse_request};
use huddle_core::server::{ConnId, Output, Server};
use huddle_core::store::{DataFile, PostRecord, parse_messagelog};
use huddle_core::time::{Timestamp, Zone};
use huddle_core::types::{PostId, PostRef};
use huddle_sim_tests::client_host::SimClient;
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::exchanges::reply_codes;
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::{InputSeen, Probe, SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;
use huddle_sim_tests::views::{Listed, parse_numbered, parse_rdm};

const CLIENTS: usize = 20;

fn user(i: usize) -> String {
    format!("user{i:02}")
}

/// Checks the board rules at the instant each request is applied.
#[derive(Debug, Default)]
struct BoardChecker {
    pending_name: BTreeMap<ConnId, String>,
    users: BTreeMap<ConnId, String>,
    board: Vec<PostRecord>,
    /// The board as the server rendered it last (parsed again only when it changes).
    board_text: String,
    /// The original text of each post on the board, in board order: a post's identity
    /// across edits and renumbering.
    identity: Vec<String>,
    /// The id of each post on the board, in board order (from the server's `postids.txt`).
    ids: Vec<u64>,
    /// The highest id given so far.
    top_id: u64,
    /// Requests that named a post by id, accepted and refused.
    by_id: u32,
    /// (author, original text) of every post deleted, by its author.
    deleted: Vec<(String, String)>,
    accepted: BTreeMap<&'static str, u32>,
    refused: BTreeMap<u16, u32>,
    syncs_checked: u32,
}

/// The ids of the board in order, from the server's rendering of `postids.txt`.
fn parse_ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("+ "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn parse_board(text: &str) -> Vec<PostRecord> {
    for (i, line) in text.lines().enumerate() {
        assert!(
            line.starts_with(&format!("{}; ", i + 1)),
            "the board is not numbered 1..n without gaps: line {} is {line:?}",
            i + 1
        );
    }
    let mut warnings = Vec::new();
    let board = parse_messagelog(text, Zone::UTC, &mut warnings);
    assert!(
        warnings.is_empty(),
        "the server renders a bad board: {warnings:?}"
    );
    board
}

impl BoardChecker {
    /// The index `target` names on the board, or the refusal it gets for it.
    fn resolve(&self, target: PostRef) -> Result<usize, u16> {
        let by_id = |id: PostId| self.ids.iter().position(|i| *i == id.0).ok_or(550);
        match target {
            PostRef::Number(n) => Ok(n.index()),
            PostRef::Id(id) => by_id(id),
            PostRef::Both(n, id) => {
                let i = by_id(id)?;
                if i == n.index() { Ok(i) } else { Err(551) }
            }
        }
    }

    fn expected_code(&self, user: &str, target: PostRef, claimed: Timestamp) -> u16 {
        let i = match self.resolve(target) {
            Ok(i) => i,
            Err(code) => return code,
        };
        match self.board.get(i) {
            None => 550,
            Some(p) if p.author.as_str() != user => 553,
            Some(p) if p.at != claimed => 551,
            Some(_) => 250,
        }
    }

    fn check_command(
        &mut self,
        user: &str,
        line: &str,
        code: u16,
        after: &[PostRecord],
        ids_after: &[u64],
    ) {
        let now = clock::now().timestamp();
        let request = parse_request(line.as_bytes()).expect("clients send valid requests");
        let before = &self.board;
        let ids_before = &self.ids;
        let unchanged = || {
            assert_eq!(after, before, "{user}: {line:?} ({code}) changed the board");
            assert_eq!(
                ids_after, ids_before,
                "{user}: {line:?} ({code}) changed the ids"
            );
        };
        if let Request::Dlt { target, .. } | Request::Edt { target, .. } = &request
            && target.id().is_some()
        {
            self.by_id += 1;
        }
        match request {
            Request::Msg { text } => {
                assert_eq!(code, 250, "{user}: {line:?}");
                assert_eq!(after.len(), before.len() + 1);
                assert_eq!(&after[..before.len()], &before[..], "a post changed others");
                let new = &after[before.len()];
                assert!(new.author.as_str() == user && new.text == text && new.at == now);
                assert!(!new.edited);
                assert_eq!(&ids_after[..ids_before.len()], &ids_before[..]);
                let id = ids_after[ids_before.len()];
                assert!(
                    id > self.top_id,
                    "id {id} given again (top {})",
                    self.top_id
                );
                self.top_id = id;
                self.identity.push(text);
                *self.accepted.entry("MSG").or_default() += 1;
            }
            Request::Edt { target, at, text } => {
                let claimed = Zone::UTC.timestamp_of(at).expect("a valid timestamp");
                let expected = self.expected_code(user, target, claimed);
                assert_eq!(code, expected, "{user}: {line:?} against {before:?}");
                if code != 250 {
                    unchanged();
                    *self.refused.entry(code).or_default() += 1;
                    return;
                }
                let i = self.resolve(target).expect("accepted");
                assert_eq!(ids_after, ids_before, "an edit keeps every id");
                let mut want = before.clone();
                want[i].text = text.into();
                want[i].at = now;
                want[i].edited = true;
                assert_eq!(after, &want[..], "{user}: {line:?} edited otherwise");
                *self.accepted.entry("EDT").or_default() += 1;
            }
            Request::Dlt { target, at } => {
                let claimed = Zone::UTC.timestamp_of(at).expect("a valid timestamp");
                let expected = self.expected_code(user, target, claimed);
                assert_eq!(code, expected, "{user}: {line:?} against {before:?}");
                if code != 250 {
                    unchanged();
                    *self.refused.entry(code).or_default() += 1;
                    return;
                }
                let i = self.resolve(target).expect("accepted");
                if let Some(id) = target.id() {
                    assert_eq!(ids_before[i], id.0, "{user}: {line:?} hit another post");
                }
                let mut want_ids = ids_before.clone();
                want_ids.remove(i);
                assert_eq!(ids_after, &want_ids[..], "the others keep their ids");
                assert_eq!(after.len(), before.len() - 1);
                for (k, p) in after.iter().enumerate() {
                    let old = &before[if k < i { k } else { k + 1 }];
                    assert!(
                        p.at == old.at && p.author == old.author && p.text == old.text,
                        "{user}: {line:?}: later posts must keep their timestamps"
                    );
                }
                let original = self.identity.remove(i);
                self.deleted.push((user.to_string(), original));
                *self.accepted.entry("DLT").or_default() += 1;
            }
            _ => unchanged(),
        }
    }
}

impl Probe for BoardChecker {
    fn booted(&mut self, server: &Server) {
        self.board_text = server.render_file(DataFile::MessageLog);
        self.board = parse_board(&self.board_text);
        self.ids = parse_ids(&server.render_file(DataFile::PostIds));
        self.identity = self.board.iter().map(|p| p.text.to_string()).collect();
    }

    fn after_input(&mut self, server: &Server, input: &InputSeen<'_>, outputs: &[Output]) {
        let text = server.render_file(DataFile::MessageLog);
        let changed = text != self.board_text;
        let after = if !changed {
            self.board.clone()
        } else {
            parse_board(&text)
        };
        let ids_after = if changed {
            parse_ids(&server.render_file(DataFile::PostIds))
        } else {
            self.ids.clone()
        };
        assert_eq!(ids_after.len(), after.len(), "one id per post");
        self.board_text = text;
        let (conn, bytes) = match input {
            InputSeen::Bytes { conn, bytes } => (*conn, *bytes),
            InputSeen::Disconnect { conn } => {
                self.users.remove(conn);
                assert_eq!(after, self.board, "a disconnect changed the board");
                return;
            }
            _ => {
                assert_eq!(after, self.board, "the board changed on its own");
                return;
            }
        };
        let text = std::str::from_utf8(bytes).expect("clients send UTF-8");
        let line = text.strip_suffix('\n').expect("one whole line per read");
        assert!(!line.contains('\n'), "one request at a time per client");
        let codes = reply_codes(outputs, conn);
        let code = *codes.first().expect("every line is answered");
        assert_eq!(codes.len(), 1, "exactly one reply per line: {codes:?}");
        match self.users.get(&conn).cloned() {
            None => {
                match code {
                    332 => {
                        self.pending_name.insert(conn, line.to_string());
                    }
                    230 => {
                        let name = self.pending_name.remove(&conn).expect("a name first");
                        self.users.insert(conn, name);
                    }
                    _ => {}
                }
                assert_eq!(after, self.board, "logging in changed the board");
            }
            Some(user) => {
                self.check_command(&user, line, code, &after, &ids_after);
                if code == 221 {
                    self.users.remove(&conn);
                }
            }
        }
        self.board = after;
        self.ids = ids_after;
    }

    fn after_sync(&mut self, server: &Server, disk: &Disk) {
        assert_eq!(
            disk.durable(DataFile::MessageLog),
            server.render_file(DataFile::MessageLog),
            "the durable messagelog.txt differs from the server's state"
        );
        self.syncs_checked += 1;
    }
}

/// What the clients were told.
#[derive(Debug, Default)]
struct Acks {
    posts: Vec<(String, String)>,
    commands: u32,
}

fn render(secs: i64) -> String {
    Zone::UTC.render(Timestamp::from_unix_secs(secs))
}

/// One user for a simulated minute.
async fn client(
    i: usize,
    seed: u64,
    end_ms: u64,
    trace: Trace,
    acks: Rc<RefCell<Acks>>,
) -> turmoil::Result {
    let mut rng = Rng::new(seed, i as u64);
    let name = user(i);
    let mut c =
        SimClient::connect_retrying(&format!("c{i}"), &trace, Duration::from_millis(10)).await;
    c.login(&name, "pw").await.expect("login");
    let mut listed: Vec<Listed> = Vec::new();
    let mut seq = 0;
    while clock::elapsed_ms() < end_ms {
        c.idle(Duration::from_millis(rng.range(0, 1_500))).await;
        seq += 1;
        let roll = rng.range(0, 100);
        let own: Vec<&Listed> = listed.iter().filter(|l| l.author == name).collect();
        let pick = if !own.is_empty() && rng.chance(75) {
            Some(own[rng.index(own.len())])
        } else if !listed.is_empty() {
            Some(&listed[rng.index(listed.len())])
        } else {
            None
        };
        let target = pick.map(|l| {
            let mut at = l.at.clone();
            let mut number = l.number;
            if rng.chance(10) {
                // A wrong version: one second earlier.
                let ts = Zone::UTC
                    .timestamp_of(huddle_core::proto::timestamp::parse_civil_time(&at).unwrap())
                    .unwrap();
                at = render(ts.unix_secs() - 1);
            }
            if rng.chance(5) {
                number += 50;
            }
            // How the post is named: by number as DESIGN has it, by id, or by both.
            let name = match rng.range(0, 10) {
                0..5 => format!("{number}"),
                5..7 => format!("@{}", l.id),
                _ => format!("{number}@{}", l.id),
            };
            (name, at)
        });
        let (line, kind) = match (roll, target.clone()) {
            (0..35, _) | (35..70, None) => (format!("MSG {name} #{seq}: hello; world"), "MSG"),
            (35..55, Some((n, at))) => (format!("EDT {n} {at} {name} edits {seq}"), "EDT"),
            (55..70, Some((n, at))) => (format!("DLT {n} {at}"), "DLT"),
            _ => {
                let since = clock::now().timestamp().unix_secs() - rng.range(0, 90) as i64;
                (format!("RDM {}", render(since)), "RDM")
            }
        };
        let reply = c
            .command(&line)
            .await
            .unwrap_or_else(|t| panic!("{name}: {line:?} got no single reply: {t:?}"));
        acks.borrow_mut().commands += 1;
        let code = reply.code.get();
        // The reply answers this very request.
        match kind {
            "MSG" => {
                assert_eq!(code, 250, "{name}: {line:?} -> {reply:?}");
                assert!(
                    parse_numbered(&reply).is_some(),
                    "{name}: {line:?} -> {reply:?}"
                );
                let text = line.strip_prefix("MSG ").unwrap().to_string();
                acks.borrow_mut().posts.push((name.clone(), text));
            }
            "EDT" | "DLT" => {
                let n = target.unwrap().0;
                if code == 250 {
                    let verb = if kind == "EDT" { "edited" } else { "deleted" };
                    // By id, the number it has now (the checker knows which it is).
                    let number = if n.starts_with('@') {
                        reply
                            .text()
                            .strip_prefix("Message #")
                            .and_then(|r| r.split(' ').next())
                            .unwrap_or_default()
                            .to_string()
                    } else {
                        n.split('@').next().unwrap_or_default().to_string()
                    };
                    assert!(
                        reply
                            .text()
                            .starts_with(&format!("Message #{number} {verb} at ")),
                        "{name}: {line:?} -> {reply:?}"
                    );
                } else {
                    assert!(
                        [550, 551, 553].contains(&code),
                        "{name}: {line:?} -> {reply:?}"
                    );
                }
            }
            _ => {
                assert_eq!(code, 250);
                let since = line.strip_prefix("RDM ").unwrap();
                assert!(
                    reply.lines[0].contains(&format!("since {since}")),
                    "{name}: {line:?} -> {reply:?}"
                );
                if rng.chance(50) || listed.is_empty() {
                    let all = c.command(&format!("RDM {}", render(0))).await.expect("RDM");
                    listed = parse_rdm(&all);
                }
            }
        }
    }
    c.logout().await;
    Ok(())
}

fn run_one(seed: u64, minutes: u64) {
    let _guard = SeedGuard::new("concurrent_edits", seed);
    let end_ms = minutes * 60_000;
    // 5 ms ticks: a simulated minute of twenty hosts stays cheap; latencies are coarser.
    let mut sim = sim::builder(seed, Duration::from_millis(end_ms + 60_000))
        .tick_duration(Duration::from_millis(5))
        .build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    let creds: String = (0..CLIENTS).map(|i| format!("{} pw\n", user(i))).collect();
    disk.preload(DataFile::Credentials, &creds);
    let checker = Rc::new(RefCell::new(BoardChecker::default()));
    ServerHost::new(sim_config(seed), disk.clone(), trace.clone())
        .with_probe(checker.clone())
        .install(&mut sim);
    let acks: Rc<RefCell<Acks>> = Rc::default();
    let mut rng = Rng::new(seed, 4242);
    for i in 0..CLIENTS {
        let host = format!("c{i}");
        sim.client(
            host.as_str(),
            client(i, seed, end_ms, trace.clone(), acks.clone()),
        );
        let latency = Duration::from_millis(rng.range(1, 120));
        sim.set_link_max_message_latency(host.as_str(), SERVER, latency);
    }
    sim::run(&mut sim, "concurrent_edits", seed);

    let checker = checker.borrow();
    let acks = acks.borrow();
    for (author, text) in &acks.posts {
        let on_board = checker.identity.contains(text);
        let deleted = checker.deleted.contains(&(author.clone(), text.clone()));
        assert!(
            on_board != deleted,
            "acknowledged post {text:?} by {author}: on the board {on_board}, deleted by its author {deleted}"
        );
    }
    assert_eq!(
        disk.durable(DataFile::MessageLog),
        checker
            .board
            .iter()
            .map(|p| String::from_utf8(huddle_core::store::render_post(p, Zone::UTC)).unwrap())
            .collect::<String>(),
        "the final messagelog.txt is the final board"
    );
    // The run must have exercised the rules it checks.
    for kind in ["MSG", "EDT", "DLT"] {
        assert!(
            checker.accepted.get(kind).copied().unwrap_or(0) > 5,
            "few accepted {kind}: {:?}",
            checker.accepted
        );
    }
    for code in [550, 551, 553] {
        assert!(
            checker.refused.get(&code).copied().unwrap_or(0) > 0,
            "no {code} refusal: {:?}",
            checker.refused
        );
    }
    assert!(checker.syncs_checked > 100);
    assert!(checker.by_id > 20, "few requests by id: {}", checker.by_id);
    eprintln!(
        "concurrent_edits seed {seed}: {} commands, accepted {:?}, refused {:?}, {} fsyncs",
        acks.commands,
        checker.accepted,
        checker.refused,
        disk.fsyncs()
    );
}

#[test]
fn twenty_concurrent_editors_keep_the_board_numbered_versioned_and_durable() {
    // The checker looks at the whole board after every input, so a soak runs more seeds
    // rather than much longer ones.
    let minutes = if sim::soak() > 0 { 3 } else { 1 };
    for seed in sim::seeds(2, 1, 10) {
        run_one(seed, minutes);
    }
}
