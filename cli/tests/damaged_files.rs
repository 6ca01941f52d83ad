//! Damaged data files with the real binary, both runtimes: the server refuses to start and
//! says where and how to proceed; `--repair` sets each damaged line aside byte for byte and
//! serves the rest; bytes that are not UTF-8 survive a rewrite exactly.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{PATIENCE, RUNTIMES, ServerProc, data_dir, huddle, run_script};

const CREDS: &[u8] = b"yoda jedi*knight\nluke\tr2d2\nleia alderaan\n";
const LOG: &[u8] = b"1; 21 Nov 2026 10:00:00; leia; caf\xe9 \xff; no\n\
2; 21 Nov 2026 10:00:01; yoda; bye; no\n\
3; 21 Nov 2026 25:00:00; yoda; when?; no\n";

fn damaged_folder() -> tempfile::TempDir {
    let dir = data_dir();
    fs::write(dir.path().join("credentials.txt"), CREDS).unwrap();
    fs::write(dir.path().join("messagelog.txt"), LOG).unwrap();
    dir
}

/// Run `huddle server` on `dir` until it exits by itself; (exit code, stdout, stderr).
fn run_to_exit(runtime: &str, dir: &Path) -> (i32, String, String) {
    let mut child = huddle()
        .args([
            "server",
            "0",
            "3",
            "--bind",
            "127.0.0.1",
            "--runtime",
            runtime,
            "--dir",
        ])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a damaged folder");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_damaged_folder_stops_the_server_naming_file_line_problem_and_the_way_on() {
    for &runtime in RUNTIMES {
        let dir = damaged_folder();
        let (code, out, err) = run_to_exit(runtime, dir.path());
        assert_ne!(code, 0, "{runtime}: {out}{err}");
        assert!(!out.contains("listening on"), "{runtime}: {out}");
        for needle in [
            "2 damaged lines:",
            "credentials.txt line 2: \"luke\\tr2d2\"",
            "expected `username password`",
            "(a tab where the space should be?)",
            "messagelog.txt line 3: ",
            "--repair",
        ] {
            assert!(err.contains(needle), "{runtime}: no {needle:?} in {err}");
        }
        // Nothing was changed, nothing was set aside.
        assert_eq!(fs::read(dir.path().join("credentials.txt")).unwrap(), CREDS);
        assert_eq!(fs::read(dir.path().join("messagelog.txt")).unwrap(), LOG);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".rejected") || n.ends_with(".bak")),
            "{names:?}"
        );
        // Nothing new either: no certificate made for a server that did not start.
        let mut names = names;
        names.sort();
        assert_eq!(names, ["credentials.txt", "messagelog.txt"], "{runtime}");
    }
}

#[test]
fn repair_sets_damaged_lines_aside_byte_for_byte_keeps_the_names_and_serves_the_rest() {
    for &runtime in RUNTIMES {
        let dir = damaged_folder();
        let mut server = ServerProc::start(runtime, dir.path(), &["--repair"]);
        server.log.wait_for("credentials.txt line 2");
        let rejected = fs::read(dir.path().join("credentials.txt.rejected")).unwrap();
        assert!(rejected.starts_with(b"# "), "{runtime}");
        assert!(rejected.ends_with(b"; damaged; expected `username password`: no space after the name (a tab where the space should be?)\nluke\tr2d2\n"), "{runtime}: {}", rejected.escape_ascii());
        let rejected_log = fs::read(dir.path().join("messagelog.txt.rejected")).unwrap();
        assert!(
            rejected_log.ends_with(b"\n3; 21 Nov 2026 25:00:00; yoda; when?; no\n"),
            "{runtime}"
        );
        assert_eq!(
            fs::read(dir.path().join("credentials.txt")).unwrap(),
            b"yoda jedi*knight\nleia alderaan\n"
        );
        // A copy of each original, whole.
        let mut copies: Vec<Vec<u8>> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".bak"))
            .map(|p| fs::read(p).unwrap())
            .collect();
        copies.sort();
        assert_eq!(copies, [LOG.to_vec(), CREDS.to_vec()], "{runtime}");

        // luke's name is reserved: a script that gives it stops there, its password unsent.
        let (code, out) = run_script(&server, &["luke", "r2d2", "OUT"]);
        assert_eq!(code, 3, "{runtime}: {out}");
        assert!(out.contains("luke cannot be used now"), "{runtime}: {out}");
        // The others are served, the odd bytes shown as U+FFFD.
        let (code, out) = run_script(
            &server,
            &["yoda", "jedi*knight", "RDM 01 Jan 2000 00:00:00", "OUT"],
        );
        assert_eq!(code, 0, "{runtime}: {out}");
        assert!(out.contains("caf\u{fffd} \u{fffd}"), "{runtime}: {out}");
        assert!(!out.contains("when?"), "{runtime}: {out}");
        server.kill();

        // It starts again without --repair, and luke is still reserved.
        let server = ServerProc::start(runtime, dir.path(), &[]);
        let (code, out) = run_script(&server, &["luke", "r2d2", "OUT"]);
        assert_eq!(code, 3, "{runtime}: {out}");
        assert!(out.contains("luke cannot be used now"), "{runtime}: {out}");
    }
}

#[test]
fn bytes_that_are_not_utf8_survive_a_rewrite_of_their_file_exactly() {
    for &runtime in RUNTIMES {
        let dir = data_dir();
        let line1: &[u8] = b"1; 21 Nov 2026 10:00:00; leia; caf\xe9 \xff; no\n";
        let mut log = line1.to_vec();
        log.extend_from_slice(b"2; 21 Nov 2026 10:00:01; yoda; bye; no\n");
        fs::write(dir.path().join("messagelog.txt"), &log).unwrap();
        let server = ServerProc::start(runtime, dir.path(), &[]);
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "DLT 2 21 Nov 2026 10:00:01",
                "MSG hello",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{runtime}: {out}");
        assert!(out.contains("Message #2 deleted"), "{runtime}: {out}");
        let now = fs::read(dir.path().join("messagelog.txt")).unwrap();
        assert!(now.starts_with(line1), "{runtime}: {}", now.escape_ascii());
        assert!(now.ends_with(b"; yoda; hello; no\n"), "{runtime}");
    }
}
