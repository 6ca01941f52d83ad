//! Issue 9: nothing one client does hurts the others. The hostile inputs, in virtual time,
//! against a simulated network whose readers read only as fast as each test says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::*;

const T0: u64 = 1_795_300_000_000;

fn config() -> ServerConfig {
    ServerConfig {
        hash_memory_kib: 64,
        ..ServerConfig::default()
    }
}

/// No rate limit a test that floods on purpose reaches.
fn unthrottled() -> ServerConfig {
    ServerConfig {
        post_burst: 1_000_000,
        post_rate_per_sec: 1_000_000,
        ..config()
    }
}

fn users() -> DataFiles {
    let mut f = DataFiles::new();
    f.insert(
        DataFile::Credentials,
        "yoda jedi\nluke r2d2\nleia alderaan\nhan solo\n",
    );
    f
}

/// A board of `n` posts by yoda, one a second before T0.
fn board(files: &mut DataFiles, n: usize) {
    let mut text = Vec::new();
    for i in 0..n {
        let at = Timestamp::from_unix_secs((T0 / 1000) as i64 - n as i64 + i as i64);
        text.extend_from_slice(&crate::store::render_post(
            &crate::store::PostRecord {
                number: crate::types::MessageNumber::from_index(i),
                at,
                author: UserName::new("yoda").unwrap(),
                text: format!("post {i} {}", "x".repeat(60)).into(),
                edited: false,
            },
            Zone::UTC,
        ));
    }
    files.insert(DataFile::MessageLog, text);
}

use crate::time::Zone;

/// The server, and a network: per connection, the bytes handed to the driver and not yet
/// read by the peer, and what the peer has read. A peer reads only when the test says so,
/// unless it is `eager`; its input reaches the server in read-sized chunks, only while the
/// server has not paused reading it.
struct Net {
    server: Server,
    now: u64,
    files: BTreeMap<DataFile, String>,
    pipe: BTreeMap<ConnId, Vec<u8>>,
    got: BTreeMap<ConnId, Vec<u8>>,
    /// Bytes the peer has sent that the server has not been given yet.
    outgoing: BTreeMap<ConnId, Vec<u8>>,
    paused: BTreeSet<ConnId>,
    closed: BTreeSet<ConnId>,
    eager: BTreeSet<ConnId>,
    logs: Vec<String>,
    /// Most bytes ever waiting in one connection's pipe.
    peak_pipe: BTreeMap<ConnId, usize>,
    next_port: u16,
    memory: HashMemory,
    /// Peers whose reads are reported only when the server asks (a driver that batches).
    batched: BTreeMap<ConnId, usize>,
}

impl Net {
    fn new(config: ServerConfig, files: DataFiles) -> Self {
        let mut stored = BTreeMap::new();
        for f in DataFile::ALL {
            stored.insert(f, String::from_utf8_lossy(files.get(f)).into_owned());
        }
        let mut n = Net {
            server: Server::new(config, &files, UnixMillis(T0)).expect("the folder is clean"),
            now: T0,
            files: stored,
            pipe: BTreeMap::new(),
            got: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            paused: BTreeSet::new(),
            closed: BTreeSet::new(),
            eager: BTreeSet::new(),
            logs: Vec::new(),
            peak_pipe: BTreeMap::new(),
            next_port: 40_000,
            memory: HashMemory::new(),
            batched: BTreeMap::new(),
        };
        n.step();
        n
    }

    fn at(&self) -> UnixMillis {
        UnixMillis(self.now)
    }

    /// Carry out the server's outputs; eager peers read at once; paused-reading and
    /// chunked input are honoured; hashes are computed at once.
    fn step(&mut self) {
        loop {
            let mut moved = false;
            let mut hashed = Vec::new();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    assert!(!self.closed.contains(&conn), "sent on closed {conn}");
                    let pipe = self.pipe.entry(conn).or_default();
                    pipe.extend_from_slice(bytes);
                    let peak = self.peak_pipe.entry(conn).or_default();
                    *peak = (*peak).max(pipe.len());
                }
                match out {
                    Output::Persist(Persist::Append { file, text }) => self
                        .files
                        .entry(file)
                        .or_default()
                        .push_str(std::str::from_utf8(&text).unwrap()),
                    Output::Persist(Persist::Replace { file, text }) => {
                        self.files.insert(file, String::from_utf8(text).unwrap());
                    }
                    Output::Persist(Persist::Reject { .. } | Persist::Backup { .. }) => {}
                    Output::Close { conn } | Output::Cut { conn } => {
                        self.closed.insert(conn);
                    }
                    Output::PauseReading { conn } => {
                        self.paused.insert(conn);
                    }
                    Output::ResumeReading { conn } => {
                        self.paused.remove(&conn);
                    }
                    Output::Hash(job) => hashed.push(job.run(&mut self.memory)),
                    Output::Log(l) => self.logs.extend(l.lines().map(str::to_owned)),
                    Output::CheckProgress { conn } => {
                        let n = self.batched.get_mut(&conn).map_or(0, std::mem::take);
                        self.server.handle_written(conn, n, UnixMillis(self.now));
                    }
                    Output::Send { .. } | Output::Broadcast { .. } => {}
                }
            }
            for done in hashed {
                self.server.handle_input(Input::Hashed(done), self.at());
                moved = true;
            }
            for conn in self.eager.clone() {
                if self.read(conn, usize::MAX) > 0 {
                    moved = true;
                }
            }
            let senders: Vec<ConnId> = self
                .outgoing
                .iter()
                .filter(|(c, b)| !b.is_empty() && !self.paused.contains(c))
                .map(|(c, _)| *c)
                .collect();
            for conn in senders {
                if self.closed.contains(&conn) {
                    continue;
                }
                let bytes = self.outgoing.get_mut(&conn).unwrap();
                let n = bytes.len().min(16 * 1024);
                let chunk: Vec<u8> = bytes.drain(..n).collect();
                self.server.handle_bytes(conn, &chunk, self.at());
                moved = true;
            }
            if !moved && self.server.poll_timeout() != Some(self.at()) {
                return;
            }
        }
    }

    /// The peer of `conn` reads up to `n` bytes; returns how many.
    fn read_without_step(&mut self, conn: ConnId, n: usize) -> usize {
        let pipe = self.pipe.entry(conn).or_default();
        let n = n.min(pipe.len());
        if n == 0 {
            return 0;
        }
        let bytes: Vec<u8> = pipe.drain(..n).collect();
        self.got.entry(conn).or_default().extend_from_slice(&bytes);
        match self.batched.get_mut(&conn) {
            Some(unreported) => *unreported += n,
            None => self.server.handle_written(conn, n, UnixMillis(self.now)),
        }
        n
    }

    fn read(&mut self, conn: ConnId, n: usize) -> usize {
        self.read_without_step(conn, n)
    }

    /// Time passes.
    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.server.handle_timeout(self.at());
        self.step();
    }

    fn connect_from(&mut self, ip: &str) -> ConnId {
        self.next_port += 1;
        let peer: SocketAddr = format!("{ip}:{}", self.next_port).parse().unwrap();
        let c = self
            .server
            .handle_input(Input::Connected { peer }, self.at())
            .unwrap();
        self.step();
        // The greeting (or the refusal) is read at once.
        self.read(c, usize::MAX);
        self.step();
        c
    }

    /// The peer of `conn` sends `text` (lines); it reaches the server as the server reads.
    fn send(&mut self, conn: ConnId, text: &str) {
        self.outgoing
            .entry(conn)
            .or_default()
            .extend_from_slice(text.as_bytes());
        self.step();
    }

    /// Everything `conn`'s peer has read, as text, taken.
    fn take(&mut self, conn: ConnId) -> String {
        String::from_utf8(self.got.remove(&conn).unwrap_or_default()).unwrap()
    }

    /// An eager client logged in as `name`.
    fn login(&mut self, ip: &str, name: &str, password: &str) -> ConnId {
        let c = self.connect_from(ip);
        self.eager.insert(c);
        self.send(c, &format!("{name}\n{password}\n"));
        let r = String::from_utf8_lossy(self.got.get(&c).map_or(&[][..], Vec::as_slice));
        assert!(r.contains("230 "), "login of {name}: {r}");
        c
    }

    /// A client that reads only when told, logged in as `name`: it has read up to the end
    /// of the welcome, nothing after.
    fn login_lazy(&mut self, name: &str, password: &str) -> ConnId {
        let c = self.connect_from("127.0.0.1");
        self.send(c, &format!("{name}\n{password}\n"));
        loop {
            let got = self.got.get(&c).map_or(&[][..], Vec::as_slice);
            if got.ends_with(b"\n") && got.windows(4).any(|w| w == b"230 ") {
                break;
            }
            assert_eq!(self.read(c, 1), 1, "no welcome for {name}");
            self.step();
        }
        c
    }

    fn end(&mut self, conn: ConnId, unacked: usize) {
        self.server
            .handle_input(Input::Closed { conn, unacked }, self.at());
        self.closed.insert(conn);
        self.pipe.remove(&conn);
        self.step();
    }

    fn log_has(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }
}

fn replies(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .collect()
}

// ----- item 2: backpressure by output -----

#[test]
fn eight_pipelined_rdm_of_a_big_board_queue_at_most_the_high_water_mark_then_all_arrive() {
    let mut files = users();
    board(&mut files, 20_000);
    let cfg = config();
    let (high, max_line) = (cfg.output_high_water, crate::proto::MAX_LINE);
    let mut net = Net::new(cfg, files);
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    let luke = net.login_lazy("luke", "r2d2");
    net.take(luke);
    net.send(luke, &"RDM 01 Jan 2000 00:00:00\n".repeat(8));
    // luke reads nothing: at most the high-water mark (and the chunk in progress) is queued
    // for him, however big the board and however many requests.
    let queued = net.pipe.get(&luke).map_or(0, Vec::len);
    assert!(
        queued > 0 && queued <= high + 16 * 1024 + max_line,
        "{queued}"
    );
    // Everyone else is served meanwhile.
    net.send(yoda, "MSG still here\n");
    assert!(net.take(yoda).contains("250 Message #20001 posted"));
    // luke now reads steadily, 8 KiB at a time: every listing arrives, whole and in order,
    // with yoda's post between two replies, never inside one.
    let mut rounds = 0;
    while net.read(luke, 8 * 1024) > 0 {
        net.step();
        rounds += 1;
    }
    assert!(rounds > 100);
    let text = net.take(luke);
    let lines: Vec<&str> = text.lines().collect();
    let finals = replies(&text);
    assert_eq!(finals.len(), 8, "eight complete replies");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("250-#")).count() + finals.len(),
        8 * 20_000 + 7,
        "every post listed 8 times, and the new one by the 7 listings begun after it"
    );
    let event = lines
        .iter()
        .position(|l| l.starts_with("* POST 20001@"))
        .expect("yoda's post reached luke");
    assert!(lines[event - 1].starts_with("250 "), "not inside a reply");
    assert!(!net.closed.contains(&luke));
    let peak = net.peak_pipe[&luke];
    assert!(peak <= high + 16 * 1024 + max_line, "peak {peak}");
}

#[test]
fn a_client_that_reads_steadily_gets_every_reply_however_much_it_pipelines() {
    let mut net = Net::new(config(), users());
    let luke = net.login_lazy("luke", "r2d2");
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    net.take(luke);
    // 20,000 HELPs (14 lines each, ~16 MB of replies) pipelined at once.
    net.send(luke, &"HELP\n".repeat(20_000));
    let mut text = String::new();
    let mut done = 0;
    for _ in 0..100_000 {
        // luke reads 32 KiB every 10 ms: slower than the server could send.
        net.read(luke, 32 * 1024);
        net.advance(10);
        let got = net.take(luke);
        // Count whole replies only (a read may end inside a line).
        let from = text.len().saturating_sub(4);
        text.push_str(&got);
        done += text[from..].matches("\n214 ").count();
        if done >= 20_000 {
            break;
        }
        // The server never holds more than a buffer of luke's unread requests.
        assert!(net.server.conns.get(luke).unwrap().framer.buffered() <= 64 * 1024 + 16 * 1024);
    }
    assert_eq!(replies(&text).len(), 20_000);
    assert!(replies(&text).iter().all(|r| r.starts_with("214 ")));
    assert!(!net.closed.contains(&luke), "a reader is never cut off");
    // And yoda was served all along.
    net.send(yoda, "MSG hi\n");
    assert!(net.take(yoda).contains("250 Message #1"));
}

#[test]
fn a_client_that_stops_reading_is_cut_after_the_write_timeout_but_a_slow_reader_is_not() {
    let mut files = users();
    board(&mut files, 20_000);
    let mut net = Net::new(config(), files);
    let leia = net.login_lazy("leia", "alderaan");
    let luke = net.login_lazy("luke", "r2d2");
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    net.send(leia, "RDM 01 Jan 2000 00:00:00\n");
    net.send(luke, "RDM 01 Jan 2000 00:00:00\n");
    // luke reads a little every 20 s (within the 30 s timeout); leia never reads.
    for _ in 0..3 {
        net.advance(20_000);
        net.read(luke, 1024);
    }
    assert!(
        net.closed.contains(&leia),
        "cut 30 s after her last progress"
    );
    assert!(net.log_has("leia (127.0.0.1"));
    assert!(net.log_has("accepted no bytes for 30 s"));
    assert!(!net.closed.contains(&luke), "a slow reader is not cut");
    // leia was logged out at once; the others were told.
    assert!(net.take(yoda).contains("* OFFLINE leia"));
    assert!(!net.server.render_file(DataFile::UserLog).contains("leia"));
}

#[test]
fn a_driver_that_reports_writes_only_when_asked_keeps_a_slow_reader_and_cuts_a_stopped_one() {
    let mut files = users();
    board(&mut files, 20_000);
    let mut net = Net::new(config(), files);
    let leia = net.login_lazy("leia", "alderaan");
    let luke = net.login_lazy("luke", "r2d2");
    net.batched.insert(leia, 0);
    net.batched.insert(luke, 0);
    net.send(leia, "RDM 01 Jan 2000 00:00:00\n");
    net.send(luke, "RDM 01 Jan 2000 00:00:00\n");
    for _ in 0..12 {
        net.advance(10_000);
        net.read(luke, 1024);
    }
    assert!(net.closed.contains(&leia), "no progress when asked: cut");
    assert!(!net.closed.contains(&luke), "progress when asked: kept");
}

#[test]
fn a_reader_far_behind_everyone_elses_events_is_cut_at_the_hard_limit() {
    let cfg = ServerConfig {
        max_unsent_bytes: 1024 * 1024,
        ..unthrottled()
    };
    let mut net = Net::new(cfg, users());
    let leia = net.login_lazy("leia", "alderaan");
    let luke = net.login("127.0.0.1", "luke", "r2d2");
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    let post = format!("MSG {}\n", "y".repeat(4000));
    net.send(yoda, &post.repeat(400));
    assert!(net.closed.contains(&leia));
    assert!(net.log_has("it fell too far behind"));
    let peak = net.peak_pipe[&leia];
    assert!(peak <= 1024 * 1024 + 8 * 1024, "{peak}");
    // luke, who reads, got every post.
    assert_eq!(net.take(luke).matches("* POST ").count(), 400);
}

// ----- item 4: private messages deleted only once delivered -----

#[test]
fn three_hundred_letters_survive_a_cut_mid_delivery_and_arrive_at_the_next_login() {
    let mut net = Net::new(unthrottled(), users());
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    net.take(yoda);
    for i in 0..300 {
        net.send(
            yoda,
            &format!("PVT luke letter {i:03} {}\n", "z".repeat(6 * 1024)),
        );
    }
    assert_eq!(replies(&net.take(yoda)).len(), 300);
    let stored = net.files[&DataFile::Inbox].lines().count();
    assert_eq!(stored, 300);

    // luke logs in and reads about a third; his connection is cut with the last 20 KiB
    // written but not acknowledged by his machine.
    let luke = net.login_lazy("luke", "r2d2");
    let mut read = 0;
    while read < 600 * 1024 {
        let n = net.read(luke, 16 * 1024);
        assert!(n > 0, "the catch-up stalled after {read} bytes");
        read += n;
        net.step();
    }
    let first = net.take(luke);
    let unacked = 20 * 1024;
    net.end(luke, unacked);
    assert_eq!(
        net.files[&DataFile::Inbox].lines().count(),
        net.server.inbox.len()
    );

    // At the next login every letter not surely delivered arrives; together, all 300.
    let luke = net.login("127.0.0.1", "luke", "r2d2");
    let second = net.take(luke);
    let seen = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| l.starts_with("* PVT "))
            .filter_map(|l| l.split(" letter ").nth(1))
            .map(|r| r[..3].to_string())
            .collect()
    };
    let (a, b) = (seen(&first), seen(&second));
    assert!(
        a.len() > 50 && !b.is_empty(),
        "{} then {}",
        a.len(),
        b.len()
    );
    let all: BTreeSet<String> = a.union(&b).cloned().collect();
    assert_eq!(all.len(), 300, "nothing lost");
    // What surely arrived the first time is not delivered again.
    let again = a.intersection(&b).count();
    assert!(
        again <= 4,
        "{again} letters of the unacknowledged tail came twice at most"
    );
    // Delivered and acknowledged: the inbox empties once this connection ends.
    net.end(luke, 0);
    assert_eq!(net.files[&DataFile::Inbox], "");
}

#[test]
fn a_live_private_message_to_a_connection_that_dies_is_kept_for_the_next_login() {
    let mut net = Net::new(config(), users());
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    let luke = net.login_lazy("luke", "r2d2");
    net.send(yoda, "PVT luke are you there?\n");
    assert!(net.take(yoda).contains("250 Private message sent to luke"));
    // It was handed out but luke's machine never acknowledged it.
    let pending = net.pipe[&luke].len();
    net.read_without_step(luke, pending);
    net.take(luke);
    net.end(luke, pending);
    let luke = net.login("127.0.0.1", "luke", "r2d2");
    assert!(net.take(luke).contains("yoda are you there?"));
}

// ----- item 5: fair shares -----

#[test]
fn a_flood_of_posts_is_slowed_to_the_rate_then_refused_while_others_are_not_delayed() {
    let cfg = ServerConfig {
        post_burst: 10,
        post_rate_per_sec: 5,
        throttle_refuse_after_millis: 5_000,
        ..config()
    };
    let mut net = Net::new(cfg, users());
    let spam = net.login("127.0.0.1", "han", "solo");
    let luke = net.login("127.0.0.1", "luke", "r2d2");
    net.take(spam);
    net.take(luke);
    net.send(spam, &"MSG spam\n".repeat(200));
    // The burst goes through at once; the rest waits.
    assert_eq!(replies(&net.take(spam)).len(), 10);
    // luke is not delayed by it.
    net.send(luke, "MSG mine\n");
    assert!(net.take(luke).contains("250 Message #11 posted"));
    // Then 5 a second.
    net.advance(1_000);
    assert_eq!(replies(&net.take(spam)).len(), 5);
    // After 5 s over the rate, the rest is refused with a clear 450 until han slows down.
    for _ in 0..6 {
        net.advance(1_000);
    }
    let later = net.take(spam);
    assert!(later.contains("450 Slow down:"), "{later}");
    assert!(net.log_has("han: MSG refused: over 5 a second"));
    let posted = replies(&later)
        .iter()
        .filter(|r| r.starts_with("250 "))
        .count();
    assert!(posted <= 30, "{posted}");
    // Every command got an answer, in order; nothing was silently dropped.
    net.advance(60_000);
    let rest = net.take(spam);
    let answered = 15 + replies(&later).len() + replies(&rest).len();
    assert_eq!(answered, 200);
}

#[test]
fn connections_that_do_not_log_in_are_capped_per_address_but_not_for_exempt_ones() {
    let mut net = Net::new(config(), users());
    let stalled: Vec<ConnId> = (0..8).map(|_| net.connect_from("127.0.0.2")).collect();
    for c in &stalled {
        assert!(net.take(*c).starts_with("331 "));
    }
    let ninth = net.connect_from("127.0.0.2");
    let r = net.take(ninth);
    assert!(
        r.starts_with("421 Too many connections from 127.0.0.2 that have not logged in"),
        "{r}"
    );
    assert!(net.closed.contains(&ninth));
    assert!(net.log_has("127.0.0.2"));
    // Loopback is exempt; other addresses have their own share.
    for _ in 0..20 {
        let c = net.connect_from("127.0.0.1");
        assert!(net.take(c).starts_with("331 "));
    }
    let other = net.connect_from("10.1.2.3");
    assert!(net.take(other).starts_with("331 "));
    // One of them logs in: its place is free again.
    net.eager.insert(stalled[0]);
    net.send(stalled[0], "luke\nr2d2\n");
    let again = net.connect_from("127.0.0.2");
    assert!(net.take(again).starts_with("331 "));
}

#[test]
fn sign_ups_are_capped_per_address_per_minute() {
    let mut net = Net::new(config(), users());
    for i in 0..5 {
        let c = net.connect_from("127.0.0.2");
        net.eager.insert(c);
        net.send(c, &format!("new{i}\npassword{i}\n"));
        assert!(net.take(c).contains("230-Welcome to huddle, new"), "{i}");
    }
    let c = net.connect_from("127.0.0.2");
    net.eager.insert(c);
    net.send(c, "new5\n");
    let r = net.take(c);
    assert!(
        r.contains("431 Too many new accounts from your address (a burst of 5, then one every 12 seconds): new5 was not created. Try again in 12 seconds, or log in"),
        "{r}"
    );
    // The same connection may still log in to an existing account.
    net.send(c, "luke\nr2d2\n");
    assert!(net.take(c).contains("230-"));
    // The wait it names is the one there is: 7 s later, 5 s to go, and then one more.
    net.advance(7_000);
    let d = net.connect_from("127.0.0.2");
    net.eager.insert(d);
    net.send(d, "new5\n");
    let r = net.take(d);
    assert!(r.contains("Try again in 5 seconds,"), "{r}");
    net.advance(4_999);
    net.send(d, "new5\n");
    assert!(net.take(d).contains("Try again in 1 second,"));
    net.advance(1);
    net.send(d, "new5\npassword5\n");
    assert!(net.take(d).contains("230-"));
    // Then again one every 12 s, not 5 a minute: the next is 12 s away.
    let e = net.connect_from("127.0.0.2");
    net.eager.insert(e);
    net.send(e, "new6\n");
    assert!(net.take(e).contains("Try again in 12 seconds,"));
    // Loopback signs up without limit.
    for i in 0..10 {
        let c = net.connect_from("127.0.0.1");
        net.eager.insert(c);
        net.send(c, &format!("local{i}\npw{i}\n"));
        assert!(net.take(c).contains("230-"));
    }
}

#[test]
fn a_full_server_answers_new_connections_with_a_clear_line() {
    let cfg = ServerConfig {
        max_connections: 3,
        ..config()
    };
    let mut net = Net::new(cfg, users());
    for _ in 0..3 {
        let c = net.connect_from("127.0.0.1");
        net.take(c);
    }
    let extra = net.connect_from("127.0.0.1");
    assert!(
        net.take(extra)
            .starts_with("421 The server is full (3 connections)")
    );
    assert!(net.closed.contains(&extra));
}

// ----- item 6: passwords off the hot path -----

#[test]
fn a_login_waits_for_its_hash_while_everyone_else_is_served() {
    let mut files = users();
    files.insert(DataFile::Credentials, "luke r2d2\n");
    let mut net = Net::new(config(), files);
    let luke = net.login("127.0.0.1", "luke", "r2d2");
    // rey signs up: the server hands the hash out and answers nothing until it is done.
    let rey = net.connect_from("127.0.0.1");
    net.take(rey);
    net.server
        .handle_bytes(rey, b"rey\nscavenger\nMSG early\n", net.at());
    let mut jobs = Vec::new();
    while let Some(out) = net.server.poll_output() {
        if let Output::Hash(job) = out {
            jobs.push(job);
        }
    }
    assert_eq!(jobs.len(), 1);
    // Meanwhile luke is answered.
    net.send(luke, "MSG meanwhile\n");
    assert!(net.take(luke).contains("250 Message #1"));
    let done = jobs[0].run(&mut HashMemory::new());
    net.server.handle_input(Input::Hashed(done), net.at());
    net.eager.insert(rey);
    net.step();
    let r = net.take(rey);
    assert!(r.contains("230-Welcome to huddle, rey!"), "{r}");
    // The line rey sent while the hash ran is answered after the login, in order.
    assert!(r.contains("250 Message #2"), "{r}");
    assert!(net.files[&DataFile::Credentials].contains("rey $argon2id$"));
    // Its password is checked off the thread too, at the next login.
    net.end(rey, 0);
    let again = net.login("127.0.0.1", "rey", "scavenger");
    net.take(again);
}

#[test]
fn a_sign_up_whose_connection_goes_before_its_hash_creates_nothing() {
    let mut net = Net::new(config(), users());
    let c = net.connect_from("127.0.0.1");
    net.server.handle_bytes(c, b"rey\nscavenger\n", net.at());
    let mut jobs = Vec::new();
    while let Some(out) = net.server.poll_output() {
        if let Output::Hash(job) = out {
            jobs.push(job);
        }
    }
    net.end(c, 0);
    let done = jobs[0].run(&mut HashMemory::new());
    net.server.handle_input(Input::Hashed(done), net.at());
    net.step();
    assert!(!net.files[&DataFile::Credentials].contains("rey"));
    // The name is free again.
    let d = net.login("127.0.0.1", "rey", "other");
    net.take(d);
}

// ----- item 1: the loop's rules -----

#[test]
fn a_batch_ends_at_its_input_line_and_fan_out_limits() {
    let cfg = ServerConfig {
        max_batch_inputs: 4,
        ..unthrottled()
    };
    let fanout = cfg.max_batch_fanout_bytes;
    let mut net = Net::new(cfg, users());
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    let _luke = net.login("127.0.0.1", "luke", "r2d2");
    net.step();
    for _ in 0..4 {
        assert!(net.server.wants_input());
        net.server.handle_input(Input::Timeout, net.at());
    }
    assert!(!net.server.wants_input(), "four inputs fill the batch");
    net.step();
    assert!(net.server.wants_input(), "a drained batch starts again");
    // 200 posts of 4 KB in one input: one batch fans out at most its budget.
    let post = format!("MSG {}\n", "p".repeat(4000));
    net.server
        .handle_bytes(yoda, post.repeat(200).as_bytes(), net.at());
    let mut first = 0;
    while let Some(out) = net.server.poll_output() {
        if let Output::Broadcast { bytes, .. } = out {
            first += bytes.len();
        }
    }
    assert!(first >= fanout && first < fanout + 8 * 1024, "{first}");
    assert!(
        net.server.poll_timeout().is_some_and(|t| t <= net.at()),
        "more to do now"
    );
}

#[test]
fn two_pipelining_clients_take_turns() {
    let cfg = ServerConfig {
        lines_per_turn: 4,
        max_batch_lines: 8,
        ..config()
    };
    let mut net = Net::new(cfg, users());
    let a = net.login("127.0.0.1", "yoda", "jedi");
    let b = net.login("127.0.0.1", "luke", "r2d2");
    net.take(a);
    net.take(b);
    net.server
        .handle_bytes(a, "HELP\n".repeat(40).as_bytes(), net.at());
    net.server
        .handle_bytes(b, "HELP\n".repeat(40).as_bytes(), net.at());
    let mut order = Vec::new();
    while let Some(out) = net.server.poll_output() {
        if let Output::Send { conn, bytes } = out
            && bytes.starts_with(b"214-")
        {
            order.push(conn);
        }
    }
    // This batch: a's turn, then b's — never all of a's first.
    assert_eq!(order, vec![a, a, a, a, b, b, b, b]);
    net.step();
    assert_eq!(replies(&net.take(a)).len(), 36);
    assert_eq!(replies(&net.take(b)).len(), 36);
}

#[test]
fn a_paused_connection_that_is_closed_is_read_again_so_its_end_is_seen() {
    let mut files = users();
    board(&mut files, 20_000);
    let mut net = Net::new(config(), files);
    let luke = net.login_lazy("luke", "r2d2");
    net.send(luke, "RDM 01 Jan 2000 00:00:00\n");
    assert!(
        net.paused.contains(&luke),
        "a listing in progress pauses reading"
    );
    net.server.shutdown(net.at());
    net.step();
    assert!(net.closed.contains(&luke));
    assert!(
        !net.paused.contains(&luke),
        "reading resumed to see the peer go"
    );
}

#[test]
fn a_listing_numbers_its_lines_as_at_its_start_and_the_deletes_during_it_follow() {
    // 3,000 posts by yoda; luke asks for them all and reads slowly. Meanwhile yoda deletes
    // an early post and then a later one: the listing goes on numbering as when it began, and
    // the two `* DELETE` events come after it, in order, so a client that applies them ends
    // with the board's numbers (before, the lines after the first delete came with the new
    // numbers, ahead of the event that explains them).
    let mut files = users();
    board(&mut files, 3_000);
    let mut net = Net::new(unthrottled(), files);
    let yoda = net.login("127.0.0.1", "yoda", "jedi");
    let luke = net.login_lazy("luke", "r2d2");
    // The catch-up at login (the last 100 posts) first.
    while net.read(luke, 64 * 1024) > 0 {
        net.step();
    }
    net.take(luke);
    net.send(luke, "RDM 01 Jan 2000 00:00:00\n");
    net.read(luke, 16 * 1024);
    net.step();
    let first = net.take(luke);
    assert!(first.contains("250-#1@"), "the listing began");
    let stamp = |n: usize| {
        let at = Timestamp::from_unix_secs((T0 / 1000) as i64 - 3_000 + n as i64 - 1);
        Zone::UTC.civil(at).to_string()
    };
    net.send(yoda, &format!("DLT 5 {}\n", stamp(5)));
    assert!(net.take(yoda).contains("250 Message #5 deleted"));
    net.send(yoda, &format!("DLT 2500 {}\n", stamp(2501)));
    assert!(net.take(yoda).contains("250 Message #2500 deleted"));
    while net.read(luke, 8 * 1024) > 0 {
        net.step();
    }
    let text = first + &net.take(luke);
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("250 "))
        .expect("the listing ended");
    // Every line carries the number its post had when the listing began: post i is #i+1.
    let mut listed = 0;
    for l in &lines[1..=end] {
        let body = l[4..].to_string();
        let (number, rest) = body[1..].split_once('@').expect("#n@id");
        let n: usize = number.parse().unwrap_or_else(|_| panic!("a number: {l}"));
        let text = rest.split_once(": ").map(|(_, t)| t).unwrap_or_default();
        assert!(
            text.starts_with(&format!("post {} ", n - 1)),
            "line numbered as at the start: {l}"
        );
        listed += 1;
    }
    // Post 5 had been listed already; post 2501 was deleted before its turn.
    assert_eq!(listed, 3_000 - 1);
    let after: Vec<&&str> = lines[end + 1..]
        .iter()
        .filter(|l| l.starts_with("* DELETE "))
        .collect();
    assert_eq!(after.len(), 2, "{:?}", &lines[end + 1..]);
    assert!(after[0].starts_with("* DELETE 5@"), "{after:?}");
    assert!(after[1].starts_with("* DELETE 2500@"), "{after:?}");
}
