//! Graceful shutdown with the real binaries (issue 10, item 6): SIGTERM or SIGINT while
//! clients are connected makes the server say it is shutting down, tell every client (`421`),
//! make everything durable and exit 0; each client prints why on a line of its own and exits
//! with code 7 (the server closed the connection); every acknowledged post is on disk; the
//! server starts again cleanly from that folder.

mod common;

use common::*;

fn stop_while_clients_are_connected(runtime: &'static str, signal: i32, name: &str) {
    let dir = data_dir();
    let mut server = ServerProc::start(runtime, dir.path(), &[]);
    // One client of each runtime, both idle at their prompt when the server stops.
    let mut yoda = LiveClient::login_on(&server, "std", "yoda", "jedi*knight");
    let mut luke = LiveClient::login_on(&server, "smol", "luke", "r2d2");
    let posted = yoda.command("MSG last words before the stop", "posted at");
    luke.out.wait_for("last words before the stop");
    let pvt = luke.command("PVT leia see you after the restart", "offline");

    server.signal(signal);
    for (who, client) in [("yoda", &mut yoda), ("luke", &mut luke)] {
        assert_eq!(
            client.wait_exit(),
            7,
            "{runtime}/{name}: {who} exits with the documented code:\n{}",
            client.out.text()
        );
        let why = client.out.wait_for("Disconnected by the server:");
        assert!(why.contains("shutting down"), "{who}: {why}");
        assert!(
            !client.out.text().contains("Connection to the server lost"),
            "{who}: a shutdown is not an unexpected loss:\n{}",
            client.out.text()
        );
    }
    assert_eq!(
        server.wait_exit(),
        0,
        "{runtime}/{name}:\n{}",
        server.log.text()
    );
    let log = server.log.text();
    assert!(log.contains(&format!("{name}: shutting down")), "{log}");
    assert!(log.contains("server shutting down"), "{log}");
    assert!(log.contains("huddle server stopped"), "{log}");

    // Everything acknowledged is on disk, and nobody is left online.
    assert!(posted.contains("Message #1 posted"), "{posted}");
    assert!(
        server
            .file("messagelog.txt")
            .contains("; yoda; last words before the stop; no"),
        "{}",
        server.file("messagelog.txt")
    );
    assert!(pvt.contains("leia is offline"), "{pvt}");
    assert!(
        server
            .file("inbox.txt")
            .contains("see you after the restart")
    );
    assert_eq!(server.file("userlog.txt"), "");
    let logins = server.file("logins.txt");
    assert!(
        logins.lines().all(|l| !l.ends_with("; -")),
        "every logout is recorded: {logins}"
    );

    // A clean restart from the same folder.
    let again = ServerProc::start(runtime, dir.path(), &[]);
    let (code, out) = run_script(
        &again,
        &["leia", "alderaan", "RDM 01 Jan 2000 00:00:00", "OUT"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("see you after the restart"), "{out}");
    assert!(out.contains("last words before the stop"), "{out}");
}

#[test]
fn sigterm_tells_every_client_and_exits_0_on_both_runtimes() {
    for runtime in RUNTIMES {
        stop_while_clients_are_connected(runtime, libc::SIGTERM, "SIGTERM");
    }
}

#[test]
fn sigint_does_the_same() {
    stop_while_clients_are_connected("smol", libc::SIGINT, "SIGINT");
}

#[test]
fn a_server_whose_output_pipe_closed_still_stops_on_sigterm() {
    // Found by hand: `huddle server | head -1`, then SIGTERM: the signal thread panicked
    // printing "shutting down" into the closed pipe, and the server ran on until kill -9.
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for runtime in RUNTIMES {
        let dir = data_dir();
        let mut child = server_command(runtime, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "{runtime}: no start line"
            );
        }
        drop(out); // the reader goes away, as `head -1` does
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{runtime}: the server did not stop on SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        assert!(!err.contains("panicked"), "{runtime}: {err}");
        assert_eq!(status.code(), Some(0), "{runtime}: {err}");
    }
}
