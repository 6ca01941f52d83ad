//! The real `huddle` binary: started as a user would, spoken to over TCP on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

const HUDDLE: &str = env!("CARGO_BIN_EXE_huddle");

/// Kills the server even when the test fails halfway.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read one reply (up to its `NNN ` line) from the server.
fn reply(reader: &mut impl BufRead) -> String {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        let line = line.trim_end_matches('\n').to_string();
        if line.starts_with("* ") {
            continue;
        }
        let last = line.as_bytes().get(3) == Some(&b' ');
        lines.push(line);
        if last {
            return lines.join("\n");
        }
    }
}

#[test]
fn the_server_prints_where_it_listens_and_lets_a_user_log_in() {
    for runtime in ["std", "smol"] {
        prints_where_it_listens_and_lets_a_user_log_in(runtime);
    }
}

fn prints_where_it_listens_and_lets_a_user_log_in(runtime: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credentials.txt"), "yoda jedi*knight\n").unwrap();
    let child = Command::new(HUDDLE)
        .args(["server", "0", "3", "--dir"])
        .arg(dir.path())
        .args(["--bind", "127.0.0.1", "--runtime", runtime])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.split("huddle server listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert_ne!(addr.port(), 0);

    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    assert!(reply(&mut reader).starts_with("331 "));
    writer.write_all(b"yoda\n").unwrap();
    assert!(reply(&mut reader).starts_with("332 "));
    writer.write_all(b"jedi*knight\n").unwrap();
    let welcome = reply(&mut reader);
    assert!(
        welcome.starts_with("230-Welcome to huddle, yoda!"),
        "{welcome}"
    );
    writer.write_all(b"MSG hello from the binary\n").unwrap();
    assert!(reply(&mut reader).starts_with("250 Message #1 posted at "));
    let log = std::fs::read_to_string(dir.path().join("messagelog.txt")).unwrap();
    assert!(
        log.ends_with("; yoda; hello from the binary; no\n"),
        "{log}"
    );
}

#[test]
fn attempts_outside_one_to_five_is_refused_naming_the_range() {
    let out = Command::new(HUDDLE)
        .args(["server", "0", "9", "--bind", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from 1 to 5"), "{stderr}");
}

#[test]
fn a_setting_the_server_cannot_work_with_is_refused_before_anything_is_created() {
    for runtime in ["std", "smol"] {
        for (flags, says) in [
            (
                &["--post-rate", "0"][..],
                "the post rate (a second) must be at least 1, not 0",
            ),
            (
                &[
                    "--output-low-water",
                    "300000",
                    "--output-high-water",
                    "200000",
                ][..],
                "low-water mark (300000 bytes) must not be above the high-water mark",
            ),
            (
                &["--hash-workers", "0"][..],
                "hashing threads must be at least 1",
            ),
            (
                &["--max-input-buffer", "100"][..],
                "must hold at least one whole line",
            ),
            (
                &["--login-timeout-secs", "0"][..],
                "the login timeout must be at least 1",
            ),
            (
                &["--signups-per-minute", "0"][..],
                "sign-ups an address may make a minute must be at least 1",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let out = common::server_command(runtime, dir.path())
                .args(flags)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{runtime} {flags:?}: {stderr}");
            assert!(
                stderr.contains("invalid setting"),
                "{runtime} {flags:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{runtime} {flags:?}: {stderr}");
            let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(made.is_empty(), "{runtime} {flags:?}: it created {made:?}");
        }
        // A negative time is refused by the command line itself.
        let out = Command::new(HUDDLE)
            .args([
                "server",
                "0",
                "--runtime",
                runtime,
                "--login-timeout-secs=-5",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is not a number of seconds"), "{stderr}");
    }
}

#[test]
fn a_client_whose_download_folder_is_a_file_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    for runtime in ["std", "smol"] {
        let out = Command::new(HUDDLE)
            .args(["client", "--runtime", runtime, "--dir"])
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{runtime}: {stderr}");
        assert!(stderr.contains("is not a folder"), "{runtime}: {stderr}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");
    }
}
