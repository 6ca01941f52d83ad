//! A server over real TCP on 127.0.0.1, spoken to line by line as `nc` would.
//!
//! Shared by both runtimes: `runtime-std/tests/server_tcp.rs` and
//! `runtime-smol/tests/server_tcp.rs` include this module, each with its own `spawn_server`
//! in scope as `super::spawn_server`. One suite, two runtimes.
//!
//! No test asserts how long anything takes. Waits are for things that must happen (a log
//! line, a reply); the only deadline is a generous guard against a hang.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use huddle_core::server::ServerConfig;
use huddle_runtime_std::{LogSink, ServerHandle, ServerOptions};

use super::spawn_server;

/// Guard against a hang, never a performance check.
const HANG: Duration = Duration::from_secs(20);

const DEMO_USERS: &str =
    "yoda jedi*knight\nobiwan hellothere\nluke r2d2\nleia alderaan\nhans falcon*solo\n";

fn config() -> ServerConfig {
    ServerConfig {
        rng_seed: [7; 32],
        // Argon2's smallest sensible cost: sign-up stays fast in tests.
        hash_memory_kib: 64,
        ..ServerConfig::default()
    }
}

/// The usual test settings, with a rate limit no test that floods on purpose reaches.
fn unthrottled() -> ServerConfig {
    ServerConfig {
        post_burst: 1_000_000,
        post_rate_per_sec: 1_000_000,
        ..config()
    }
}

/// A server on 127.0.0.1:0 whose log lines the test can wait for.
struct TestServer {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    logs: Receiver<String>,
}

impl TestServer {
    fn start(dir: &Path, config: ServerConfig) -> Self {
        Self::start_with(dir, config, |_| {})
    }

    fn start_with(
        dir: &Path,
        config: ServerConfig,
        tweak: impl FnOnce(&mut ServerOptions),
    ) -> Self {
        let (tx, logs) = mpsc::channel::<String>();
        let tx = std::sync::Mutex::new(tx);
        let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), dir, config);
        opts.log = LogSink::new(move |text| {
            for line in text.lines() {
                println!("{}", line.chars().take(160).collect::<String>());
            }
            let line = text;
            let _ = tx.lock().unwrap().send(line.to_string());
        });
        tweak(&mut opts);
        let handle = spawn_server(opts).unwrap();
        let addr = handle.local_addr();
        Self {
            handle: Some(handle),
            addr,
            logs,
        }
    }

    /// Wait for a log line containing `needle`.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    fn login(&self, user: &str, password: &str) -> Client {
        let mut c = self.connect();
        assert!(
            c.say(user).starts_with("332 "),
            "password prompt for {user}"
        );
        let welcome = c.say(password);
        assert!(welcome.starts_with("230-"), "{welcome}");
        c
    }

    fn stop(mut self) {
        self.handle.take().unwrap().shutdown().unwrap();
    }
}

fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("credentials.txt"), DEMO_USERS).unwrap();
    dir
}

fn read_file(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// One client connection; replies are read up to their `NNN ` line, events are kept aside.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    events: Vec<String>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        let mut c = Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            events: Vec::new(),
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("331 "), "{greeting}");
        c
    }

    /// One line without its `\n`, or `None` at the end of the stream.
    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf).unwrap();
        if n == 0 {
            return None;
        }
        assert_eq!(buf.pop(), Some(b'\n'), "a line cut short");
        Some(String::from_utf8(buf).unwrap())
    }

    /// The next reply, its lines joined with `\n`.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line().expect("connection closed before a reply");
            if line.starts_with("* ") {
                self.events.push(line);
                continue;
            }
            let last = line.as_bytes().get(3) == Some(&b' ');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn say(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// Read until the server closes the connection (a client cut off may get half a line).
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
    }

    /// The post number in `250 Message #N posted at …`.
    fn post(&mut self, text: &str) -> u32 {
        let r = self.say(&format!("MSG {text}"));
        let rest = r
            .strip_prefix("250 Message #")
            .unwrap_or_else(|| panic!("{r}"));
        rest.split(' ').next().unwrap().parse().unwrap()
    }
}

#[test]
fn concurrent_posts_are_numbered_without_gaps() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let users = [
        ("yoda", "jedi*knight"),
        ("obiwan", "hellothere"),
        ("luke", "r2d2"),
        ("leia", "alderaan"),
        ("hans", "falcon*solo"),
    ];
    let clients: Vec<Client> = users.iter().map(|(u, p)| server.login(u, p)).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .zip(users)
        .map(|(mut c, (user, _))| {
            thread::spawn(move || {
                (0..20)
                    .map(|i| c.post(&format!("{user} says {i}")))
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    let mut numbers: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=100).collect::<Vec<u32>>());

    let log = read_file(dir.path(), "messagelog.txt");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 100);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{}; ", i + 1)), "{line}");
    }
    for (user, _) in users {
        for i in 0..20 {
            let text = format!("; {user}; {user} says {i}; no");
            assert_eq!(lines.iter().filter(|l| l.ends_with(&text)).count(), 1);
        }
    }
    server.stop();
}

#[test]
fn a_message_with_punctuation_and_unicode_is_byte_identical_after_a_restart() {
    let dir = demo_dir();
    let text = "semi; colon;; \"double\" 'single' #7 — ünïcødé 日本語 🚀 ;";
    let server = TestServer::start(dir.path(), config());
    let mut yoda = server.login("yoda", "jedi*knight");
    assert_eq!(yoda.post(text), 1);
    server.stop();

    let log = read_file(dir.path(), "messagelog.txt");
    assert!(
        log.starts_with("1; ") && log.ends_with(&format!("; yoda; {text}; no\n")),
        "{log}"
    );

    let server = TestServer::start(dir.path(), config());
    let mut luke = server.login("luke", "r2d2");
    let r = luke.say("RDM 01 Jan 2000 00:00:00");
    let last = r.lines().last().unwrap();
    assert!(
        last.starts_with("250 #1@1 yoda, ") && last.ends_with(&format!(": {text}")),
        "{r}"
    );
    // luke never logged out, so every post came as catch-up too.
    assert!(
        luke.events
            .iter()
            .any(|e| e.ends_with(&format!(" yoda no {text}"))),
        "{:?}",
        luke.events
    );
    server.stop();
}

#[test]
fn a_blocked_user_name_is_refused_from_another_connection_until_the_block_ends() {
    let dir = demo_dir();
    let block = Duration::from_millis(300);
    let server = TestServer::start(
        dir.path(),
        ServerConfig {
            block_millis: block.as_millis() as u64,
            ..config()
        },
    );
    let mut first = server.connect();
    first.say("luke");
    assert!(first.say("wrong1").starts_with("432 "));
    assert!(first.say("wrong2").starts_with("432 "));
    let before_block = Instant::now();
    let r = first.say("wrong3");
    let blocked_at = Instant::now();
    assert!(r.starts_with('4') && r.contains("blocked"), "{r}");
    first.expect_closed();

    let mut second = server.connect();
    let r = second.say("luke");
    // The block began no earlier than `before_block`, so it surely still holds if this answer
    // came within the block time; on a machine slow enough to miss that, there is nothing to see.
    if before_block.elapsed() < block {
        assert!(r.starts_with('4') && r.contains("blocked"), "{r}");
        second.expect_closed();
    }

    // The block began no later than `blocked_at`; after it the right password works.
    thread::sleep(block.saturating_sub(blocked_at.elapsed()));
    server.login("luke", "r2d2");
    server.stop();
}

#[test]
fn a_second_login_of_the_same_name_is_refused() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let _yoda = server.login("yoda", "jedi*knight");
    let mut again = server.connect();
    again.say("yoda");
    let r = again.say("jedi*knight");
    assert!(
        r.starts_with("431 ") && r.contains("already logged in"),
        "{r}"
    );
    // The connection is still usable for another name.
    assert!(again.say("luke").starts_with("332 "));
    server.stop();
}

#[test]
fn a_signed_up_account_survives_a_restart() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut rey = server.connect();
    assert!(rey.say("rey").starts_with("333 "));
    assert!(rey.say("scavenger1").starts_with("230-"));
    assert!(rey.say("OUT").starts_with("221 "));
    server.stop();
    assert!(read_file(dir.path(), "credentials.txt").contains("\nrey "));

    let server = TestServer::start(dir.path(), config());
    server.login("rey", "scavenger1");
    server.stop();
}

#[test]
fn userlog_is_empty_after_everyone_logs_out_and_after_a_restart() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut yoda = server.login("yoda", "jedi*knight");
    let mut luke = server.login("luke", "r2d2");
    let userlog = read_file(dir.path(), "userlog.txt");
    assert_eq!(userlog.lines().count(), 2, "{userlog}");
    assert!(
        userlog.starts_with("1; ") && userlog.contains("; yoda; 127.0.0.1; "),
        "{userlog}"
    );
    assert!(yoda.say("OUT").starts_with("221 "));
    assert!(read_file(dir.path(), "userlog.txt").starts_with("1; "));
    assert!(luke.say("OUT").starts_with("221 "));
    assert_eq!(read_file(dir.path(), "userlog.txt"), "");

    // Someone still online when the server stops is not online after the restart.
    let _leia = server.login("leia", "alderaan");
    server.stop();
    let server = TestServer::start(dir.path(), config());
    assert_eq!(read_file(dir.path(), "userlog.txt"), "");
    server.stop();
}

#[test]
fn a_client_that_disconnects_abruptly_is_logged_out() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut luke = server.login("luke", "r2d2");
    let yoda = server.login("yoda", "jedi*knight");
    yoda.writer.shutdown(Shutdown::Both).unwrap();
    drop(yoda);
    server.wait_log("yoda disconnected from");
    assert!(!read_file(dir.path(), "userlog.txt").contains("yoda"));
    let r = luke.say("ATU");
    assert!(!r.contains("yoda"), "{r}");
    // And yoda can log in again.
    server.login("yoda", "jedi*knight");
    server.stop();
}

#[test]
fn a_client_that_never_reads_does_not_stall_the_others() {
    // 20 MB of posts against a 4 MiB limit: far more than leia's socket buffers and limit hold,
    // while luke, who reads, keeps a wide margin even on a loaded machine.
    const POSTS: usize = 5000;
    let dir = demo_dir();
    let server = TestServer::start(
        dir.path(),
        ServerConfig {
            max_unsent_bytes: 4 * 1024 * 1024,
            ..unthrottled()
        },
    );
    // leia logs in and then never reads again.
    let mut leia = server.login("leia", "alderaan");
    let mut luke = server.login("luke", "r2d2");
    let yoda = server.login("yoda", "jedi*knight");
    // luke reads as the posts arrive.
    let luke_reads = thread::spawn(move || {
        let mut posts = 0;
        while posts < POSTS {
            let line = luke.line().expect("luke was disconnected");
            posts += usize::from(line.starts_with("* POST "));
        }
        luke
    });

    // yoda sends every post without waiting (more than any socket buffers hold for leia) and
    // reads the replies on another thread.
    let text = "x".repeat(4000);
    let mut writer = yoda.writer.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let line = format!("MSG {text}\n");
        for _ in 0..POSTS {
            writer.write_all(line.as_bytes()).unwrap();
        }
    });
    let mut yoda = yoda;
    let replies: Vec<String> = (0..POSTS).map(|_| yoda.reply()).collect();
    sender.join().unwrap();
    assert!(replies.iter().all(|r| r.starts_with("250 Message #")));
    assert!(replies[POSTS - 1].starts_with(&format!("250 Message #{POSTS} ")));

    // luke, who reads, saw every post; leia was cut off.
    let mut luke = luke_reads.join().unwrap();
    let line = server.wait_log("it fell too far behind");
    assert!(line.contains("leia (127.0.0.1"), "{line}");
    let r = luke.say("ATU");
    assert!(!r.contains("leia"), "{r}");
    leia.expect_closed();
    server.stop();
}

#[test]
fn shutdown_says_goodbye_to_connected_clients() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut yoda = server.login("yoda", "jedi*knight");
    server.stop();
    let r = yoda.reply();
    assert!(r.starts_with("421 "), "{r}");
    yoda.expect_closed();
}

#[test]
fn a_client_that_accepts_no_bytes_is_cut_off_after_the_write_timeout() {
    const POSTS: usize = 5000;
    let dir = demo_dir();
    // A queue limit no burst reaches: only the write timeout can cut leia off. The timeout
    // is short, but not so short that yoda, who reads all along, is cut too when a busy
    // machine leaves the server's writer or this test's reader unscheduled for a moment
    // (200 ms did so about once in five runs at a load average of 10, 1 s once with two
    // test suites sharing the 2 cores).
    let server = TestServer::start(
        dir.path(),
        ServerConfig {
            max_unsent_bytes: 1024 * 1024 * 1024,
            write_timeout_millis: 3000,
            ..unthrottled()
        },
    );
    let mut leia = server.login("leia", "alderaan");
    let yoda = server.login("yoda", "jedi*knight");
    // More than the socket buffers between the server and leia can hold.
    let text = "x".repeat(4000);
    let mut writer = yoda.writer.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let line = format!("MSG {text}\n");
        for _ in 0..POSTS {
            writer.write_all(line.as_bytes()).unwrap();
        }
    });
    let mut yoda = yoda;
    for _ in 0..POSTS {
        assert!(yoda.reply().starts_with("250 Message #"));
    }
    sender.join().unwrap();
    let line = server.wait_log("accepted no bytes for 3 s");
    assert!(line.contains("leia (127.0.0.1"), "{line}");
    let r = yoda.say("ATU");
    assert!(!r.contains("leia"), "{r}");
    leia.expect_closed();
    server.stop();
}

/// A client socket from `ip` (127.0.0.2 is loopback too on Linux, but not exempt from the
/// per-address limits as 127.0.0.1 is).
fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{ip}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(HANG)).unwrap();
    stream
}

fn first_line(stream: &TcpStream) -> String {
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

#[test]
fn connections_from_one_address_that_do_not_log_in_are_capped_and_told_so() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    // Eight sockets from 127.0.0.2 that never log in.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let s = connect_from("127.0.0.2", server.addr);
            assert!(first_line(&s).starts_with("331 "));
            s
        })
        .collect();
    // The ninth is told at once, and closed.
    let ninth = connect_from("127.0.0.2", server.addr);
    let line = first_line(&ninth);
    assert!(
        line.starts_with("421 Too many connections from 127.0.0.2 that have not logged in"),
        "{line}"
    );
    server.wait_log("127.0.0.2 have not logged in");
    // 127.0.0.1 is exempt: everyone else still gets in.
    let mut luke = server.login("luke", "r2d2");
    assert!(luke.say("MSG still served").starts_with("250 "));
    drop(held);
    server.stop();
}

#[test]
fn sign_ups_from_one_address_are_capped_per_minute() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let say = |s: &TcpStream, line: &str| -> String {
        let mut w = s.try_clone().unwrap();
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut out = String::new();
        loop {
            let mut l = String::new();
            assert!(r.read_line(&mut l).unwrap() > 0, "closed");
            let last = l.as_bytes().get(3) == Some(&b' ');
            out.push_str(&l);
            if last {
                return out;
            }
        }
    };
    for i in 0..5 {
        let s = connect_from("127.0.0.2", server.addr);
        first_line(&s);
        assert!(say(&s, &format!("new{i}")).starts_with("333 "));
        assert!(say(&s, &format!("password{i}")).starts_with("230-"));
    }
    let s = connect_from("127.0.0.2", server.addr);
    first_line(&s);
    let r = say(&s, "new5");
    assert!(
        r.starts_with(
            "431 Too many new accounts from your address (a burst of 5, then one every 12 seconds)"
        ),
        "{r}"
    );
    // Existing accounts still log in from there.
    assert!(say(&s, "luke").starts_with("332 "));
    assert!(say(&s, "r2d2").starts_with("230-"));
    server.stop();
}

#[test]
fn a_flood_of_posts_is_slowed_and_others_are_answered_meanwhile() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut flood = server.login("hans", "falcon*solo");
    let mut luke = server.login("luke", "r2d2");
    // 2,000 posts at once: 200 go through, the rest at 50 a second (36 s in all).
    let line = "MSG flood\n".repeat(2000);
    flood.writer.write_all(line.as_bytes()).unwrap();
    // luke's post is answered long before the flood's last one.
    let r = luke.say("MSG mine");
    assert!(r.starts_with("250 Message #"), "{r}");
    let mine: u32 = r["250 Message #".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        mine < 1000,
        "luke's post is #{mine}: it did not wait for the flood"
    );
    let first = flood.reply();
    assert!(first.starts_with("250 Message #"), "{first}");
    server.stop();
}

#[test]
fn three_hundred_letters_of_six_kib_survive_a_cut_mid_delivery() {
    let dir = demo_dir();
    let server = TestServer::start(
        dir.path(),
        ServerConfig {
            write_timeout_millis: 300,
            ..unthrottled()
        },
    );
    let mut yoda = server.login("yoda", "jedi*knight");
    let body = "z".repeat(6 * 1024);
    for i in 0..300 {
        let r = yoda.say(&format!("PVT luke letter {i:03} {body}"));
        assert!(r.starts_with("250 luke is offline"), "{r}");
    }
    let seen = |lines: &[String]| -> std::collections::BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l.starts_with("* PVT "))
            .filter_map(|l| l.split(" letter ").nth(1).map(|r| r[..3].to_string()))
            .collect()
    };
    // luke logs in with a small receive buffer, reads about fifty letters, then stops
    // reading: the server cuts him off after its write timeout, in the middle of the delivery.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut luke = Client {
        reader: BufReader::new(stream.try_clone().unwrap()),
        writer: stream,
        events: Vec::new(),
    };
    assert!(luke.reply().starts_with("331 "));
    assert!(luke.say("luke").starts_with("332 "));
    assert!(luke.say("r2d2").starts_with("230-"));
    let mut first = std::mem::take(&mut luke.events);
    while first.len() < 50 {
        first.push(luke.line().expect("a letter"));
    }
    server.wait_log("luke (127.0.0.1");
    // What had reached luke's machine is still his to read.
    let mut rest = Vec::new();
    let _ = luke.reader.read_to_end(&mut rest);
    first.extend(String::from_utf8_lossy(&rest).lines().map(str::to_owned));
    drop(luke);
    // At the next login every letter not surely delivered comes again: none is lost.
    let mut luke = server.login("luke", "r2d2");
    let r = luke.say("MSG back");
    assert!(r.starts_with("250 "), "{r}");
    let (a, b) = (seen(&first), seen(&luke.events));
    let all: std::collections::BTreeSet<String> = a.union(&b).cloned().collect();
    assert!(
        a.len() >= 50 && !b.is_empty(),
        "{} then {}",
        a.len(),
        b.len()
    );
    assert_eq!(all.len(), 300, "every letter arrived");
    server.stop();
}

#[test]
fn a_client_that_pipelines_twenty_thousand_commands_and_reads_gets_every_reply() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut luke = server.login("luke", "r2d2");
    let mut writer = luke.writer.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer
            .write_all("HELP\n".repeat(20_000).as_bytes())
            .unwrap();
    });
    for i in 0..20_000 {
        let r = luke.reply();
        assert!(r.starts_with("214-"), "reply {i}: {r}");
    }
    sender.join().unwrap();
    assert!(luke.say("MSG done").starts_with("250 "));
    server.stop();
}

/// One password for `name` on a fresh connection from `ip`; the reply.
fn password_from(ip: &str, addr: SocketAddr, name: &str, password: &str) -> String {
    let s = connect_from(ip, addr);
    let mut c = Client {
        reader: BufReader::new(s.try_clone().unwrap()),
        writer: s,
        events: Vec::new(),
    };
    assert!(c.reply().starts_with("331 "));
    assert!(c.say(name).starts_with("332 "), "{name}");
    c.say(password)
}

#[test]
fn failed_logins_from_one_address_are_slowed_across_names_and_loopback_is_exempt() {
    let dir = demo_dir();
    let server = TestServer::start(
        dir.path(),
        ServerConfig {
            guess_free_failures: 4,
            guess_delay_millis: 300,
            ..config()
        },
    );
    // From 127.0.0.1 (exempt), wrong passwords are only ever counted per name.
    for name in ["hans", "leia", "hans", "leia"] {
        let r = password_from("127.0.0.1", server.addr, name, "wrong");
        assert!(r.starts_with("432 ") && !r.contains("your address"), "{r}");
    }
    // From 127.0.0.2, four failures across names are free; the fifth says the next waits.
    for name in ["yoda", "obiwan", "yoda", "obiwan"] {
        let r = password_from("127.0.0.2", server.addr, name, "wrong");
        assert!(r.starts_with("432 ") && !r.contains("your address"), "{r}");
    }
    let r = password_from("127.0.0.2", server.addr, "luke", "wrong");
    assert!(
        r.contains(
            "Too many failed logins from your address: your next password will be checked in 1 s"
        ),
        "{r}"
    );
    server.wait_log("too many failed logins from 127.0.0.2");
    // The next one is answered (after its wait), and the right password still works.
    let r = password_from("127.0.0.2", server.addr, "luke", "r2d2");
    assert!(r.starts_with("230-"), "{r}");
    server.stop();
}

#[test]
fn a_plaintext_password_is_replaced_by_its_hash_at_the_first_login() {
    let dir = demo_dir();
    let server = TestServer::start(dir.path(), config());
    let mut luke = server.login("luke", "r2d2");
    server.wait_log("luke's password was stored in clear in credentials.txt");
    let creds = read_file(dir.path(), "credentials.txt");
    let lines: Vec<&str> = creds.lines().collect();
    assert_eq!(lines.len(), 5, "{creds}");
    assert!(lines[2].starts_with("luke $argon2id$"), "{creds}");
    assert_eq!(
        creds.replace(lines[2], "luke r2d2"),
        DEMO_USERS,
        "every other byte kept"
    );
    luke.say("OUT");
    server.stop();
    // After a restart the hash is what luke logs in with.
    let server = TestServer::start(dir.path(), config());
    let mut luke = server.login("luke", "r2d2");
    luke.say("OUT");
    let mut c = server.connect();
    c.say("luke");
    assert!(c.say("r2d3").starts_with("432 "));
    server.stop();
}
