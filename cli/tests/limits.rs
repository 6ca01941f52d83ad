//! Issue 9 with the real binaries, on every runtime: the limits of the text protocol as a
//! hostile or careless user meets them, and the other clients keep being served.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::*;

/// The longest text the server accepts: 8000 bytes, in two-byte characters.
fn longest_text(tag: &str) -> String {
    let mut t = "é".repeat(3990);
    t.push_str(tag);
    t.push_str(&"!".repeat(8000 - t.len()));
    assert_eq!(t.len(), 8000);
    t
}

#[test]
fn the_longest_post_and_private_message_reach_a_huddle_client_live_at_login_and_by_rdm() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let post = longest_text("post");
        let letter = longest_text("letter");
        // Stored while luke is away: delivered at his login.
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                &format!("MSG {post}"),
                &format!("PVT luke {letter}"),
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(out.contains("Message #1 posted"), "{rt}: {out}");
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        luke.out.wait_for(&post);
        luke.out.wait_for(&letter);
        // Live.
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let live = longest_text("live");
        yoda.command(&format!("MSG {live}"), "Message #2 posted");
        yoda.command(
            &format!("PVT luke {letter}"),
            "Private message sent to luke",
        );
        luke.out.wait_for(&live);
        // By RDM.
        let from = luke.out.len();
        luke.send("RDM 01 Jan 2000 00:00:00");
        luke.out.wait_for_after(from, "2 messages since");
        luke.out.wait_for_after(from, &live);
        // luke is still connected and served.
        luke.command("MSG still here", "Message #3 posted");
        luke.send("OUT");
        assert_eq!(luke.wait_exit(), 0, "{rt}: {}", luke.out.text());
        yoda.send("OUT");
        assert_eq!(yoda.wait_exit(), 0);
    }
}

/// A raw connection, logged in as `user`.
fn raw_login(server: &ServerProc, user: &str, password: &str) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    writeln!(writer, "{user}\n{password}").unwrap();
    let mut line = String::new();
    while !line.starts_with("230 ") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed at login");
    }
    (reader, writer)
}

#[test]
fn a_huge_line_without_a_newline_is_answered_at_once_then_closed_with_a_reason() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let (mut reader, mut writer) = raw_login(&server, "yoda", "jedi*knight");
        // 64 KiB with no newline: the 503 arrives while the line is still unfinished.
        writer.write_all(b"MSG ").unwrap();
        writer.write_all(&vec![b'x'; 64 * 1024]).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("503 Line too long"), "{rt}: {line}");
        // Keep going to 16 MiB: the server closes the connection after 1 MiB and says why.
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..256 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            rest.contains("421 More than 1048576 bytes without a newline"),
            "{rt}: {rest}"
        );
        server.log.wait_for("without a newline; connection closed");
        // luke was never disturbed.
        luke.command("MSG still here", "Message #1 posted");
    }
}

/// Raise this test process's open-file limit (it holds a thousand client sockets).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit through a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Read one whole reply (its `NNN ` line), skipping events.
fn reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed: {out}");
        if line.starts_with("* ") {
            continue;
        }
        let last = line.as_bytes().get(3) == Some(&b' ');
        out.push_str(&line);
        if last {
            return out;
        }
    }
}

#[test]
fn a_thousand_sign_ups_that_stay_online_leave_the_server_within_64_mib_of_its_start() {
    raise_nofile();
    for &rt in RUNTIMES {
        let dir = data_dir();
        // A nineteenth of the default Argon2 memory keeps the test short; the working memory is
        // still far above malloc's mmap threshold, which is what made each sign-up leave its
        // hash's memory behind before.
        let server = ServerProc::start(rt, dir.path(), &["--hash-memory-kib", "1024"]);
        // One sign-up first, so that lazily set up things (the hash workers' memory among
        // them) are part of the start.
        let (code, out) = run_script(&server, &["first", "pw first", "OUT"]);
        assert_eq!(code, 0, "{out}");
        let start = server.rss_kib();
        assert!(start > 0, "cannot read the server's memory");
        let addr = server.addr;
        let workers: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..125)
                        .map(|i| {
                            let s = TcpStream::connect(addr).unwrap();
                            s.set_read_timeout(Some(PATIENCE)).unwrap();
                            let mut r = BufReader::new(s.try_clone().unwrap());
                            let mut w = s;
                            assert!(reply(&mut r).starts_with("331 "));
                            writeln!(w, "user{t}x{i}").unwrap();
                            assert!(reply(&mut r).starts_with("333 "));
                            writeln!(w, "password {t} {i}").unwrap();
                            let welcome = reply(&mut r);
                            assert!(welcome.starts_with("230-"), "{welcome}");
                            (r, w)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let online: Vec<_> = workers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(online.len(), 1000);
        let end = server.rss_kib();
        let growth = end.saturating_sub(start);
        println!("{rt}: RSS {start} KiB before 1,000 sign-ups, {end} KiB after (+{growth} KiB)");
        assert!(
            growth < 64 * 1024,
            "{rt}: 1,000 sign-ups grew the server by {growth} KiB"
        );
        assert_eq!(
            server.file("credentials.txt").matches("$argon2id$").count(),
            1001
        );
        drop(online);
    }
}

#[test]
fn eight_pipelined_rdms_of_a_big_board_do_not_grow_the_server_and_all_arrive() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let mut log = String::new();
        for i in 1..=50_000 {
            log.push_str(&format!(
                "{i}; 01 Nov 2026 10:00:00; yoda; post number {i} {}; no\n",
                "x".repeat(80)
            ));
        }
        std::fs::write(dir.path().join("messagelog.txt"), log).unwrap();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (mut reader, mut writer) = raw_login(&server, "luke", "r2d2");
        // Catch-up (the last 100 posts) first.
        writeln!(writer, "MSG ready").unwrap();
        let r = reply(&mut reader);
        assert!(r.starts_with("250 Message #50001"), "{r}");
        // yoda logs in before the measurement: a first login rehashes a plaintext password
        // (Argon2's working memory), which is not what this test measures.
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        yoda.command("MSG settled", "Message #50002 posted");
        // The rehash runs on a hash worker after the login: wait until both are stored.
        let rehashed = |name: &str| {
            server
                .file("credentials.txt")
                .lines()
                .any(|l| l.starts_with(&format!("{name} $argon2id$")))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !(rehashed("luke") && rehashed("yoda")) {
            assert!(std::time::Instant::now() < deadline, "{rt}: never rehashed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let start = server.rss_kib();
        // Eight listings of 50,000 posts each (about 45 MB in all), and luke reads nothing.
        writer
            .write_all("RDM 01 Jan 2000 00:00:00\n".repeat(8).as_bytes())
            .unwrap();
        // Others are served meanwhile.
        yoda.command("MSG meanwhile", "Message #50003 posted");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let held = server.rss_kib().saturating_sub(start);
        assert!(
            held < 16 * 1024,
            "{rt}: the server grew by {held} KiB while luke did not read"
        );
        // luke reads: all eight listings arrive, whole.
        for i in 0..8 {
            let r = reply(&mut reader);
            let lines = r.lines().count();
            assert!(lines >= 50_001, "{rt}: listing {i} had {lines} lines");
        }
        writeln!(writer, "OUT").unwrap();
        assert!(reply(&mut reader).starts_with("221 "));
        let end = server.rss_kib().saturating_sub(start);
        println!("{rt}: RSS +{held} KiB while luke did not read, +{end} KiB at the end");
    }
}

#[test]
fn the_server_raises_its_open_file_limit_and_says_how_many_it_takes() {
    let dir = data_dir();
    let server = ServerProc::start("smol", dir.path(), &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        nums[0], nums[1],
        "soft limit raised to the hard one: {line}"
    );
    let startup = server.log.wait_for("listening on");
    assert!(startup.contains(" connections)"), "{startup}");
}

/// Start the server with an open-file limit of `n` (soft and hard), as on a small host.
fn start_with_nofile(
    rt: &'static str,
    dir: &std::path::Path,
    n: u64,
    extra: &[&str],
) -> ServerProc {
    use std::os::unix::process::CommandExt;
    ServerProc::start_with(rt, dir, extra, |cmd| {
        // SAFETY: setrlimit is async-signal-safe; the closure only calls it.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
    })
}

/// The first line the server sends on a new connection, and the connection, still open.
fn greeted(server: &ServerProc) -> (String, TcpStream) {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = String::new();
    let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
    (line, s)
}

/// The first line the server sends on a new connection.
fn greeting(server: &ServerProc) -> String {
    greeted(server).0
}

#[test]
fn a_connection_the_server_cannot_take_is_told_so_not_left_hanging() {
    for &rt in RUNTIMES {
        // 100 descriptors: the server takes 36 connections (it keeps 64 for itself) and
        // says so to the 37th.
        let dir = data_dir();
        let server = start_with_nofile(rt, dir.path(), 100, &[]);
        let startup = server.log.wait_for("listening on");
        assert!(startup.contains("up to 36 connections"), "{startup}");
        let held: Vec<TcpStream> = (0..36)
            .map(|_| {
                let s = TcpStream::connect(server.addr).unwrap();
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut line = String::new();
                BufReader::new(s.try_clone().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert!(line.starts_with("331 "), "{rt}: {line}");
                s
            })
            .collect();
        let line = greeting(&server);
        assert!(
            line.starts_with("421 The server is full (36 connections)"),
            "{rt}: {line}"
        );
        drop(held);
        // Out of descriptors altogether (a limit set higher than there are): still a line.
        let dir = data_dir();
        let server = start_with_nofile(rt, dir.path(), 100, &["--max-connections", "1000"]);
        // Each connection is held only once it read its greeting, so the server has accepted
        // it: when the descriptors run out, the one connection waiting is the one that reads.
        // (Holding connections the server had not accepted yet let the turn-away line go to a
        // held one nobody read, while the reading one took the descriptor that freed.)
        let mut held = Vec::new();
        let mut told = None;
        let mut seen = Vec::new();
        for _ in 0..200 {
            let (line, stream) = greeted(&server);
            if line.starts_with("421 ") {
                told = Some(line);
                break;
            }
            assert!(line.starts_with("331 "), "{rt}: a connection got {line:?}");
            seen.push(line);
            held.push(stream);
        }
        let line = told.unwrap_or_else(|| {
            panic!(
                "{rt}: the server never said it is out of descriptors; it said {:?} …; log:\n{}",
                &seen[seen.len().saturating_sub(5)..],
                server.log.text()
            )
        });
        assert!(
            line.contains("cannot take more connections now (out of file descriptors)"),
            "{rt}: {line}"
        );
    }
}
