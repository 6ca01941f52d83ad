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
