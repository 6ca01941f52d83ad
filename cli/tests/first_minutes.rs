//! The first five minutes with huddle, with the real binaries on every runtime: what a new
//! user runs into — a server that is not running, a blank post, a mistyped user name.

mod common;

use common::*;

/// A port on 127.0.0.1 where nothing listens (bound, then freed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn no_server_is_said_once_with_how_to_start_one() {
    for &rt in RUNTIMES {
        let port = closed_port().to_string();
        let downloads = tempfile::tempdir().unwrap();
        let out = huddle()
            .args(["client", "127.0.0.1", &port, "0", "--runtime", rt, "--dir"])
            .arg(downloads.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{rt}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            format!(
                "huddle: cannot connect to the server at 127.0.0.1:{port}: connection refused — is the server running? start it with `huddle server`"
            ),
            "{rt}"
        );
        assert!(!err.contains("os error"), "{err}");
    }
}

#[test]
fn a_taken_port_is_said_once_with_what_to_do() {
    for &rt in RUNTIMES {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port().to_string();
        let dir = data_dir();
        let out = huddle()
            .args([
                "server",
                &port,
                "--bind",
                "127.0.0.1",
                "--runtime",
                rt,
                "--dir",
            ])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{rt}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already in use"), "{rt}: {err}");
        assert_eq!(err.matches("in use").count(), 1, "said once: {err}");
        assert!(!err.contains("os error"), "{err}");
    }
}

#[test]
fn blank_posts_and_private_messages_are_refused_with_the_usage() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "MSG    ",
                "PVT luke   ",
                "MSG kept",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert_eq!(
            out.matches("the message is blank (only spaces)").count(),
            2,
            "{rt}: {out}"
        );
        assert!(out.contains("Usage: MSG message"), "{out}");
        assert!(out.contains("Usage: PVT user message"), "{out}");
        assert!(out.contains("Message #1 posted at "), "{out}");
        let log = server.file("messagelog.txt");
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.ends_with("; yoda; kept; no\n"), "{log}");
        assert_eq!(
            server.file("inbox.txt").trim(),
            "",
            "nothing stored for luke"
        );
    }
}

#[test]
fn an_empty_new_password_cancels_a_sign_up_and_the_name_is_asked_again() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["yodaa", "", "yoda", "jedi*knight", "OUT"]);
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(out.contains("Sign-up of yodaa cancelled"), "{out}");
        assert!(out.contains("Welcome to huddle, yoda!"), "{out}");
        assert!(!server.file("credentials.txt").contains("yodaa"));
        server.log.wait_for("sign-up of yodaa cancelled");
    }
}

#[test]
fn rdm_reads_relative_times_today_and_since_the_last_logout() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["yoda", "jedi*knight", "OUT"]);
        assert_eq!(code, 0, "{rt}: {out}");
        let (code, out) = run_script(
            &server,
            &[
                "luke",
                "r2d2",
                "MSG one",
                "MSG two",
                "RDM 10m",
                "RDM today",
                "RDM 2h",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert_eq!(out.matches("2 messages since ").count(), 3, "{rt}: {out}");
        assert!(out.contains("#2 luke, "), "{out}");
        // yoda's catch-up and RDM alone: since yoda's last logout.
        let (code, out) = run_script(&server, &["yoda", "jedi*knight", "RDM", "RDM 0m", "OUT"]);
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(out.contains("While you were away: 2 posts."), "{out}");
        assert!(out.contains("2 messages since "), "{out}");
        assert!(out.contains("Usage: RDM"), "{out}");
    }
}
