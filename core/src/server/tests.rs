//! Server state machine tests: one behaviour each, driven in virtual time.

use std::collections::BTreeMap;

use super::*;
use crate::proto::MAX_LINE;

const T0: u64 = 1_795_300_000_000; // 2026-11-21, a whole second

fn files_with_demo_users() -> DataFiles {
    let mut f = DataFiles::new();
    f.insert(
        DataFile::Credentials,
        "yoda jedi\nluke r2d2\nleia alderaan\nhan solo\n",
    );
    f
}

fn fast_config() -> ServerConfig {
    ServerConfig {
        hash_memory_kib: 64,
        ..ServerConfig::default()
    }
}

/// A server plus an in-memory data folder and per-connection transcripts.
struct Harness {
    server: Server,
    config: ServerConfig,
    now: u64,
    files: BTreeMap<DataFile, String>,
    inbox: BTreeMap<ConnId, String>,
    closed: Vec<ConnId>,
    logs: Vec<String>,
    next_port: u16,
}

impl Harness {
    fn new() -> Self {
        Self::with(fast_config(), files_with_demo_users())
    }

    fn with(config: ServerConfig, files: DataFiles) -> Self {
        let mut stored = BTreeMap::new();
        for f in DataFile::ALL {
            stored.insert(f, String::from_utf8_lossy(files.get(f)).into_owned());
        }
        let server =
            Server::new(config.clone(), &files, UnixMillis(T0)).expect("the folder is clean");
        let mut h = Harness {
            server,
            config,
            now: T0,
            files: stored,
            inbox: BTreeMap::new(),
            closed: Vec::new(),
            logs: Vec::new(),
            next_port: 40000,
        };
        h.drain();
        h
    }

    /// Start again from what is on "disk", as after a crash.
    fn restart(&mut self) {
        let mut files = DataFiles::new();
        for (f, t) in &self.files {
            files.insert(*f, t.clone());
        }
        self.server = Server::new(self.config.clone(), &files, UnixMillis(self.now))
            .expect("the folder is clean");
        self.inbox.clear();
        self.closed.clear();
        self.drain();
    }

    /// Carry out every output as a driver with a perfect network would: writes complete at
    /// once (and are reported), hashes are computed on the spot, closed connections end.
    fn drain(&mut self) {
        let mut memory = HashMemory::new();
        loop {
            let mut written: BTreeMap<ConnId, usize> = BTreeMap::new();
            let mut ended = Vec::new();
            let mut hashed = Vec::new();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    assert!(!self.closed.contains(&conn), "sent on closed {conn}");
                    self.inbox
                        .entry(conn)
                        .or_default()
                        .push_str(std::str::from_utf8(bytes).unwrap());
                    *written.entry(conn).or_default() += bytes.len();
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
                        self.closed.push(conn);
                        ended.push(conn);
                    }
                    Output::Log(l) => self.logs.extend(l.lines().map(str::to_owned)),
                    Output::Hash(job) => hashed.push(job.run(&mut memory)),
                    Output::Send { .. }
                    | Output::Broadcast { .. }
                    | Output::PauseReading { .. }
                    | Output::ResumeReading { .. }
                    | Output::CheckProgress { .. } => {}
                }
            }
            if written.is_empty() && ended.is_empty() && hashed.is_empty() {
                return;
            }
            let now = UnixMillis(self.now);
            for (conn, n) in written {
                self.server.handle_written(conn, n, now);
            }
            for done in hashed {
                self.server.handle_input(Input::Hashed(done), now);
            }
            for conn in ended {
                self.server.handle_disconnect(conn, now);
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.server.handle_timeout(UnixMillis(self.now));
    }

    fn connect(&mut self) -> ConnId {
        self.next_port += 1;
        let peer: SocketAddr = format!("127.0.0.1:{}", self.next_port).parse().unwrap();
        let c = self.server.handle_connect(peer, UnixMillis(self.now));
        self.drain();
        self.take(c);
        c
    }

    /// Send one line; return everything the connection received since.
    /// Send a line; what came back, without the `* POSTED` line a `MSG` gets before its
    /// reply (only the tests of post ids look at it: they use [`Harness::say_raw`]).
    fn say(&mut self, conn: ConnId, line: &str) -> String {
        self.say_raw(conn, line)
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("* POSTED "))
            .collect()
    }

    /// Send a line; everything that came back.
    fn say_raw(&mut self, conn: ConnId, line: &str) -> String {
        self.server
            .handle_bytes(conn, format!("{line}\n").as_bytes(), UnixMillis(self.now));
        self.drain();
        self.take(conn)
    }

    fn take(&mut self, conn: ConnId) -> String {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    fn login(&mut self, name: &str, password: &str) -> ConnId {
        let c = self.connect();
        self.say(c, name);
        let r = self.say(c, password);
        assert!(r.starts_with("230-"), "login of {name} failed: {r}");
        // Presence events about this login are not what the tests that call this look at.
        self.inbox.clear();
        c
    }

    fn file(&self, f: DataFile) -> &str {
        self.files.get(&f).map(String::as_str).unwrap_or("")
    }

    fn ts(&self) -> String {
        Zone::UTC.render(UnixMillis(self.now).timestamp())
    }
}

use crate::proto::event::Event;
use crate::time::Zone;

mod guessing;
mod liveness;
mod post_ids;

// ----- login -----

#[test]
fn a_new_connection_is_asked_for_its_user_name() {
    let mut h = Harness::new();
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let c = h.server.handle_connect(peer, UnixMillis(T0));
    h.drain();
    assert!(h.take(c).starts_with("331 Welcome to huddle"));
}

#[test]
fn login_with_the_right_password_welcomes_and_lists_the_commands() {
    let mut h = Harness::new();
    let c = h.connect();
    assert!(h.say(c, "yoda").starts_with("332 "));
    let r = h.say(c, "jedi");
    assert!(r.starts_with("230-Welcome to huddle, yoda!"), "{r}");
    for cmd in [
        "MSG", "PVT", "DLT", "EDT", "RDM", "ATU", "RCU", "BLK", "UNB", "UPD", "OUT",
    ] {
        assert!(r.contains(&format!("  {cmd}")), "missing {cmd} in {r}");
    }
    assert!(h.file(DataFile::UserLog).contains("; yoda; 127.0.0.1; 0\n"));
}

#[test]
fn a_wrong_password_asks_again_with_the_attempts_left() {
    let mut h = Harness::new();
    let c = h.connect();
    h.say(c, "yoda");
    let r = h.say(c, "sith");
    assert!(
        r.starts_with("432 Invalid password") && r.contains("2 attempts left"),
        "{r}"
    );
    assert!(h.say(c, "jedi").starts_with("230-"));
}

#[test]
fn a_lockout_of_one_second_after_one_attempt_is_worded_in_the_singular() {
    let config = ServerConfig {
        attempts: Attempts::new(1).unwrap(),
        block_millis: 1_000,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let c = h.connect();
    h.say(c, "luke");
    assert_eq!(
        h.say(c, "wrong"),
        "435 Invalid password. Your account has been blocked. Please try again later (luke is blocked for 1 second after 1 failed attempt).\n"
    );
    let config = ServerConfig {
        attempts: Attempts::new(2).unwrap(),
        block_millis: 2_000,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let c = h.connect();
    h.say(c, "luke");
    assert!(h.say(c, "wrong").contains("(1 attempt left)"));
    assert!(
        h.say(c, "wrong")
            .contains("(luke is blocked for 2 seconds after 2 failed attempts)")
    );
}

#[test]
fn a_login_timeout_of_part_of_a_second_says_so() {
    let config = ServerConfig {
        login_timeout_millis: 1_500,
        keepalive_idle_millis: 0,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let idle = h.connect();
    h.advance(1_500);
    h.drain();
    assert_eq!(
        h.take(idle),
        "421 Login timed out after 1.5 seconds. Goodbye.\n"
    );
}

#[test]
fn attempts_failures_block_the_name_from_every_address_even_with_the_right_password() {
    let mut h = Harness::new();
    let c = h.connect();
    h.say(c, "yoda");
    h.say(c, "x");
    h.say(c, "y");
    let r = h.say(c, "z");
    assert!(
        r.starts_with("435 Invalid password. Your account has been blocked"),
        "{r}"
    );
    assert!(h.closed.contains(&c));
    h.advance(9_999);
    let d = h.connect();
    let r = h.say(d, "yoda");
    assert!(
        r.starts_with("435 Your account is blocked") && r.contains("1 more second"),
        "{r}"
    );
    assert!(h.closed.contains(&d));
}

#[test]
fn the_block_ends_after_the_block_time() {
    let mut h = Harness::new();
    let c = h.connect();
    h.say(c, "yoda");
    for _ in 0..3 {
        h.say(c, "wrong");
    }
    h.advance(10_000);
    h.login("yoda", "jedi");
}

#[test]
fn attempts_and_block_time_are_configurable() {
    let config = ServerConfig {
        attempts: Attempts::new(1).unwrap(),
        block_millis: 2_000,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let c = h.connect();
    h.say(c, "luke");
    assert!(h.say(c, "bad").starts_with("435 "));
    h.advance(1_999);
    let d = h.connect();
    assert!(h.say(d, "luke").starts_with("435 "));
    h.advance(1);
    h.login("luke", "r2d2");
}

#[test]
fn failures_of_one_name_never_block_another() {
    let mut h = Harness::new();
    let c = h.connect();
    h.say(c, "yoda");
    for _ in 0..3 {
        h.say(c, "wrong");
    }
    h.login("luke", "r2d2");
}

#[test]
fn a_success_resets_the_failure_count() {
    let mut h = Harness::new();
    let c = h.connect();
    h.say(c, "yoda");
    h.say(c, "x");
    h.say(c, "y");
    h.say(c, "jedi");
    h.say(c, "OUT");
    let d = h.connect();
    h.say(d, "yoda");
    assert!(h.say(d, "x").contains("2 attempts left"));
}

#[test]
fn a_name_already_logged_in_cannot_log_in_again() {
    let mut h = Harness::new();
    h.login("yoda", "jedi");
    let c = h.connect();
    h.say(c, "yoda");
    let r = h.say(c, "jedi");
    assert!(r.starts_with("431 yoda is already logged in"), "{r}");
    assert!(!h.closed.contains(&c));
    assert!(h.say(c, "luke").starts_with("332"));
}

#[test]
fn an_invalid_user_name_is_refused_and_asked_again() {
    let mut h = Harness::new();
    let c = h.connect();
    let r = h.say(c, "bad name");
    assert!(
        r.starts_with("431 ") && r.contains("not a valid user name"),
        "{r}"
    );
    assert!(h.say(c, "yoda").starts_with("332"));
}

#[test]
fn sign_up_appends_a_hashed_account_that_survives_a_restart() {
    let mut h = Harness::new();
    let c = h.connect();
    assert!(h.say(c, "rey").starts_with("333 rey is a new user name"));
    assert!(h.say(c, " ").starts_with("433 "));
    assert!(
        h.say(c, "scavenger")
            .starts_with("230-Welcome to huddle, rey!")
    );
    let creds = h.file(DataFile::Credentials).to_string();
    let line = creds.lines().find(|l| l.starts_with("rey ")).unwrap();
    assert!(line.starts_with("rey $argon2id$"), "{line}");
    assert!(!creds.contains("scavenger"));
    h.say(c, "OUT");
    h.restart();
    h.login("rey", "scavenger");
}

#[test]
fn an_empty_new_password_cancels_the_sign_up_and_asks_for_a_user_name_again() {
    let mut h = Harness::new();
    let c = h.connect();
    assert!(h.say(c, "yodaa").starts_with("333 "));
    let r = h.say(c, "");
    assert_eq!(r, "431 Sign-up of yodaa cancelled. Send a user name:\n");
    assert!(!h.file(DataFile::Credentials).contains("yodaa"));
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("sign-up of yodaa cancelled"))
    );
    // Back at the user name: the name meant, then its password.
    assert!(h.say(c, "yoda").starts_with("332 "));
    assert!(h.say(c, "jedi").starts_with("230-"));
    // Cancelling again and again is no sign-up and no failed login.
    let d = h.connect();
    for _ in 0..50 {
        assert!(h.say(d, "rey").starts_with("333 "));
        assert!(h.say(d, "").starts_with("431 Sign-up of rey cancelled"));
    }
    assert!(h.say(d, "rey").starts_with("333 "));
    assert!(h.say(d, "scavenger").starts_with("230-"));
}

#[test]
fn sign_up_onto_a_file_without_a_final_newline_starts_a_new_line() {
    let mut files = DataFiles::new();
    files.insert(DataFile::Credentials, "yoda jedi");
    let mut h = Harness::with(fast_config(), files);
    let c = h.connect();
    h.say(c, "rey");
    h.say(c, "pw");
    assert!(
        h.file(DataFile::Credentials)
            .starts_with("yoda jedi\nrey $argon2id$")
    );
}

#[test]
fn without_sign_up_an_unknown_name_is_refused() {
    let config = ServerConfig {
        allow_signup: false,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let c = h.connect();
    let r = h.say(c, "rey");
    assert!(r.starts_with("431 Unknown user rey"), "{r}");
}

#[test]
fn the_udp_port_declared_before_login_is_in_the_user_log_and_atu() {
    let mut h = Harness::new();
    let c = h.connect();
    assert!(h.say(c, "UDP 5000").starts_with("200 "));
    assert!(h.say(c, "UDP x").starts_with("501 "));
    h.say(c, "yoda");
    h.say(c, "jedi");
    assert!(
        h.file(DataFile::UserLog)
            .ends_with("; yoda; 127.0.0.1; 5000\n")
    );
    let l = h.login("luke", "r2d2");
    let r = h.say(l, "ATU");
    assert!(
        r.starts_with("250 yoda, 127.0.0.1, 5000, active since "),
        "{r}"
    );
}

// ----- MSG, RDM -----

#[test]
fn msg_appends_the_next_number_replies_with_it_and_pushes_it_live() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    h.take(y);
    let r = h.say(y, "MSG do or do not");
    let ts = h.ts();
    assert_eq!(r, format!("250 Message #1 posted at {ts}\n"));
    assert_eq!(h.take(l), format!("* POST 1@1 {ts} yoda no do or do not\n"));
    assert_eq!(
        h.file(DataFile::MessageLog),
        format!("1; {ts}; yoda; do or do not; no\n")
    );
    assert!(
        h.say(l, "msg there is no try")
            .starts_with("250 Message #2 posted")
    );
}

#[test]
fn a_message_with_separators_quotes_and_unicode_comes_back_identical_after_a_restart() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let text = "a; b; no; #3 \"quoted\" 'single' ✓ 日本語 \t tab;";
    h.say(y, &format!("MSG {text}"));
    h.restart();
    let l = h.login("luke", "r2d2");
    let r = h.say(l, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains(&format!(": {text}\n")), "{r}");
}

#[test]
fn msg_without_text_shows_the_usage() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    assert_eq!(
        h.say(y, "MSG"),
        format!(
            "501 missing message. Usage: MSG message; a message is at most {} bytes\n",
            crate::proto::MAX_TEXT
        )
    );
}

#[test]
fn blank_posts_private_messages_and_edits_are_refused_and_nothing_is_stored() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    for line in [
        "MSG  ",
        "MSG    ",
        "MSG \t",
        "PVT luke   ",
        "PVT luke \u{3000}",
    ] {
        let r = h.say(y, line);
        assert!(
            r.starts_with("501 the message is blank (only spaces)"),
            "{line:?}: {r}"
        );
        assert!(r.contains("Usage: "), "{r}");
    }
    assert_eq!(h.take(l), "", "luke was told of nothing");
    assert_eq!(h.file(DataFile::MessageLog), "");
    let r = h.say(y, "MSG real text");
    assert!(r.starts_with("250 Message #1 posted"), "{r}");
    let ts = h.ts();
    let r = h.say(y, &format!("EDT 1 {ts}    "));
    assert!(r.starts_with("501 the message is blank"), "{r}");
    assert!(h.file(DataFile::MessageLog).contains("; real text; no"));
}

#[test]
fn rdm_reads_relative_times_today_and_since_the_last_logout_in_the_servers_zone() {
    // T0 is 22:26:40 UTC, 23:56:40 in the server's zone (UTC+1:30): its day ends 3 min later.
    let config = ServerConfig {
        zone: Zone::from_offset_seconds(5400),
        // luke stays connected through the hours this test skips.
        keepalive_idle_millis: 0,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let l = h.login("luke", "r2d2");
    h.say(l, "MSG yesterday's");
    h.advance(30 * 60 * 1000);
    h.say(l, "MSG today's early");
    h.advance(60 * 60 * 1000);
    let y = h.login("yoda", "jedi");
    h.say(y, "OUT");
    h.advance(10 * 60 * 1000);
    h.say(l, "MSG after yoda left");
    h.advance(5 * 60 * 1000);
    h.say(l, "MSG five minutes ago");
    h.advance(1_000);
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "RDM 5m");
    assert!(r.starts_with("250-1 message since "), "{r}");
    assert!(r.ends_with(": five minutes ago\n"), "{r}");
    let r = h.say(y, "RDM 2h");
    assert!(r.starts_with("250-4 messages since "), "{r}");
    let r = h.say(y, "rdm TODAY");
    assert!(
        r.starts_with("250-3 messages since 21 Nov 2026 23:59:59:"),
        "{r}"
    );
    assert!(!r.contains("yesterday's"), "{r}");
    // Alone: what was posted since yoda's last logout.
    let r = h.say(y, "RDM");
    assert!(r.starts_with("250-2 messages since "), "{r}");
    assert!(
        r.contains(": after yoda left\n") && r.contains(": five minutes ago\n"),
        "{r}"
    );
    // The listing names the full timestamp it starts from.
    assert!(
        r.lines().next().unwrap().ends_with(&format!(
            "{}:",
            Zone::from_offset_seconds(5400).render(Timestamp::from_unix_secs(
                (T0 + 90 * 60 * 1000) as i64 / 1000 - 1
            ))
        )),
        "{r}"
    );
    for bad in ["RDM 0m", "RDM 10s", "RDM -2h", "RDM 99999999999999999999h"] {
        let r = h.say(y, bad);
        assert!(r.starts_with("501 "), "{bad}: {r}");
        assert!(r.contains("Usage: RDM"), "{r}");
    }
}

#[test]
fn rdm_lists_posts_strictly_later_to_the_second_or_says_there_are_none() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.say(y, "MSG one");
    let first = h.ts();
    h.advance(1_000);
    h.say(y, "MSG two");
    let r = h.say(y, &format!("RDM {first}"));
    assert!(
        r.starts_with("250-1 message since")
            && r.contains("250 #2@2 yoda, ")
            && r.ends_with(": two\n"),
        "{r}"
    );
    h.advance(1_000);
    let now = h.ts();
    assert_eq!(
        h.say(y, &format!("RDM {now}")),
        format!("250 No new messages since {now}\n")
    );
    assert!(h.say(y, "RDM 31 Feb 2026 00:00:00").starts_with("501 "));
    assert!(
        h.say(y, "RDM nonsense")
            .starts_with("501 malformed timestamp")
    );
}

// ----- DLT, EDT -----

fn three_posts(h: &mut Harness) -> (ConnId, Vec<String>) {
    let y = h.login("yoda", "jedi");
    let mut stamps = Vec::new();
    for t in ["one", "two", "three"] {
        h.say(y, &format!("MSG {t}"));
        stamps.push(h.ts());
        h.advance(1_000);
    }
    (y, stamps)
}

#[test]
fn dlt_removes_the_message_and_renumbers_later_ones_keeping_their_timestamps() {
    let mut h = Harness::new();
    let (y, ts) = three_posts(&mut h);
    let l = h.login("luke", "r2d2");
    let r = h.say(y, &format!("DLT #1 {}", ts[0]));
    assert!(r.starts_with("250 Message #1 deleted"), "{r}");
    assert_eq!(h.take(l), "* DELETE 1@1 yoda\n");
    assert_eq!(
        h.file(DataFile::MessageLog),
        format!(
            "1; {}; yoda; two; no\n2; {}; yoda; three; no\n",
            ts[1], ts[2]
        )
    );
}

#[test]
fn dlt_and_edt_refuse_a_wrong_timestamp_someone_elses_message_and_a_missing_number() {
    let mut h = Harness::new();
    let (y, ts) = three_posts(&mut h);
    let l = h.login("luke", "r2d2");
    assert!(
        h.say(y, &format!("DLT 2 {}", ts[0]))
            .starts_with("551 The timestamp does not match message #2")
    );
    assert!(
        h.say(l, &format!("DLT 2 {}", ts[1]))
            .starts_with("553 Message #2 was posted by yoda")
    );
    assert!(
        h.say(l, &format!("EDT 2 {} mine", ts[1]))
            .starts_with("553 ")
    );
    assert!(
        h.say(y, &format!("DLT 9 {}", ts[1]))
            .starts_with("550 There is no message #9: messages are numbered 1 to 3")
    );
    assert!(
        h.say(y, "DLT two 21 Nov 2026 22:30:01")
            .starts_with("501 \"two\" is not a message number")
    );
    assert!(h.say(y, "DLT 2").starts_with("501 missing timestamp"));
    assert_eq!(h.file(DataFile::MessageLog).lines().count(), 3);
}

#[test]
fn edt_changes_text_and_timestamp_and_marks_it_edited() {
    let mut h = Harness::new();
    let (y, ts) = three_posts(&mut h);
    let l = h.login("luke", "r2d2");
    let r = h.say(y, &format!("EDT 2 {} deux; zwei", ts[1]));
    let now = h.ts();
    assert_eq!(r, format!("250 Message #2 edited at {now}\n"));
    assert_eq!(h.take(l), format!("* EDIT 2@2 {now} yoda deux; zwei\n"));
    assert!(
        h.file(DataFile::MessageLog)
            .contains(&format!("2; {now}; yoda; deux; zwei; yes\n"))
    );
    // The old timestamp no longer names the message: a concurrent editor is refused.
    assert!(
        h.say(y, &format!("EDT 2 {} again", ts[1]))
            .starts_with("551 ")
    );
}

// ----- PVT and catch-up -----

#[test]
fn pvt_reaches_an_online_user_live() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    let r = h.say(y, "PVT luke use the force");
    assert!(r.starts_with("250 Private message sent to luke"), "{r}");
    assert_eq!(h.take(l), format!("* PVT {} yoda use the force\n", h.ts()));
}

#[test]
fn pvt_to_an_offline_user_is_stored_and_delivered_once_at_login_even_after_a_restart() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "PVT luke first");
    assert!(r.starts_with("250 luke is offline"), "{r}");
    h.say(y, "PVT luke second");
    h.restart();
    let c = h.connect();
    h.say(c, "luke");
    let r = h.say(c, "r2d2");
    let first = r.find("yoda first").unwrap();
    let second = r.find("yoda second").unwrap();
    assert!(r.find("230 ").unwrap() < first && first < second, "{r}");
    // Kept until the connection that carried them ends with them delivered.
    assert_eq!(h.file(DataFile::Inbox).lines().count(), 2);
    h.say(c, "OUT");
    assert_eq!(h.file(DataFile::Inbox), "");
    let c = h.connect();
    h.say(c, "luke");
    assert!(!h.say(c, "r2d2").contains("* PVT"));
}

#[test]
fn pvt_errors_self_unknown_and_blocked() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    assert!(
        h.say(y, "PVT yoda hi")
            .starts_with("553 You cannot send a private message to yourself")
    );
    assert!(
        h.say(y, "PVT vader hi")
            .starts_with("550 There is no user named vader")
    );
    assert!(h.say(y, "PVT luke").starts_with("501 missing message"));
    h.say(l, "BLK yoda");
    assert!(
        h.say(y, "PVT luke hi")
            .starts_with("553 luke has blocked you")
    );
    assert_eq!(h.take(l), "");
}

#[test]
fn at_login_posts_since_the_last_logout_follow_the_stored_private_messages() {
    let mut h = Harness::new();
    let l = h.login("luke", "r2d2");
    h.say(l, "OUT");
    h.advance(1_000);
    let y = h.login("yoda", "jedi");
    h.say(y, "MSG while you were away");
    h.say(y, "PVT luke psst");
    let c = h.connect();
    h.say(c, "luke");
    let r = h.say(c, "r2d2");
    let pvt = r.find("* PVT").unwrap();
    let post = r.find("* POST 1@1 ").unwrap();
    assert!(pvt < post, "{r}");
}

#[test]
fn at_login_only_the_latest_100_posts_are_shown_with_a_hint_to_use_rdm() {
    let mut h = Harness::new();
    let l = h.login("luke", "r2d2");
    h.say(l, "OUT");
    let out_ts = Zone::UTC.render(Timestamp::from_unix_secs(
        UnixMillis(h.now).timestamp().unix_secs() - 1,
    ));
    h.advance(1_000);
    let y = h.login("yoda", "jedi");
    for i in 0..120 {
        h.say(y, &format!("MSG post {i}"));
    }
    let c = h.connect();
    h.say(c, "luke");
    let r = h.say(c, "r2d2");
    assert!(r.contains(&format!("* BACKLOG 20 {out_ts}\n")), "{r}");
    assert_eq!(r.matches("* POST ").count(), 100);
    assert!(
        r.contains("* POST 21@21 ") && r.contains("* POST 120@120 ") && !r.contains("* POST 20@")
    );
}

// ----- ATU, RCU -----

#[test]
fn atu_lists_the_other_active_users_or_says_there_are_none() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    assert_eq!(h.say(y, "ATU"), "250 No other active users\n");
    h.login("luke", "r2d2");
    h.login("leia", "alderaan");
    let r = h.say(y, "atu");
    assert!(
        r.starts_with("250-luke, 127.0.0.1, 0, active since ") && r.contains("\n250 leia, "),
        "{r}"
    );
    assert!(h.say(y, "ATU please").starts_with("501 "));
}

#[test]
fn rcu_lists_users_who_logged_in_within_the_window_online_or_not() {
    let mut h = Harness::new();
    let l = h.login("luke", "r2d2");
    h.say(l, "OUT");
    h.advance(30 * 60_000);
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "RCU");
    assert!(
        r.contains("luke, last login") && r.contains(", offline") && r.contains("yoda, last login"),
        "{r}"
    );
    let r = h.say(y, "RCU 10");
    assert!(!r.contains("luke") && r.contains("yoda"), "{r}");
    assert!(h.say(y, "RCU zero").starts_with("501 "));
}

// ----- BLK, UNB -----

#[test]
fn a_blocker_sees_none_of_the_blocked_users_posts_live_at_login_or_in_rdm() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    assert!(h.say(l, "BLK yoda").starts_with("250 yoda is now blocked"));
    h.take(y);
    h.say(y, "MSG hidden");
    assert_eq!(h.take(l), "");
    assert!(
        h.say(l, "RDM 01 Jan 2000 00:00:00")
            .starts_with("250 No new messages")
    );
    h.say(l, "OUT");
    h.advance(1_000);
    h.say(y, "MSG hidden too");
    h.restart();
    let c = h.connect();
    h.say(c, "luke");
    assert!(!h.say(c, "r2d2").contains("* POST"));
    assert!(h.say(c, "UNB yoda").starts_with("250 yoda is unblocked"));
    assert!(h.say(c, "RDM 01 Jan 2000 00:00:00").contains("hidden too"));
}

#[test]
fn blk_and_unb_errors() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    assert_eq!(h.say(y, "BLK yoda"), "553 You cannot block yourself\n");
    assert!(
        h.say(y, "BLK vader")
            .starts_with("550 There is no user named vader")
    );
    assert!(h.say(y, "UNB luke").starts_with("550 luke was not blocked"));
    assert!(h.say(y, "BLK").starts_with("501 missing user name"));
    h.say(y, "BLK luke");
    assert!(
        h.say(y, "BLK luke")
            .starts_with("250 luke was already blocked")
    );
}

// ----- OUT, disconnect, bad input -----

#[test]
fn out_says_goodbye_closes_and_renumbers_the_user_log() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.login("luke", "r2d2");
    h.login("leia", "alderaan");
    assert_eq!(h.say(y, "OUT"), "221 Goodbye, yoda!\n");
    assert!(h.closed.contains(&y));
    let log = h.file(DataFile::UserLog).to_string();
    assert!(
        log.starts_with("1; ")
            && log.contains("; luke; ")
            && log.contains("\n2; ")
            && log.contains("; leia; "),
        "{log}"
    );
    assert!(!log.contains("yoda"));
}

#[test]
fn a_disconnect_without_out_logs_the_user_out() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.server.handle_disconnect(y, UnixMillis(h.now));
    h.drain();
    assert_eq!(h.file(DataFile::UserLog), "");
    assert_eq!(h.server.online_count(), 0);
    h.login("yoda", "jedi");
}

#[test]
fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    assert!(
        h.say(y, "HELLO")
            .starts_with("500 unknown command \"HELLO\"")
    );
    assert!(h.say(y, "").starts_with("500 "));
    h.server
        .handle_bytes(y, b"MSG \xff\xfe\n", UnixMillis(h.now));
    h.drain();
    assert!(h.take(y).starts_with("503 "));
    let long = "x".repeat(MAX_LINE + 10);
    assert!(
        h.say(y, &format!("MSG {long}"))
            .starts_with("503 Line too long")
    );
    assert!(h.say(y, "MSG still here").starts_with("250 Message #1"));
    assert!(
        h.say(y, "UPD luke clip.mp4")
            .starts_with("501 uploads need the huddle client")
    );
    assert!(h.say(y, "HELP").starts_with("214-"));
}

#[test]
fn a_line_past_the_limit_is_refused_before_its_newline_arrives() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let luke = h.login("luke", "r2d2");
    // 16 MiB with no newline, in read-sized chunks: the 503 comes with the first chunk that
    // passes the limit, and nothing of the line is held.
    h.server.handle_bytes(y, b"MSG ", UnixMillis(h.now));
    let chunk = vec![b'x'; 16 * 1024];
    h.server.handle_bytes(y, &chunk, UnixMillis(h.now));
    h.drain();
    let r = h.take(y);
    assert!(r.starts_with("503 Line too long"), "{r}");
    // The rest of the runaway line is dropped as it comes; past 1 MiB the connection is closed.
    for _ in 0..62 {
        h.server.handle_bytes(y, &chunk, UnixMillis(h.now));
        h.drain();
        assert!(!h.closed.contains(&y));
    }
    assert_eq!(h.take(y), "");
    for _ in 0..2 {
        h.server.handle_bytes(y, &chunk, UnixMillis(h.now));
    }
    h.drain();
    let r = h.take(y);
    assert!(
        r.starts_with("421 More than 1048576 bytes without a newline"),
        "{r}"
    );
    assert!(h.closed.contains(&y));
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("without a newline; connection closed"))
    );
    // yoda is logged out at once; everyone else is still served.
    assert!(h.take(luke).contains("* OFFLINE yoda"));
    assert!(h.say(luke, "MSG still here").starts_with("250 Message #1"));
}

#[test]
fn a_long_line_that_ends_leaves_the_connection_usable() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.server
        .handle_bytes(y, &vec![b'x'; 512 * 1024], UnixMillis(h.now));
    h.drain();
    assert!(h.take(y).starts_with("503 "));
    h.server.handle_bytes(
        y,
        b"xxx
",
        UnixMillis(h.now),
    );
    assert!(h.say(y, "MSG after").starts_with("250 Message #1"));
}

#[test]
fn every_reply_is_made_durable_before_it_is_sent() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.server
        .handle_bytes(y, b"MSG durable\n", UnixMillis(h.now));
    let outs: Vec<Output> = std::iter::from_fn(|| h.server.poll_output()).collect();
    let first_send = outs
        .iter()
        .position(|o| matches!(o, Output::Send { .. }))
        .expect("a reply");
    let persisted: Vec<DataFile> = outs[..first_send]
        .iter()
        .filter_map(|o| match o {
            Output::Persist(Persist::Append { file, .. }) => Some(*file),
            _ => None,
        })
        .collect();
    // The id's journal line, then the post itself, both before any byte is sent.
    assert_eq!(persisted, vec![DataFile::PostIds, DataFile::MessageLog]);
    assert!(
        !outs[first_send..]
            .iter()
            .any(|o| matches!(o, Output::Persist(_))),
        "{outs:?}"
    );
}

#[test]
fn a_torn_last_line_left_by_a_crash_is_dropped_and_the_file_rewritten() {
    let mut files = files_with_demo_users();
    files.insert(
        DataFile::MessageLog,
        "1; 21 Nov 2026 22:30:01; yoda; ok; no\n2; 21 Nov 2026 22:3",
    );
    let mut h = Harness::with(fast_config(), files);
    assert_eq!(
        h.file(DataFile::MessageLog),
        "1; 21 Nov 2026 22:30:01; yoda; ok; no\n"
    );
    assert!(h.logs.iter().any(|l| l.contains("incomplete last line")));
    let y = h.login("yoda", "jedi");
    assert!(h.say(y, "MSG next").starts_with("250 Message #2"));
}

// ----- UPD handshake -----

fn login_with_udp(h: &mut Harness, name: &str, password: &str, port: u16) -> ConnId {
    let c = h.connect();
    h.say(c, &format!("UDP {port}"));
    h.say(c, name);
    assert!(h.say(c, password).starts_with("230-"));
    h.inbox.clear();
    c
}

#[test]
fn upd_introduces_presenter_and_audience_with_one_transfer_id_and_secret() {
    let mut h = Harness::new();
    let y = login_with_udp(&mut h, "yoda", "jedi", 6001);
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    let r = h.say(y, "UPD luke 12345 clip (1).mp4");
    assert!(r.starts_with("227 UPLOAD "), "{r}");
    let to_presenter = crate::proto::upload::parse_upload_grant(r[4..].trim_end()).unwrap();
    assert_eq!(to_presenter.peer, "127.0.0.1:6002".parse().unwrap());
    assert_eq!(
        (
            to_presenter.user.as_str(),
            to_presenter.size,
            to_presenter.name.as_str()
        ),
        ("luke", 12345, "clip (1).mp4")
    );
    let ev = h.take(l);
    let Some(Event::Upload(to_audience)) = crate::proto::event::parse_event(ev.trim_end()) else {
        panic!("no upload event: {ev}");
    };
    assert_eq!(to_audience.peer, "127.0.0.1:6001".parse().unwrap());
    assert_eq!(to_audience.user.as_str(), "yoda");
    assert_eq!(
        (to_audience.id, &to_audience.secret),
        (to_presenter.id, &to_presenter.secret)
    );
    assert!(
        h.logs.iter().any(
            |l| l.contains("yoda asked to upload clip (1).mp4 (12345 bytes) to luke: approved")
        )
    );
}

#[test]
fn a_blocker_in_an_upload_with_a_user_who_vanishes_still_hears_it_went_offline() {
    // yoda blocked luke and sends him a file; leia blocked luke and sends him nothing.
    let mut h = Harness::new();
    let y = login_with_udp(&mut h, "yoda", "jedi", 6001);
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    let leia = login_with_udp(&mut h, "leia", "alderaan", 6003);
    assert!(h.say(y, "BLK luke").starts_with("250 "));
    assert!(h.say(leia, "BLK luke").starts_with("250 "));
    let r = h.say(y, "UPD luke 12345 clip.mp4");
    let first = crate::proto::upload::parse_upload_grant(r[4..].trim_end())
        .map(|g| g.id)
        .unwrap_or_else(|| panic!("{r}"));
    h.take(l);
    // luke's client dies mid-upload: yoda's upload has lost its peer, and only the server
    // can say so; leia's block still keeps luke's presence from her.
    h.server.handle_disconnect(l, UnixMillis(h.now));
    h.drain();
    assert_eq!(h.take(y), "* OFFLINE luke\n");
    assert_eq!(h.take(leia), "");
    let reported = h.say_raw(y, &format!("XFR {first} failed 0"));
    assert_eq!(reported, "", "the report is taken");
    // Once yoda's client reported the outcome, the upload is over: the block holds again.
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    assert!(
        h.say(y, "UPD luke 12345 clip.mp4")
            .starts_with("227 UPLOAD ")
    );
    let id = h.take(l);
    let Some(Event::Upload(intro)) = crate::proto::event::parse_event(id.trim_end()) else {
        panic!("no upload event: {id}");
    };
    let reported = h.say_raw(y, &format!("XFR {} complete 12345", intro.id));
    assert_eq!(reported, "", "the report is taken");
    h.server.handle_disconnect(l, UnixMillis(h.now));
    h.drain();
    assert_eq!(h.take(y), "");
    // The other way round: luke presents to leia, who blocked him after it began.
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    assert!(h.say(leia, "UNB luke").starts_with("250 "));
    assert!(h.say(l, "UPD leia 99 talk.mp4").starts_with("227 UPLOAD "));
    assert!(h.take(leia).starts_with("* UPLOAD "));
    assert!(h.say(leia, "BLK luke").starts_with("250 "));
    h.server.handle_disconnect(l, UnixMillis(h.now));
    h.drain();
    assert_eq!(h.take(leia), "* OFFLINE luke\n");
    assert_eq!(h.take(y), "");
}

#[test]
fn upd_refuses_yourself_unknown_offline_blocked_and_unsafe_names() {
    let mut h = Harness::new();
    let y = login_with_udp(&mut h, "yoda", "jedi", 6001);
    assert!(
        h.say(y, "UPD yoda 1 a.mp4")
            .starts_with("553 You cannot upload a file to yourself")
    );
    assert!(
        h.say(y, "UPD vader 1 a.mp4")
            .starts_with("550 There is no user named vader")
    );
    assert!(
        h.say(y, "UPD luke 1 a.mp4")
            .starts_with("554 luke is offline")
    );
    assert!(
        h.say(y, "UPD luke 1 ../a.mp4")
            .starts_with("501 bad file name")
    );
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    h.say(l, "BLK yoda");
    assert!(
        h.say(y, "UPD luke 1 a.mp4")
            .starts_with("553 luke has blocked you")
    );
    assert_eq!(h.take(l), "");
    h.login("leia", "alderaan");
    assert!(
        h.say(y, "UPD leia 1 a.mp4")
            .starts_with("554 leia's client has no UDP port")
    );
}

#[test]
fn upload_reports_get_no_reply_and_a_stray_one_a_notice_and_nothing_is_narrated_twice() {
    let mut h = Harness::new();
    let y = login_with_udp(&mut h, "yoda", "jedi", 6001);
    let l = login_with_udp(&mut h, "luke", "r2d2", 6002);
    let r = h.say(y, "UPD luke 1000 clip.mp4");
    assert!(r.starts_with("227 UPLOAD "), "{r}");
    let id = r.split(' ').nth(2).unwrap().to_string();
    h.take(l);
    // Someone else's report, a made-up id, a malformed one: a notice each, no reply.
    let r = h.say(l, &format!("XFR {id} complete 1000"));
    assert!(
        r.starts_with("* NOTICE Transfer report ignored: no upload"),
        "{r}"
    );
    let r = h.say(y, "XFR 0123456789abcdef complete 5");
    assert!(r.starts_with("* NOTICE Transfer report ignored"), "{r}");
    let r = h.say(y, "XFR nonsense");
    assert!(
        r.starts_with("* NOTICE Transfer report ignored: write XFR"),
        "{r}"
    );
    // The real one: no reply, one line on the console.
    let r = h.say(y, &format!("XFR {id} cancelled 400"));
    assert_eq!(r, "");
    let told: Vec<_> = h.logs.iter().filter(|l| l.contains(&id)).collect();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(
        told[1].ends_with(&format!(
            "yoda's upload of clip.mp4 (1000 bytes) to luke, transfer {id}: cancelled after 400 B of 1000 B"
        )),
        "{}",
        told[1]
    );
    // Reported once: a second report of it is stray.
    let r = h.say(y, &format!("XFR {id} complete 1000"));
    assert!(r.starts_with("* NOTICE"), "{r}");
    // A blocked upload is refused and narrated once.
    h.say(l, "BLK yoda");
    h.logs.clear();
    let r = h.say(y, "UPD luke 1000 clip.mp4");
    assert!(r.starts_with("553 "), "{r}");
    assert_eq!(h.logs.len(), 1, "{:?}", h.logs);
    // A client that never reports cannot grow the server: the oldest are forgotten.
    h.say(l, "UNB yoda");
    let mut first = None;
    for _ in 0..100 {
        let r = h.say(y, "UPD luke 10 x.mp4");
        first.get_or_insert_with(|| r.split(' ').nth(2).unwrap().to_string());
    }
    let r = h.say(y, &format!("XFR {} complete 10", first.unwrap()));
    assert!(r.starts_with("* NOTICE"), "forgotten beyond the limit: {r}");
}

#[test]
fn a_post_made_in_the_same_second_as_the_logout_is_still_caught_up() {
    let mut h = Harness::new();
    let l = h.login("luke", "r2d2");
    h.say(l, "OUT");
    let y = h.login("yoda", "jedi");
    h.say(y, "MSG right after");
    let c = h.connect();
    h.say(c, "luke");
    assert!(h.say(c, "r2d2").contains("yoda no right after"));
}

#[test]
fn shutdown_logs_everyone_out_and_says_goodbye() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    h.take(y);
    h.server.shutdown(UnixMillis(h.now));
    h.drain();
    // Only the goodbye: an `* OFFLINE luke` would tell yoda's client that luke's client died
    // and end their transfers as if it had.
    for conn in [y, l] {
        let said = h.take(conn);
        assert!(
            said.starts_with("421 The server is shutting down"),
            "{said}"
        );
        assert!(!said.contains("OFFLINE"), "{said}");
    }
    assert_eq!(h.file(DataFile::UserLog), "");
    let logins = h.file(DataFile::Logins);
    assert!(
        logins.contains("yoda; ") && logins.contains("luke; "),
        "{logins}"
    );
    assert!(logins.lines().all(|l| !l.ends_with("; -")), "{logins}");
}

#[test]
fn a_connection_that_does_not_log_in_in_time_is_closed_but_a_logged_in_one_stays() {
    let config = ServerConfig {
        login_timeout_millis: 30_000,
        // The keepalive of the logged-in one is not what this looks at (tests/liveness.rs).
        keepalive_idle_millis: 0,
        ..fast_config()
    };
    let mut h = Harness::with(config, files_with_demo_users());
    let idle = h.connect();
    let y = h.login("yoda", "jedi");
    assert_eq!(h.server.poll_timeout(), Some(UnixMillis(T0 + 30_000)));
    h.advance(29_999);
    h.drain();
    assert!(!h.closed.contains(&idle));
    h.advance(1);
    h.drain();
    assert!(
        h.take(idle)
            .starts_with("421 Login timed out after 30 seconds")
    );
    assert!(h.closed.contains(&idle) && !h.closed.contains(&y));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn a_posts_reply_leaves_after_its_record_but_before_the_fan_out() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    let l = h.login("luke", "r2d2");
    h.server.handle_bytes(y, b"MSG hello\n", UnixMillis(h.now));
    let outs: Vec<Output> = std::iter::from_fn(|| h.server.poll_output()).collect();
    let kinds: Vec<&str> = outs
        .iter()
        .map(|o| match o {
            Output::Persist(_) => "persist",
            Output::Send { conn, .. } if *conn == y => "reply",
            Output::Broadcast { audience, .. } if audience.contains(l) => "event",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    // The id's journal line and the post, then the reply, then everyone else.
    assert_eq!(kinds, vec!["persist", "persist", "reply", "event"]);
}

#[test]
fn the_start_line_counts_in_the_singular_for_one() {
    let mut files = DataFiles::new();
    files.insert(DataFile::Credentials, "yoda jedi\n");
    files.insert(
        DataFile::MessageLog,
        "1; 21 Nov 2026 22:30:01; yoda; do or do not; no\n",
    );
    let h = Harness::with(fast_config(), files);
    assert!(
        h.logs.iter().any(|l| l
            .contains("data loaded: 1 account, 1 message, 0 private messages waiting, 0 blocks")),
        "{:?}",
        h.logs
    );
}
