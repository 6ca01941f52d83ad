//! End-to-end: the real `huddle server` and `huddle client` binaries over loopback TCP, for
//! every runtime in `common::RUNTIMES`.

mod common;

use common::*;

#[test]
fn a_piped_client_logs_in_posts_and_exits_zero_after_out() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(
            &server,
            &["yoda", "jedi*knight", "MSG do; or do not", "OUT"],
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(out.contains("Welcome to huddle, yoda!"), "{out}");
        assert!(out.contains("Message #1 posted at "), "{out}");
        assert!(out.contains("Goodbye, yoda!"), "{out}");
        let log = server.file("messagelog.txt");
        assert!(
            log.starts_with("1; ") && log.ends_with("; yoda; do; or do not; no\n"),
            "{log}"
        );
        server.log.wait_for("yoda logged in from 127.0.0.1");
        server.log.wait_for("yoda posted message #1");
        assert_eq!(server.file("userlog.txt"), "");
    }
}

#[test]
fn prompts_in_piped_mode_end_their_lines_and_carry_no_colour() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["yoda", "jedi*knight", "OUT"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.lines().any(|l| l == "Username:"), "{out}");
        assert!(out.lines().any(|l| l == "Password:"), "{out}");
        assert!(out.lines().any(|l| l == "yoda>"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "colour codes in piped output: {out:?}"
        );
    }
}

#[test]
fn a_wrong_password_is_asked_again_and_a_failed_login_exits_non_zero() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["luke", "nope", "r2d2", "OUT"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("Invalid password"), "{out}");
        let (code, out) = run_script(&server, &["luke", "nope"]);
        assert_ne!(code, 0, "{out}");
    }
}

#[test]
fn the_lockout_refuses_even_the_right_password_and_ends_after_the_block_time() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["leia", "a", "b", "c", "alderaan"]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("Your account has been blocked"), "{out}");
        let (code, out) = run_script(&server, &["leia", "alderaan", "OUT"]);
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains("Your account is blocked due to multiple login failures"),
            "{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (code, out) = run_script(&server, &["leia", "alderaan", "OUT"]);
        assert_eq!(code, 0, "{out}");
        server.log.wait_for("leia blocked for");
    }
}

#[test]
fn a_name_already_logged_in_cannot_log_in_again() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let _yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let (code, out) = run_script(&server, &["yoda", "jedi*knight"]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("yoda is already logged in"), "{out}");
    }
}

#[test]
fn posts_and_private_messages_are_pushed_live_to_online_users() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        luke.out.wait_for("yoda is now online");
        yoda.command("MSG patience you must have", "Message #1 posted at");
        // Piped: the full timestamp on the line, in the RDM listing's layout.
        let line = luke.out.wait_for("#1 yoda, ");
        assert!(line.ends_with(": patience you must have"), "{line}");
        assert_eq!(
            line.len(),
            "#1 yoda, 01 Dec 2026 07:46:05: patience you must have".len(),
            "{line}"
        );
        yoda.command("PVT luke i am your master", "Private message sent to luke");
        luke.out.wait_for("Private message from yoda, ");
        luke.command("OUT", "Goodbye, luke!");
        assert_eq!(luke.wait_exit(), 0);
        yoda.out.wait_for("luke went offline");
    }
}

#[test]
fn private_messages_to_an_offline_user_arrive_at_their_next_login_then_the_posts_they_missed() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["luke", "r2d2", "OUT"]);
        assert_eq!(code, 0, "{out}");
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "PVT luke stored one",
                "MSG public news",
                "PVT luke stored two",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("luke is offline"), "{out}");
        let (code, out) = run_script(&server, &["luke", "r2d2", "OUT"]);
        assert_eq!(code, 0, "{out}");
        let one = out.find("stored one").expect(&out);
        let two = out.find("stored two").expect(&out);
        let news = out.find("public news").expect(&out);
        assert!(one < two && two < news, "{out}");
        let (_, again) = run_script(&server, &["luke", "r2d2", "OUT"]);
        assert!(!again.contains("stored one"), "delivered twice: {again}");
    }
}

#[test]
fn edit_and_delete_need_the_current_timestamp() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let posted = yoda.command("MSG first", "Message #1 posted at");
        yoda.command("MSG second", "Message #2 posted at");
        let ts = timestamp_in(&posted);
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let edited = yoda.command(
            &format!("EDT #1 {ts} first, edited"),
            "Message #1 edited at",
        );
        yoda.command(
            &format!("DLT 1 {ts}"),
            "The timestamp does not match message #1",
        );
        let new_ts = timestamp_in(&edited);
        yoda.command(&format!("DLT 1 {new_ts}"), "Message #1 deleted");
        let log = server.file("messagelog.txt");
        assert!(
            log.starts_with("1; ")
                && log.contains("; yoda; second; no\n")
                && log.lines().count() == 1,
            "{log}"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_the_session_goes_on() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let long = format!("MSG {}", "x".repeat(9000));
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "FLY to dagobah",
                " MSG x",
                "PVT  luke hi",
                "MSG",
                "DLT x 21 Nov 2026 22:30:01",
                "RDM yesterday",
                "BLK yoda",
                "PVT nobody hi",
                &long,
                "MSG still here",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("unknown command \"FLY\""), "{out}");
        // The client's own commands are listed with the server's, as HELP shows them.
        assert!(out.contains(", HELP, ACCEPT, DECLINE, CANCEL\n"), "{out}");
        assert!(
            out.contains("extra space at the start of the line: begin with the command;"),
            "{out}"
        );
        assert!(
            out.contains("extra space before the user name (arguments are separated by single spaces). Usage: PVT user message"),
            "{out}"
        );
        assert!(!out.contains("unknown command \"\""), "{out}");
        assert!(out.contains("Usage: MSG message"), "{out}");
        assert!(out.contains("\"x\" is not a message number"), "{out}");
        assert!(out.contains("malformed timestamp"), "{out}");
        assert!(out.contains("You cannot block yourself"), "{out}");
        assert!(out.contains("There is no user named nobody"), "{out}");
        // Refused by the client before it is sent, with the limit.
        assert!(
            out.contains("the message is too long (9000 bytes)"),
            "{out}"
        );
        assert!(out.contains("a message is at most 8000 bytes"), "{out}");
        assert!(out.contains("Message #1 posted at"), "{out}");
    }
}

#[test]
fn sign_up_creates_an_account_that_survives_a_restart() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let mut server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["rey", "jakku sand", "MSG hello from rey", "OUT"]);
        assert_eq!(code, 0, "{out}");
        let creds = server.file("credentials.txt");
        assert!(
            creds.contains("\nrey $argon2id$") && !creds.contains("jakku"),
            "{creds}"
        );
        server.kill();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(&server, &["rey", "jakku sand", "OUT"]);
        assert_eq!(code, 0, "{out}");
        let (code, out) = run_script(&server, &["rey", "wrong", "jakku sand", "OUT"]);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn with_no_signup_an_unknown_name_is_refused() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &["--no-signup"]);
        let (code, out) = run_script(&server, &["rey", "jakku"]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("Unknown user rey"), "{out}");
    }
}

#[test]
fn everything_acknowledged_survives_a_kill_and_restart_byte_for_byte() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let mut server = ServerProc::start(rt, dir.path(), &[]);
        let text = "semi; colons, #hash, \"double\" 'single' — ünïcödé ✓ 日本";
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                &format!("MSG {text}"),
                "BLK hans",
                "PVT luke for later",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{out}");
        server.kill();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (code, out) = run_script(
            &server,
            &["luke", "r2d2", "RDM 01 Jan 2000 00:00:00", "OUT"],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!(": {text}")), "{out}");
        assert!(out.contains("for later"), "{out}");
        let (code, out) = run_script(&server, &["hans", "falcon*solo", "PVT yoda hello?", "OUT"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("yoda has blocked you"), "{out}");
        assert!(
            server
                .file("messagelog.txt")
                .contains(&format!("; yoda; {text}; no\n"))
        );
    }
}

#[test]
fn atu_and_rcu_list_users() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let _luke = LiveClient::login(&server, "luke", "r2d2");
        let (code, out) = run_script(
            &server,
            &["yoda", "jedi*knight", "ATU", "RCU", "RCU 5", "OUT"],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("luke, 127.0.0.1, "), "{out}");
        assert!(out.contains("active since"), "{out}");
        assert!(
            out.contains("Users who logged in within the last 60 minutes:"),
            "{out}"
        );
        assert!(
            out.contains("Users who logged in within the last 5 minutes:"),
            "{out}"
        );
        let userlog = server.file("userlog.txt");
        assert!(
            userlog.starts_with("1; ") && userlog.contains("; luke; 127.0.0.1; "),
            "{userlog}"
        );
    }
}

#[test]
fn many_concurrent_clients_posting_at_once_get_gapless_numbers() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        std::fs::write(
            dir.path().join("credentials.txt"),
            (0..8)
                .map(|i| format!("user{i} pw{i}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let server = ServerProc::start(rt, dir.path(), &[]);
        std::thread::scope(|s| {
            for i in 0..8 {
                let server = &server;
                s.spawn(move || {
                    let name = format!("user{i}");
                    let pw = format!("pw{i}");
                    let mut script = vec![name.clone(), pw];
                    script.extend((0..5).map(|k| format!("MSG {name} says {k}")));
                    script.push("OUT".into());
                    let refs: Vec<&str> = script.iter().map(String::as_str).collect();
                    let (code, out) = run_script(server, &refs);
                    assert_eq!(code, 0, "{out}");
                    assert_eq!(out.matches("posted at").count(), 5, "{out}");
                });
            }
        });
        let log = server.file("messagelog.txt");
        let numbers: Vec<u32> = log
            .lines()
            .map(|l| l.split(';').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers, (1..=40).collect::<Vec<_>>(), "{log}");
    }
}

#[test]
fn a_client_reports_a_lost_connection_and_exits_non_zero() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let mut server = ServerProc::start(rt, dir.path(), &[]);
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        server.kill();
        yoda.out.wait_for("Connection to the server lost");
        assert_ne!(yoda.wait_exit(), 0);
    }
}

#[test]
fn a_client_that_cannot_reach_the_server_says_so() {
    let (code, out) = {
        let out = huddle()
            .args(["client", "127.0.0.1", "1"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(
        out.contains("cannot connect to the server at 127.0.0.1:1"),
        "{out}"
    );
}
