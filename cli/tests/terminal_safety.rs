//! Terminal safety with the real binaries, both runtimes: a hostile server (a fake one here,
//! standing for whoever sits on the clear-text path) cannot drive the user's terminal through
//! the client; the real server refuses such text in posts, private messages and names.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, RUNTIMES, ServerProc, data_dir, huddle, run_script};
use huddle_core::UserName;
use huddle_core::proto::event::Event;
use huddle_core::time::CivilTime;

/// What the fake server slips into its replies and events: clear screen, window title, a
/// clipboard write (OSC 52), a one-byte CSI, a carriage return and a right-to-left override.
const HOSTILE: &str =
    "\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{9b}31m\rgnp\u{202e}.exe";

/// Speak just enough of the protocol to log `yoda` in, then answer every command with hostile
/// text in an event and in the reply.
fn fake_server(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let _ = w.write_all(format!("331 Welcome {HOSTILE}\n").as_bytes());
    let mut asked_password = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        let answer = if line.starts_with("UDP ") {
            "200 UDP port noted\n".to_string()
        } else if !asked_password && line == "yoda" {
            asked_password = true;
            "332 Password for yoda:\n".to_string()
        } else if line == "jedi" {
            format!("230-Welcome to huddle, yoda!\n230 {HOSTILE}\n")
        } else if line == "OUT" {
            let _ = w.write_all(b"221 Goodbye, yoda!\n");
            return;
        } else {
            let at = CivilTime {
                day: 21,
                month: 11,
                year: 2026,
                hour: 10,
                minute: 0,
                second: 0,
            };
            let event = Event::Private {
                at,
                from: UserName::new("vader").unwrap(),
                text: HOSTILE.to_string(),
            };
            format!("{}250 {HOSTILE}\n", event.render())
        };
        let _ = w.write_all(answer.as_bytes());
    }
}

#[test]
fn nothing_a_server_sends_reaches_the_terminal_as_a_command() {
    for &runtime in RUNTIMES {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                fake_server(s);
            }
        });
        let mut child = huddle()
            .args([
                "client",
                "127.0.0.1",
                &port.to_string(),
                "0",
                "--runtime",
                runtime,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"yoda\njedi\nATU\nOUT\n")
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{runtime}: the client hangs");
            thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let _ = server.join();
        let text = String::from_utf8(out.stdout).unwrap();
        for c in text.chars() {
            assert!(
                c == '\n'
                    || c == '\t'
                    || !(c.is_control()
                        || ('\u{2066}'..='\u{2069}').contains(&c)
                        || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{runtime}: {c:?} reached the terminal: {text:?}"
            );
        }
        assert!(
            text.contains("\\u{1b}]52;c;cm0gLXJmIH4="),
            "{runtime}: {text}"
        );
        assert!(text.contains("gnp\\u{202e}.exe"), "{runtime}: {text}");
        assert!(
            text.contains("vader"),
            "{runtime}: the event was shown: {text}"
        );
        assert_eq!(out.status.code(), Some(0), "{runtime}: {text}");
    }
}

#[test]
fn the_server_refuses_control_bidi_and_invisible_characters_but_keeps_tabs() {
    for &runtime in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(runtime, dir.path(), &[]);
        // The piped client sends what it reads; these lines hold the hostile characters. A
        // refused name ends a piped login (exit 3): its next line would be a password.
        let (code, out) = run_script(&server, &["yo\u{200b}da", "jedi*knight", "OUT"]);
        assert_eq!(code, 3, "{runtime}: {out}");
        assert!(out.contains("not a valid user name"), "{runtime}: {out}");
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "MSG invoice\u{202e}fdp.exe",
                "MSG pay\u{200b}pal",
                "PVT luke \u{2066}hidden\u{2069}",
                "MSG tab\tstays",
                "EDT 1 01 Jan 2000 00:00:00 \u{feff}x",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{runtime}: {out}");
        assert!(
            out.contains("bidirectional control character (U+202E)"),
            "{runtime}: {out}"
        );
        assert!(
            out.contains("invisible character (U+200B)"),
            "{runtime}: {out}"
        );
        assert!(
            out.contains("bidirectional control character (U+2066)"),
            "{runtime}: {out}"
        );
        assert!(
            out.contains("invisible character (U+FEFF)"),
            "{runtime}: {out}"
        );
        assert!(out.contains("Message #1 posted"), "{runtime}: {out}");
        let log = server.file("messagelog.txt");
        assert!(
            log.ends_with("; yoda; tab\tstays; no\n"),
            "{runtime}: {log:?}"
        );
        assert_eq!(log.lines().count(), 1, "{runtime}: {log:?}");
        assert_eq!(server.file("inbox.txt"), "", "{runtime}");
    }
}
