//! The interactive client as a person meets it: the real binary on a pseudo-terminal, against
//! a real server on 127.0.0.1, its screen read back through a terminal emulator.
//!
//! Piped mode (DESIGN §5) is what every other integration test drives; this file is the
//! terminal's.

mod common;
mod pty;

use std::path::Path;

use common::{LiveClient, ServerProc, data_dir};
use huddle_core::proto::request::Command;
use pty::*;

/// A client of `runtime` on a `cols`-column terminal, its config folder (history) in `config`.
fn client(
    server: &ServerProc,
    runtime: &str,
    cols: u16,
    config: &Path,
    downloads: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Pty {
    let port = server.addr.port().to_string();
    let downloads = downloads.to_str().unwrap();
    let mut args = vec![
        "client",
        "127.0.0.1",
        &port,
        "0",
        "--runtime",
        runtime,
        "--dir",
        downloads,
    ];
    args.extend_from_slice(extra);
    Pty::spawn(&args, cols, 24, config, env)
}

struct Room {
    _data: tempfile::TempDir,
    server: ServerProc,
    home: tempfile::TempDir,
}

impl Room {
    fn open(runtime: &'static str) -> Self {
        let data = data_dir();
        let server = ServerProc::start(runtime, data.path(), &[]);
        Room {
            _data: data,
            server,
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// luke, logged in at an 80-column terminal, taking every upload into `home`.
    fn accepting_luke(&self, home: &Path) -> Pty {
        let mut luke = client(
            &self.server,
            self.server.runtime,
            80,
            home,
            home,
            &["--accept", "always"],
            &[],
        );
        luke.login("luke", "r2d2");
        luke
    }

    fn client(&self, cols: u16, extra: &[&str], env: &[(&str, &str)]) -> Pty {
        client(
            &self.server,
            self.server.runtime,
            cols,
            self.home.path(),
            self.home.path(),
            extra,
            env,
        )
    }
}

/// Ctrl-C `typed` away at the prompt `prompt`, then Ctrl-C again for the hint.
fn ctrl_c_twice(p: &mut Pty, prompt: &str, typed: &str, hints_before: usize) {
    p.wait_cursor_row(prompt);
    p.type_text(typed);
    if !prompt.contains("assword") {
        p.wait_cursor_row(&format!("{prompt}{typed}"));
    }
    p.keys(CTRL_C);
    p.wait_cursor_row(prompt);
    p.keys(CTRL_C);
    p.wait_count("To quit", hints_before + 1);
    assert!(
        p.is_running(),
        "Ctrl-C at {prompt:?} must not kill the client"
    );
    assert_eq!(p.cursor_row(), prompt, "the prompt stays open");
}

#[test]
fn ctrl_c_clears_the_line_and_a_second_says_how_to_quit_at_every_prompt() {
    for &rt in common::RUNTIMES {
        let room = Room::open(rt);
        let mut p = room.client(80, &[], &[]);
        p.wait_for("Username: ");
        ctrl_c_twice(&mut p, "Username: ", "yod", 0);
        p.line("rey");
        ctrl_c_twice(&mut p, "New password: ", "secret", 1);
        p.line("force*awakens");
        ctrl_c_twice(&mut p, "Confirm password: ", "wrong", 2);
        p.line("force*awakens");
        p.wait_for("Welcome to huddle, rey!");
        ctrl_c_twice(&mut p, "rey> ", "MSG never sent", 3);
        assert!(p.transcript().contains("type OUT or press Ctrl-D"));
        p.line("OUT");
        assert_eq!(p.wait_exit(), 0, "{rt}");
        assert!(!room.server.file("messagelog.txt").contains("never sent"));

        // The password of an existing account, and a wrong one retried.
        let mut p = room.client(80, &[], &[]);
        p.wait_for("Username: ");
        p.line("yoda");
        ctrl_c_twice(&mut p, "Password: ", "jedi", 0);
        p.line("jedi*knight");
        p.wait_for("Welcome to huddle, yoda!");
        // Ctrl-D at the command prompt logs out.
        p.wait_cursor_row("yoda> ");
        p.keys(CTRL_D);
        assert_eq!(p.wait_exit(), 0, "{rt}");
        assert!(
            !p.transcript().contains("jedi"),
            "a password is never shown"
        );
    }
}

#[test]
fn enter_on_an_empty_new_password_goes_back_to_the_user_name() {
    for &rt in common::RUNTIMES {
        let room = Room::open(rt);
        let mut p = room.client(80, &[], &[]);
        p.wait_for("Username: ");
        // A mistyped name leads to sign-up; Enter at the new password is the way back.
        p.line("yodaa");
        p.wait_cursor_row("New password: ");
        let words = p
            .transcript()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains("Enter on an empty line goes back"),
            "{words}"
        );
        p.line("");
        p.wait_for("Sign-up of yodaa cancelled");
        p.wait_cursor_row("Username: ");
        p.line("yoda");
        p.wait_cursor_row("Password: ");
        p.line("jedi*knight");
        p.wait_for("Welcome to huddle, yoda!");
        p.wait_cursor_row("yoda> ");
        p.line("OUT");
        assert_eq!(p.wait_exit(), 0, "{rt}");
        assert!(
            !room.server.file("credentials.txt").contains("yodaa"),
            "{rt}: no account was made"
        );
    }
}

#[test]
fn a_person_catches_up_completes_names_and_edits_and_deletes_by_number_alone() {
    for &rt in common::RUNTIMES {
        let room = Room::open(rt);
        // luke posts while yoda is away.
        let mut luke = LiveClient::login(&room.server, "luke", "r2d2");
        luke.command("MSG while you slept", "Message #1 posted at");
        let mut p = room.client(80, &[], &[]);
        p.login("yoda", "jedi*knight");
        p.wait_for("While you were away: 1 post.");
        p.wait_for("Day changed to ");
        let t = p.transcript();
        let away = t.find("While you were away").unwrap();
        let post = t[away..]
            .lines()
            .find(|l| l.starts_with("#1@1 luke, "))
            .unwrap_or_else(|| panic!("{rt}: no post under the header:\n{t}"));
        // Short time, and the post's id beside its number: `#1@1 luke, HH:MM: text`.
        assert_eq!(
            post.trim_end().len(),
            "#1@1 luke, 07:46: while you slept".len(),
            "{post}"
        );

        // Tab completes the name of a user the client heard of.
        p.type_text("PVT lu");
        p.keys(TAB);
        p.wait_cursor_row("yoda> PVT luke ");
        p.keys(CTRL_U);

        // Edit and delete your own post by its number alone.
        p.line("MSG first try");
        p.wait_for("Message #2 posted at");
        p.wait_cursor_row("yoda> ");
        p.line("EDT 2 second try");
        p.wait_for("Message #2 edited at");
        p.wait_cursor_row("yoda> ");
        assert!(
            room.server
                .file("messagelog.txt")
                .contains("; yoda; second try; yes")
        );
        p.line("DLT 2");
        p.wait_for("Message #2 deleted at");
        p.wait_cursor_row("yoda> ");
        p.line("DLT 9");
        p.wait_for("has not seen message #9");
        assert!(!room.server.file("messagelog.txt").contains("second try"));
        p.line("OUT");
        assert_eq!(p.wait_exit(), 0, "{rt}");
        luke.command("OUT", "Goodbye, luke!");
    }
}

#[test]
fn after_someone_deletes_an_earlier_post_dlt_n_and_edt_n_mean_the_new_numbers() {
    let room = Room::open("std");
    let mut luke = LiveClient::login(&room.server, "luke", "r2d2");
    let mut p = room.client(80, &[], &[]);
    p.login("yoda", "jedi*knight");
    let first = luke.command("MSG first", "Message #1 posted at");
    p.wait_for("#1@1 luke, ");
    for (n, text) in [(2, "a"), (3, "b"), (4, "c")] {
        p.line(&format!("MSG {text}"));
        p.wait_for(&format!("Message #{n} posted at"));
        p.wait_cursor_row("yoda> ");
    }
    // luke deletes his #1: a, b, c are #1, #2, #3 now, and yoda's client says so.
    luke.command(
        &format!("DLT 1 {}", common::timestamp_in(&first)),
        "Message #1 deleted",
    );
    p.wait_for("luke deleted message #1@1; later messages moved up one number");
    p.line("DLT 2");
    p.wait_for("Message #2 deleted at");
    p.wait_cursor_row("yoda> ");
    p.line("EDT 2 see");
    p.wait_for("Message #2 edited at");
    p.wait_cursor_row("yoda> ");
    let log = room.server.file("messagelog.txt");
    assert!(
        log.contains("1; ")
            && log.contains("; yoda; a; no\n")
            && log.contains("; yoda; see; yes\n"),
        "{log}"
    );
    assert!(!log.contains("; b; "), "{log}");
    assert!(
        !p.transcript().contains("is now #"),
        "no post was refused for having moved:\n{}",
        p.transcript()
    );
    p.line("OUT");
    assert_eq!(p.wait_exit(), 0);
    luke.command("OUT", "Goodbye, luke!");
}

#[test]
fn ctrl_d_at_the_password_prompt_ends_the_client_as_a_failed_login() {
    let room = Room::open("std");
    let mut p = room.client(80, &[], &[]);
    p.wait_for("Username: ");
    p.line("yoda");
    p.wait_cursor_row("Password: ");
    p.keys(CTRL_D);
    assert_eq!(p.wait_exit(), 3);
}

#[test]
fn a_progress_line_is_redrawn_in_place_above_a_half_typed_line() {
    let room = Room::open("std");
    let luke_home = tempfile::tempdir().unwrap();
    let luke = room.accepting_luke(luke_home.path());
    let mut yoda = room.client(80, &[], &[]);
    yoda.login("yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    let clip = src.path().join("clip.mp4");
    std::fs::write(&clip, vec![7u8; 2 << 20]).unwrap();

    // luke's client stops answering: the upload cannot progress.
    let luke_pid = luke.pid() as libc::pid_t;
    // SAFETY: signals to a child process this test started.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGSTOP) }, 0);
    yoda.line(&format!("UPD luke {}", clip.display()));
    yoda.wait_for("Uploading clip.mp4 (2.0 MiB) to luke");
    yoda.wait_cursor_row("yoda> ");
    yoda.type_text("MSG half-typed");
    yoda.wait_until("a stalled status line above the typed line", |p| {
        p.row_above_cursor(1).contains("stalled") && p.cursor_row() == "yoda> MSG half-typed"
    });
    let status = yoda.row_above_cursor(1);
    assert!(status.starts_with("clip.mp4 → luke"), "{status}");
    assert!(status.contains("0%"), "{status}");
    assert!(!status.contains("ETA"), "{status}");
    // Only ever one status line: redrawn in place, never appended.
    assert_eq!(yoda.transcript().matches("clip.mp4 → luke").count(), 1);
    assert!(yoda.with_screen(|s| (0..24).all(|r| !s.row_wrapped(r))));

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGCONT) }, 0);
    yoda.wait_for("clip.mp4 has been uploaded to luke");
    luke.wait_for("Received clip.mp4 from yoda, saved as yoda_clip.mp4");
    // One final line each side, no status line left behind.
    yoda.wait_cursor_row("yoda> MSG half-typed");
    for side in [&yoda, &luke] {
        let all = side.transcript();
        assert!(!all.contains('%'), "a status line was left behind:\n{all}");
        assert!(!all.contains("stalled"), "{all}");
    }
    assert_eq!(yoda.transcript().matches("has been uploaded").count(), 1);
    assert_eq!(luke.transcript().matches("Received clip.mp4").count(), 1);
    // The typed line was never lost: it is sent as it stands.
    yoda.keys(ENTER);
    yoda.wait_for("Message #1 posted");
    assert!(room.server.file("messagelog.txt").contains("half-typed"));
    let got = std::fs::read(luke_home.path().join("yoda_clip.mp4")).unwrap();
    assert_eq!(got.len(), 2 << 20);
}

#[test]
fn a_queued_upload_starts_in_the_background_without_touching_the_half_typed_line() {
    let room = Room::open("std");
    let luke_home = tempfile::tempdir().unwrap();
    let luke = room.accepting_luke(luke_home.path());
    let mut yoda = room.client(80, &["--max-uploads", "1"], &[]);
    yoda.login("yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    for name in ["a.mp4", "b.mp4"] {
        std::fs::write(src.path().join(name), vec![7u8; 1 << 20]).unwrap();
    }

    // luke's client stops answering: a.mp4 cannot end, b.mp4 waits its turn.
    let luke_pid = luke.pid() as libc::pid_t;
    // SAFETY: signals to a child process this test started.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGSTOP) }, 0);
    yoda.line(&format!("UPD luke {}", src.path().join("a.mp4").display()));
    yoda.wait_for("Uploading a.mp4 (1.0 MiB) to luke");
    yoda.wait_cursor_row("yoda> ");
    yoda.line(&format!("UPD luke {}", src.path().join("b.mp4").display()));
    yoda.wait_for("b.mp4 to luke waits its turn");
    yoda.wait_cursor_row("yoda> ");
    yoda.type_text("MSG half-typed");
    yoda.wait_cursor_row("yoda> MSG half-typed");

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGCONT) }, 0);
    yoda.wait_for("a.mp4 has been uploaded to luke");
    yoda.wait_for("b.mp4 has been uploaded to luke");
    luke.wait_for("saved as yoda_b.mp4");
    // b.mp4 started on its own; what was being typed is still there, and still works.
    yoda.wait_cursor_row("yoda> MSG half-typed");
    assert_eq!(yoda.transcript().matches("Uploading b.mp4").count(), 1);
    yoda.keys(ENTER);
    yoda.wait_for("Message #1 posted");
    yoda.wait_cursor_row("yoda> ");
    assert!(room.server.file("messagelog.txt").contains("half-typed"));
}

#[test]
fn tab_completes_a_command_name() {
    let room = Room::open("std");
    let mut p = room.client(80, &[], &[]);
    p.login("yoda", "jedi*knight");
    p.type_text("ms");
    p.keys(TAB);
    p.wait_cursor_row("yoda> msg ");
    p.line("hello from tab");
    p.wait_for("Message #1 posted");
    // Ambiguous: the candidates are listed, the line stays.
    p.type_text("U");
    p.keys(TAB);
    p.wait_for("UNB  UPD");
    p.wait_cursor_row("yoda> U");
}

#[test]
fn file_names_complete_after_upd_user() {
    let room = Room::open("std");
    let mut p = room.client(100, &[], &[]);
    p.login("yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("holiday.mp4"), b"x").unwrap();
    let dir = format!("{}/", src.path().display());
    p.type_text(&format!("UPD luke {dir}ho"));
    p.keys(TAB);
    p.wait_cursor_row(&format!("yoda> UPD luke {dir}holiday.mp4"));
}

#[test]
fn every_output_wraps_at_word_boundaries_at_60_columns() {
    let room = Room::open("std");
    let mut p = room.client(60, &[], &[]);
    p.login("yoda", "jedi*knight");
    p.line("HELP");
    p.wait_count("show this list", 2);
    p.line("EDT 1 1 Nov 2026 something");
    p.wait_for("Usage: EDT");
    p.wait_cursor_row("yoda> ");
    let (rows, text) = p.with_transcript(|s| {
        let rows: Vec<String> = (0..2000).map(|r| s.contents_between(r, 0, r, 60)).collect();
        let wrapped = (0..2000).any(|r| s.row_wrapped(r));
        assert!(!wrapped, "the terminal had to wrap a row itself");
        (rows, s.contents())
    });
    assert!(rows.iter().all(|r| r.chars().count() <= 60));
    // Every word of every help line arrived whole: none is split across rows.
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    for c in Command::ALL {
        let summary = c.summary().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            joined.contains(&summary),
            "{c}: {summary:?} not whole in\n{text}"
        );
    }
    // After a resize, what comes next fits the new width.
    p.resize(40, 24);
    p.wait_cursor_row("yoda> ");
    p.line("HELP");
    p.wait_count("Commands (case-insensitive;", 3);
    p.wait_cursor_row("yoda> ");
    assert!(p.with_screen(|s| (0..24).all(|r| !s.row_wrapped(r))));
}

#[test]
fn keys_typed_right_after_a_resize_are_read_at_once() {
    // The resize (SIGWINCH) and the keys arrive together: both must be read, every time,
    // without waiting for another key to come.
    let room = Room::open("std");
    let mut p = room.client(80, &[], &[]);
    p.login("yoda", "jedi*knight");
    for i in 1..=30 {
        p.resize(if i % 2 == 0 { 80 } else { 64 }, 24);
        p.line(&format!("MSG after resize {i}"));
        p.wait_count(&format!("Message #{i} posted"), 1);
        p.wait_cursor_row("yoda> ");
    }
    assert!(p.is_running());
}

#[test]
fn history_is_written_to_the_config_folder_and_read_back_on_the_next_run() {
    let room = Room::open("std");
    let mut p = room.client(80, &[], &[]);
    p.login("yoda", "jedi*knight");
    p.line("MSG remember me");
    p.wait_for("Message #1 posted");
    p.wait_cursor_row("yoda> ");
    p.line("ATU");
    p.wait_cursor_row("yoda> ");
    p.line("OUT");
    assert_eq!(p.wait_exit(), 0);
    let file = room.home.path().join("huddle").join("history");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert_eq!(saved, "MSG remember me\nATU\nOUT\n");

    let mut p = room.client(80, &[], &[]);
    p.login("yoda", "jedi*knight");
    p.keys(UP);
    p.wait_cursor_row("yoda> OUT");
    p.keys(UP);
    p.wait_cursor_row("yoda> ATU");
    p.keys(UP);
    p.wait_cursor_row("yoda> MSG remember me");
    p.keys(ENTER);
    p.wait_for("Message #2 posted");
    p.wait_cursor_row("yoda> ");
    p.keys(CTRL_D);
    assert_eq!(p.wait_exit(), 0);

    // --history puts it elsewhere; --no-history keeps none.
    let other = room.home.path().join("elsewhere");
    let mut p = room.client(80, &["--history", other.to_str().unwrap()], &[]);
    p.login("yoda", "jedi*knight");
    p.line("ATU");
    p.wait_cursor_row("yoda> ");
    p.keys(CTRL_D);
    assert_eq!(p.wait_exit(), 0);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "ATU\n");
    let mut p = room.client(80, &["--no-history"], &[]);
    p.login("yoda", "jedi*knight");
    p.keys(UP);
    p.line("RCU");
    p.wait_cursor_row("yoda> ");
    p.keys(CTRL_D);
    assert_eq!(p.wait_exit(), 0);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "MSG remember me\nATU\nOUT\nMSG remember me\n",
        "--no-history wrote nothing"
    );
}

/// Where `needle` is on the visible screen: (row, column).
fn find_on_screen(p: &Pty, needle: &str) -> (u16, u16) {
    p.with_screen(|s| {
        let (rows, cols) = s.size();
        for r in 0..rows {
            let row = s.contents_between(r, 0, r, cols);
            if let Some(i) = row.find(needle) {
                return (r, row[..i].chars().count() as u16);
            }
        }
        panic!("{needle:?} not on screen:\n{}", s.contents());
    })
}

#[test]
fn a_mention_of_the_own_name_is_highlighted_with_a_bell() {
    let room = Room::open("std");
    let mut yoda = room.client(80, &[], &[]);
    yoda.login("yoda", "jedi*knight");
    let bells_before = yoda.raw().iter().filter(|&&b| b == 7).count();
    let mut luke = LiveClient::login(&room.server, "luke", "r2d2");
    luke.command("MSG are you there, Yoda?", "posted");
    yoda.wait_for("are you there, Yoda?");
    let (row, col) = find_on_screen(&yoda, "Yoda?");
    yoda.with_screen(|s| {
        let mention = s.cell(row, col).unwrap();
        assert!(mention.bold());
        assert_ne!(mention.bgcolor(), vt100::Color::Default);
        assert!(!s.cell(row, col - 2).unwrap().bold(), "only the name");
    });
    let bells = yoda.raw().iter().filter(|&&b| b == 7).count();
    assert_eq!(bells, bells_before + 1);
}

#[test]
fn no_color_and_no_bell_are_honoured() {
    let room = Room::open("std");
    let mut yoda = room.client(80, &["--no-bell"], &[("NO_COLOR", "1")]);
    yoda.login("yoda", "jedi*knight");
    yoda.line("BOGUS");
    yoda.wait_for("unknown command");
    let mut luke = LiveClient::login(&room.server, "luke", "r2d2");
    luke.command("MSG yoda: colourless", "posted");
    yoda.wait_for("yoda: colourless");
    yoda.wait_cursor_row("yoda> ");
    yoda.with_transcript(|s| {
        let (rows, cols) = s.size();
        for r in 0..rows {
            for c in 0..cols {
                let cell = s.cell(r, c).unwrap();
                assert_eq!(cell.fgcolor(), vt100::Color::Default, "{r},{c}");
                assert_eq!(cell.bgcolor(), vt100::Color::Default, "{r},{c}");
            }
        }
    });
    // The mention is still bold (NO_COLOR is about colour), and nothing rang.
    let (row, col) = find_on_screen(&yoda, "yoda: colourless");
    assert!(yoda.with_screen(|s| s.cell(row, col).unwrap().bold()));
    assert!(!yoda.raw().contains(&7));
}

#[test]
fn ctrl_c_while_waiting_for_a_transfer_explains_then_quits_on_a_second() {
    let room = Room::open("std");
    let luke_home = tempfile::tempdir().unwrap();
    let mut luke = client(
        &room.server,
        "std",
        80,
        luke_home.path(),
        luke_home.path(),
        &[],
        &[],
    );
    luke.login("luke", "r2d2");
    let mut yoda = room.client(80, &[], &[]);
    yoda.login("yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    let clip = src.path().join("clip.mp4");
    std::fs::write(&clip, vec![7u8; 1 << 20]).unwrap();
    let luke_pid = luke.pid() as libc::pid_t;
    // SAFETY: a signal to a child process this test started.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGSTOP) }, 0);
    yoda.line(&format!("UPD luke {}", clip.display()));
    yoda.wait_for("Uploading clip.mp4");
    yoda.wait_cursor_row("yoda> ");
    // OUT waits for the upload, which cannot progress: no prompt is open.
    yoda.line("OUT");
    yoda.wait_for("Logging out once the running transfers finish");
    yoda.keys(CTRL_C);
    yoda.wait_for("Press Ctrl-C again to cancel the running transfers");
    assert!(yoda.is_running());
    yoda.keys(CTRL_C);
    assert_eq!(yoda.wait_exit(), 130);
    yoda.wait_for("Interrupted.");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(luke_pid, libc::SIGCONT) }, 0);
}

#[test]
fn fifty_commands_in_a_row_amid_pushed_posts_all_land_and_the_prompt_survives() {
    let room = Room::open("std");
    let mut yoda = room.client(80, &[], &[]);
    yoda.login("yoda", "jedi*knight");
    let mut luke = LiveClient::login(&room.server, "luke", "r2d2");
    for i in 1..=50 {
        yoda.line(&format!("MSG number {i}"));
        yoda.wait_count(&format!("Message #{} posted", 2 * i - 1), 1);
        yoda.wait_cursor_row("yoda> ");
        // A post from luke arrives while yoda is half-way through typing.
        yoda.type_text("PVT luke ha");
        yoda.wait_cursor_row("yoda> PVT luke ha");
        luke.command(&format!("MSG reply {i}"), "posted");
        yoda.wait_count(&format!("reply {i}"), 1);
        yoda.wait_cursor_row("yoda> PVT luke ha");
        yoda.keys(CTRL_U);
        yoda.wait_cursor_row("yoda> ");
    }
    let log = room.server.file("messagelog.txt");
    assert_eq!(log.lines().count(), 100, "{log}");
    let history = std::fs::read_to_string(room.home.path().join("huddle/history")).unwrap();
    assert_eq!(history.lines().count(), 50);
    assert!(yoda.is_running());
}

#[test]
fn an_incoming_upload_asks_at_the_terminal_y_takes_it_and_n_declines_it() {
    let room = Room::open("std");
    let luke_home = tempfile::tempdir().unwrap();
    let mut luke = client(
        &room.server,
        "std",
        80,
        luke_home.path(),
        luke_home.path(),
        &[],
        &[],
    );
    luke.login("luke", "r2d2");
    let mut yoda = LiveClient::login(&room.server, "yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    let clip = src.path().join("clip.mp4");
    std::fs::write(&clip, vec![3u8; 1 << 20]).unwrap();

    yoda.send(&format!("UPD luke {}", clip.display()));
    luke.wait_for("Accept clip.mp4 (1.0 MiB) from yoda? Answer y or n");
    yoda.out.wait_for("Waiting for luke to accept clip.mp4");
    // The question is above the prompt; a half-typed line is not disturbed by it.
    luke.wait_cursor_row("luke> ");
    luke.line("y");
    luke.wait_for("Received clip.mp4 from yoda, saved as yoda_clip.mp4");
    yoda.out.wait_for("clip.mp4 has been uploaded to luke");

    let from = yoda.out.len();
    yoda.send(&format!("UPD luke {}", clip.display()));
    luke.wait_count("Accept clip.mp4 (1.0 MiB) from yoda?", 2);
    luke.wait_cursor_row("luke> ");
    luke.line("n");
    luke.wait_for("Declined clip.mp4 from yoda; yoda was told");
    yoda.out
        .wait_for_after(from, "luke declined clip.mp4; nothing was sent");
    assert!(!luke_home.path().join("yoda_clip (1).mp4").exists());
}

/// A piped luke and a terminal yoda uploading to him at `rate` a file of `len` bytes.
fn uploading(room: &Room, len: usize, rate: &str) -> (LiveClient, Pty, tempfile::TempDir) {
    let luke = LiveClient::login(&room.server, "luke", "r2d2");
    let mut yoda = room.client(100, &["--max-rate", rate], &[]);
    yoda.login("yoda", "jedi*knight");
    let src = tempfile::tempdir().unwrap();
    let clip = src.path().join("clip.mp4");
    std::fs::write(&clip, vec![9u8; len]).unwrap();
    yoda.line(&format!("UPD luke {}", clip.display()));
    yoda.wait_for("Uploading clip.mp4");
    luke.out.wait_for("Incoming upload: yoda sends clip.mp4");
    yoda.wait_until("the status line", |p| {
        p.row_above_cursor(1).contains("clip.mp4 → luke")
    });
    (luke, yoda, src)
}

#[test]
fn ctrl_c_on_an_empty_line_while_uploading_offers_cancel_and_enter_cancels() {
    let room = Room::open("std");
    let (luke, mut yoda, _src) = uploading(&room, 8 << 20, "1M");
    yoda.wait_cursor_row("yoda> ");
    yoda.keys(CTRL_C);
    yoda.wait_cursor_row("yoda> CANCEL");
    yoda.wait_for("Transfers are running: Enter cancels");
    yoda.keys(ENTER);
    yoda.wait_for("Cancelled the upload of clip.mp4 to luke; luke was told");
    luke.out.wait_for("yoda cancelled clip.mp4 (or left); the ");
    assert!(yoda.is_running(), "cancelling is not quitting");
    // A second Ctrl-C clears the offered command instead.
    yoda.wait_cursor_row("yoda> ");
}

#[test]
fn a_cancel_offered_for_an_upload_that_then_finishes_is_taken_back() {
    let room = Room::open("std");
    let (luke, mut yoda, _src) = uploading(&room, 2 << 20, "1M");
    yoda.wait_cursor_row("yoda> ");
    yoda.keys(CTRL_C);
    yoda.wait_cursor_row("yoda> CANCEL");
    // Not taken: the upload finishes, and the offer goes with it.
    yoda.wait_for("clip.mp4 has been uploaded to luke");
    luke.out.wait_for("Received clip.mp4 from yoda, saved as");
    yoda.wait_cursor_row("yoda> ");
    // So OUT is OUT, not CANCELOUT.
    yoda.line("OUT");
    assert_eq!(yoda.wait_exit(), 0);
}

#[test]
fn quitting_with_ctrl_c_while_uploading_tells_the_audience_at_once() {
    let room = Room::open("std");
    let (luke, mut yoda, _src) = uploading(&room, 8 << 20, "1M");
    yoda.wait_cursor_row("yoda> ");
    // OUT waits for the upload: no prompt is open.
    yoda.line("OUT");
    yoda.wait_for("Logging out once the running transfers finish");
    yoda.keys(CTRL_C);
    yoda.wait_for("Press Ctrl-C again to cancel the running transfers");
    yoda.keys(CTRL_C);
    assert_eq!(yoda.wait_exit(), 130);
    yoda.wait_for("Interrupted.");
    luke.out.wait_for("yoda cancelled clip.mp4 (or left)");
    // Told by the cancel, not by the idle timeout (which would say the peer went silent).
    assert!(
        !luke.out.text().contains("went silent"),
        "told at once, not after the idle timeout"
    );
}

#[test]
fn a_server_shutdown_is_told_on_a_line_of_its_own_and_the_exit_code_says_so() {
    for runtime in common::RUNTIMES {
        let mut room = Room::open(runtime);
        let mut p = room.client(80, &[], &[]);
        p.login("yoda", "jedi*knight");
        p.wait_cursor_row("yoda> ");
        p.type_text("half a thought");
        p.wait_cursor_row("yoda> half a thought");
        room.server.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit(), 7, "{runtime}:\n{}", p.transcript());
        // The pty's last bytes may still be on their way to the reader when the process ends.
        p.wait_count("Disconnected by the server:", 1);
        let screen = p.transcript();
        let why = screen
            .lines()
            .find(|l| l.contains("Disconnected by the server:"))
            .unwrap_or_else(|| panic!("{runtime}: no reason line:\n{screen}"));
        assert_eq!(
            why.trim_end(),
            "Disconnected by the server: The server is shutting down. Goodbye.",
            "{runtime}: the reason stands alone on its line:\n{screen}"
        );
        // The terminal is given back with the cursor at the start of a fresh line, so the
        // shell's prompt does not land on the client's.
        p.with_screen(|s| {
            let (_, col) = s.cursor_position();
            assert_eq!(col, 0, "{runtime}:\n{screen}");
        });
        assert_eq!(room.server.wait_exit(), 0);
    }
}
