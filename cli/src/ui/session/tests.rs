//! The terminal's behaviour, screen by screen: a [`Session`] writing into memory, read back
//! through a terminal emulator (vt100), on virtual time.

use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use huddle_core::client::{Display, Outcome, Phase, Progress, Prompt, Tone};

use super::*;

const WIDE: Size = Size {
    cols: 100,
    rows: 20,
};

struct Harness {
    s: Session<Vec<u8>>,
    size: Size,
    now: Instant,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(size: Size) -> Self {
        Self::with(size, |_| {})
    }

    fn with(size: Size, change: impl FnOnce(&mut TermConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TermConfig {
            colour: true,
            history: HistoryConfig {
                path: Some(dir.path().join("history")),
                ..HistoryConfig::default()
            },
            ..TermConfig::default()
        };
        change(&mut config);
        Self {
            s: Session::new(config, Vec::new()),
            size,
            now: Instant::now(),
            _dir: dir,
        }
    }

    fn parser(&self) -> vt100::Parser {
        let mut p = vt100::Parser::new(self.size.rows, self.size.cols, 1000);
        p.process(self.s.screen().output());
        p
    }

    /// The rows from the top of the screen down to the cursor's (the input row, when a prompt
    /// is open).
    fn rows(&self) -> Vec<String> {
        let p = self.parser();
        let cols = self.size.cols;
        (0..=p.screen().cursor_position().0)
            .map(|r| p.screen().contents_between(r, 0, r, cols))
            .collect()
    }

    fn last_row(&self) -> String {
        self.rows().pop().unwrap()
    }

    fn text(&self) -> String {
        self.parser().screen().contents()
    }

    fn bells(&self) -> usize {
        self.s.screen().output().iter().filter(|&&b| b == 7).count()
    }

    fn show(&mut self, tone: Tone, text: &str, pushed: bool) {
        let d = Display {
            tone,
            text: text.into(),
            pushed,
        };
        self.s.handle_display(&d, self.size, self.now);
    }

    fn prompt(&mut self, p: Prompt) {
        self.s.open_prompt(&p, self.size, self.now);
    }

    fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) -> KeyOutcome {
        self.s.handle_event(
            Event::Key(KeyEvent::new(code, modifiers)),
            self.size,
            self.now,
        )
    }

    fn typed(&mut self, text: &str) {
        for c in text.chars() {
            assert_eq!(
                self.key(KeyCode::Char(c), KeyModifiers::NONE),
                KeyOutcome::Pending
            );
        }
    }

    fn ctrl(&mut self, c: char) -> KeyOutcome {
        self.key(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn enter(&mut self) -> KeyOutcome {
        self.key(KeyCode::Enter, KeyModifiers::NONE)
    }

    fn tab(&mut self) -> KeyOutcome {
        self.key(KeyCode::Tab, KeyModifiers::NONE)
    }

    /// A report as the core sends one: moving at 1 MiB/s (with its ETA) once some bytes are
    /// done, or finished.
    fn progress(&mut self, id: u64, done: u64, total: u64, finished: bool) {
        let mut p = crate::ui::status::tests::report(id, done, total);
        if done > 0 && done < total {
            p.rate = Some(1 << 20);
            p.eta_ms = Some((total - done) * 1000 / (1 << 20));
        }
        if finished {
            p.phase = Phase::Ended(Outcome::Complete);
        }
        self.s.handle_progress(&p, self.size, self.now);
    }

    /// The core's report of a stall of `ms` at `done` of `total`.
    fn stalled(&mut self, id: u64, done: u64, total: u64, ms: u64) {
        let p = Progress {
            stalled_for_ms: Some(ms),
            ..crate::ui::status::tests::report(id, done, total)
        };
        self.s.handle_progress(&p, self.size, self.now);
    }
}

fn yoda() -> Prompt {
    Prompt::Command("yoda".into())
}

#[test]
fn a_pushed_post_prints_above_a_half_typed_line_and_leaves_it_intact() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.typed("MSG half a tho");
    h.key(KeyCode::Left, KeyModifiers::NONE);
    h.show(
        Tone::Post,
        "#1 luke (01 Dec 2026 07:46:05): hello all",
        true,
    );
    h.show(Tone::Notice, "leia is now online", true);
    let rows = h.rows();
    let n = rows.len();
    assert_eq!(rows[n - 1], "yoda> MSG half a tho");
    assert_eq!(rows[n - 2], "leia is now online");
    assert_eq!(rows[n - 3], "#1 luke (01 Dec 2026 07:46:05): hello all");
    // The cursor is where it was: one left of the end of the typed text.
    assert_eq!(h.parser().screen().cursor_position(), (n as u16 - 1, 19));
    h.typed("ugh");
    assert_eq!(h.enter(), KeyOutcome::Line("MSG half a thugho".into()));
}

#[test]
fn an_entered_line_stays_in_the_scrollback_with_its_prompt() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.typed("ATU");
    assert_eq!(h.enter(), KeyOutcome::Line("ATU".into()));
    h.show(Tone::Info, "luke, 127.0.0.1, 5000, active since …", false);
    let text = h.text();
    assert!(text.contains("yoda> ATU\nluke, 127.0.0.1"), "{text}");
}

#[test]
fn ctrl_c_clears_the_line_then_says_how_to_quit_at_every_prompt() {
    for prompt in [
        Prompt::UserName,
        Prompt::Password,
        Prompt::NewPassword,
        Prompt::ConfirmPassword,
        yoda(),
    ] {
        let mut h = Harness::new(WIDE);
        h.prompt(prompt.clone());
        h.typed("oops");
        assert_eq!(h.ctrl('c'), KeyOutcome::Pending);
        assert_eq!(
            h.last_row(),
            prompt.text(),
            "{prompt:?}: the line is cleared"
        );
        assert!(!h.text().contains("Ctrl-D"), "{prompt:?}: no hint yet");
        assert_eq!(h.ctrl('c'), KeyOutcome::Pending);
        let text = h.text();
        assert!(text.contains("To quit"), "{prompt:?}: {text}");
        assert!(text.contains("Ctrl-D"), "{prompt:?}: {text}");
        if matches!(prompt, Prompt::Command(_)) {
            assert!(text.contains("type OUT"), "{text}");
        }
        assert_eq!(h.last_row(), prompt.text(), "{prompt:?}: the prompt stays");
        // And the prompt still works.
        h.typed("x");
        assert_eq!(h.enter(), KeyOutcome::Line("x".into()));
    }
}

#[test]
fn ctrl_d_on_an_empty_line_ends_input_at_every_prompt() {
    for prompt in [Prompt::UserName, Prompt::Password, yoda()] {
        let mut h = Harness::new(WIDE);
        h.prompt(prompt.clone());
        h.typed("ab");
        h.key(KeyCode::Home, KeyModifiers::NONE);
        assert_eq!(h.ctrl('d'), KeyOutcome::Pending, "deletes a character");
        h.ctrl('u');
        h.ctrl('k');
        assert_eq!(h.ctrl('d'), KeyOutcome::EndOfInput, "{prompt:?}");
    }
}

#[test]
fn a_password_is_never_drawn_nor_kept() {
    let mut h = Harness::new(WIDE);
    h.prompt(Prompt::Password);
    h.typed("jedi*knight");
    assert_eq!(h.last_row(), "Password: ");
    assert_eq!(h.enter(), KeyOutcome::Line("jedi*knight".into()));
    assert!(!h.text().contains("jedi"));
    assert!(!String::from_utf8_lossy(h.s.screen().output()).contains("jedi"));
    h.prompt(yoda());
    h.key(KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(h.last_row(), "yoda> ", "passwords are not history");
}

#[test]
fn tab_completes_a_command_and_lists_the_candidates_when_ambiguous() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.typed("ms");
    h.tab();
    assert_eq!(h.last_row(), "yoda> msg ");
    h.ctrl('u');
    h.typed("U");
    h.tab();
    assert!(h.text().contains("UNB  UPD"), "{}", h.text());
    assert_eq!(h.last_row(), "yoda> U");
    h.typed("P");
    h.tab();
    assert_eq!(h.last_row(), "yoda> UPD ");
}

#[test]
fn tab_completes_user_names_online_first() {
    let mut h = Harness::new(WIDE);
    h.s.set_users(vec![
        KnownUser {
            name: "leia".into(),
            online: false,
        },
        KnownUser {
            name: "luke".into(),
            online: true,
        },
    ]);
    h.prompt(yoda());
    h.typed("PVT l");
    h.tab();
    assert!(h.text().contains("luke  leia"), "{}", h.text());
    h.typed("u");
    h.tab();
    assert_eq!(h.last_row(), "yoda> PVT luke ");
}

#[test]
fn tab_at_the_login_prompts_completes_nothing() {
    let mut h = Harness::new(WIDE);
    h.prompt(Prompt::UserName);
    h.typed("M");
    h.tab();
    assert_eq!(h.last_row(), "Username: M");
    assert_eq!(h.bells(), 1);
}

#[test]
fn history_is_recalled_with_up_and_down_and_kept_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history");
    let config = |c: &mut TermConfig| c.history.path = Some(path.clone());
    let mut h = Harness::with(WIDE, config);
    for line in ["MSG one", "ATU", "MSG two"] {
        h.prompt(yoda());
        h.typed(line);
        h.enter();
    }
    h.prompt(yoda());
    h.typed("draft");
    h.key(KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(h.last_row(), "yoda> MSG two");
    h.key(KeyCode::Up, KeyModifiers::NONE);
    h.key(KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(h.last_row(), "yoda> MSG one");
    h.key(KeyCode::Down, KeyModifiers::NONE);
    assert_eq!(h.last_row(), "yoda> ATU");
    h.key(KeyCode::Down, KeyModifiers::NONE);
    h.key(KeyCode::Down, KeyModifiers::NONE);
    assert_eq!(h.last_row(), "yoda> draft");

    let mut next = Harness::with(WIDE, config);
    next.prompt(yoda());
    next.key(KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(next.last_row(), "yoda> MSG two");
}

#[test]
fn a_mention_of_the_own_name_is_highlighted_with_one_bell() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.show(
        Tone::Post,
        "#2 luke (01 Dec 2026 07:46:09): Yoda, where are you?",
        true,
    );
    let p = h.parser();
    let rows = h.rows();
    let row = rows.iter().position(|r| r.contains("Yoda")).unwrap();
    let at = rows[row].find("Yoda").unwrap() as u16;
    let row = row as u16;
    let cell = p.screen().cell(row, at).unwrap();
    assert!(cell.bold(), "the mention is bold");
    assert_ne!(cell.bgcolor(), vt100::Color::Default, "and stands out");
    let before = p.screen().cell(row, 0).unwrap();
    assert!(!before.bold(), "the rest is not");
    assert_eq!(h.bells(), 1);
    // A burst (the catch-up) rings once.
    for i in 0..10 {
        h.show(Tone::Post, &format!("#{i} luke (…): yoda {i}"), true);
    }
    assert_eq!(h.bells(), 1);
    h.now += Duration::from_secs(5);
    h.show(Tone::Private, "Private message from luke (…): yoda?", true);
    assert_eq!(h.bells(), 2);
}

#[test]
fn the_bell_can_be_turned_off() {
    let mut h = Harness::with(WIDE, |c| c.bell = false);
    h.prompt(yoda());
    h.show(Tone::Post, "#2 luke (…): yoda!", true);
    h.tab();
    h.typed("x");
    h.tab();
    assert_eq!(h.bells(), 0);
}

#[test]
fn no_color_means_no_colour_anywhere() {
    let mut h = Harness::with(WIDE, |c| c.colour = false);
    h.prompt(yoda());
    h.show(Tone::Error, "Invalid command", false);
    h.show(Tone::Post, "#2 luke (…): yoda!", true);
    h.progress(1, 0, 100, false);
    h.stalled(1, 0, 100, 5000);
    let p = h.parser();
    for r in 0..h.size.rows {
        for c in 0..h.size.cols {
            let cell = p.screen().cell(r, c).unwrap();
            assert_eq!(cell.fgcolor(), vt100::Color::Default, "{r},{c}");
            assert_eq!(cell.bgcolor(), vt100::Color::Default, "{r},{c}");
        }
    }
    assert!(h.text().contains("stalled"));
    // The mention is still bold: emphasis is not colour.
    let row = h.rows().iter().position(|r| r.contains("yoda!")).unwrap() as u16;
    let col = h.rows()[row as usize].find("yoda").unwrap() as u16;
    assert!(p.screen().cell(row, col).unwrap().bold());
}

#[test]
fn output_wraps_at_word_boundaries_at_sixty_columns() {
    let size = Size { cols: 60, rows: 20 };
    let mut h = Harness::new(size);
    let text = "Invalid command. Usage: EDT n timestamp message (e.g. EDT 3 21 Nov 2026 22:30:01 new text) and more words to wrap";
    h.show(Tone::Error, text, false);
    let shown: Vec<String> = h
        .rows()
        .into_iter()
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert!(shown.len() >= 2, "{shown:?}");
    let words: Vec<&str> = shown.iter().flat_map(|r| r.split_whitespace()).collect();
    assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
    let p = h.parser();
    for r in 0..size.rows {
        assert!(
            !p.screen().row_wrapped(r),
            "row {r} wrapped by the terminal"
        );
    }
}

#[test]
fn a_resize_rewraps_what_comes_next() {
    let mut h = Harness::new(WIDE);
    let text = "word ".repeat(30);
    h.show(Tone::Info, &text, false);
    h.size = Size { cols: 60, rows: 20 };
    let before = h.s.screen().output().len();
    h.s.handle_event(Event::Resize(60, 20), h.size, h.now);
    h.show(Tone::Info, &text, false);
    let out = &h.s.screen().output()[before..];
    let mut p = vt100::Parser::new(20, 60, 0);
    p.process(out);
    assert!(
        (0..20).all(|r| !p.screen().row_wrapped(r)),
        "rows fit the new width"
    );
}

#[test]
fn a_transfer_is_one_status_line_redrawn_in_place_then_gone() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.typed("MSG half");
    const MIB: u64 = 1 << 20;
    h.progress(1, 0, 10 * MIB, false);
    for i in 1..=20 {
        h.now += Duration::from_millis(200);
        h.progress(1, i * MIB / 4, 10 * MIB, false);
        if i % 5 == 0 {
            h.show(Tone::Notice, &format!("event {i}"), true);
        }
    }
    let rows = h.rows();
    let n = rows.len();
    assert_eq!(rows[n - 1], "yoda> MSG half");
    assert!(rows[n - 2].starts_with("clip.mp4 → luke"), "{rows:?}");
    assert!(rows[n - 2].contains(" 50%"), "{}", rows[n - 2]);
    assert!(rows[n - 2].contains("ETA"), "{}", rows[n - 2]);
    assert_eq!(rows[n - 3], "event 20");
    // Never a second status line, on screen or in the scrollback (a screen tall enough that
    // nothing scrolls off shows both).
    let mut tall = vt100::Parser::new(500, h.size.cols, 0);
    tall.process(h.s.screen().output());
    let all = tall.screen().contents();
    assert_eq!(all.matches("clip.mp4 → luke").count(), 1, "{all}");
    // It stalls (the core says so): the line says so, and no ETA.
    h.stalled(1, 5 * MIB, 10 * MIB, 3_500);
    let line = h.rows()[n - 2].clone();
    assert!(line.contains("stalled 3s"), "{line}");
    assert!(!line.contains("ETA"), "{line}");
    // It ends: the line goes, the core's own final line is what stays.
    h.progress(1, 10 * MIB, 10 * MIB, true);
    h.show(
        Tone::Success,
        "clip.mp4 has been uploaded to luke (10.0 MiB in 7.5 s)",
        false,
    );
    let rows = h.rows();
    assert_eq!(rows[n - 1], "yoda> MSG half");
    assert_eq!(
        rows[n - 2],
        "clip.mp4 has been uploaded to luke (10.0 MiB in 7.5 s)"
    );
    assert!(!h.text().contains("%"), "{}", h.text());
    assert!(!h.s.is_transferring());
}

#[test]
fn status_lines_fit_every_width_from_60_to_100() {
    for cols in 60..=100 {
        let size = Size { cols, rows: 10 };
        let mut h = Harness::new(size);
        h.prompt(yoda());
        h.progress(1, 0, 300 << 20, false);
        h.now += Duration::from_secs(2);
        h.progress(1, 123 << 20, 300 << 20, false);
        let p = h.parser();
        for r in 0..size.rows {
            assert!(!p.screen().row_wrapped(r), "{cols}: row {r} wrapped");
        }
        let rows = h.rows();
        let line = &rows[rows.len() - 2];
        assert!(
            line.contains("41%") && line.contains("ETA"),
            "{cols}: {line}"
        );
    }
}

#[test]
fn hostile_text_cannot_steer_the_terminal_or_break_the_line_being_typed() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.typed("MSG mine");
    let hostile = format!(
        "#9 mallory (…): \x1b[2J\x1b[H\x1b[31mred\r\x1b[1A{}\x07",
        "\x1b[10D".repeat(1000)
    );
    h.show(Tone::Post, &hostile, true);
    let rows = h.rows();
    assert_eq!(rows.last().unwrap(), "yoda> MSG mine");
    let p = h.parser();
    assert_eq!(p.screen().cursor_position().0, h.size.rows - 1);
    assert_eq!(h.bells(), 0, "a BEL from a peer does not ring");
    assert!(h.text().contains("^[[10D^[[10D^G"), "shown, not obeyed");
    let mut tall = vt100::Parser::new(500, h.size.cols, 0);
    tall.process(h.s.screen().output());
    assert!(
        tall.screen()
            .contents()
            .contains("^[[2J^[[H^[[31mred^M^[[1A")
    );
}

#[test]
fn a_long_session_keeps_the_terminal_state_bounded() {
    let mut h = Harness::with(WIDE, |c| c.history.max_entries = 50);
    for i in 0..2000 {
        h.prompt(yoda());
        h.typed(&format!("MSG {i}"));
        h.enter();
        h.show(Tone::Success, &format!("Message #{i} posted"), false);
        h.progress(i, 0, 10, false);
        h.progress(i, 10, 10, true);
    }
    assert_eq!(h.s.history.entries().len(), 50);
    assert!(!h.s.is_transferring());
    assert!(h.last_row().is_empty() || h.last_row().starts_with("Message"));
}

#[test]
fn a_paste_of_many_lines_is_one_line_to_look_at() {
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.s.handle_event(Event::Paste("MSG one\nMSG two\n".into()), h.size, h.now);
    assert_eq!(h.last_row(), "yoda> MSG one MSG two ");
    assert_eq!(h.enter(), KeyOutcome::Line("MSG one MSG two ".into()));
}

#[test]
fn ctrl_c_while_waiting_says_what_is_going_on_then_quits() {
    let mut h = Harness::new(WIDE);
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    let typed = Event::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE));
    // No prompt open: a reply is pending.
    assert_eq!(
        h.s.handle_busy_event(&typed, h.size, h.now),
        BusyOutcome::ForPrompt,
        "typed ahead for the next prompt"
    );
    assert_eq!(
        h.s.handle_busy_event(&ctrl_c, h.size, h.now),
        BusyOutcome::Handled
    );
    assert!(
        h.text().contains("Press Ctrl-C again to quit now"),
        "{}",
        h.text()
    );
    // A prompt in between starts over.
    h.prompt(yoda());
    assert_eq!(
        h.s.handle_busy_event(&ctrl_c, h.size, h.now),
        BusyOutcome::ForPrompt
    );
    h.typed("ATU");
    h.enter();
    assert_eq!(
        h.s.handle_busy_event(&ctrl_c, h.size, h.now),
        BusyOutcome::Handled
    );
    assert_eq!(
        h.s.handle_busy_event(&ctrl_c, h.size, h.now),
        BusyOutcome::Quit
    );
}

#[test]
fn mentions_count_from_the_name_typed_at_login_before_the_command_prompt() {
    let mut h = Harness::new(WIDE);
    h.prompt(Prompt::UserName);
    h.typed("yoda");
    h.enter();
    // The catch-up arrives before the command prompt opens.
    h.show(Tone::Post, "#1 luke (…): yoda, you missed this", true);
    assert_eq!(h.bells(), 1);
}

#[test]
fn enter_on_an_empty_new_password_reaches_the_core_as_an_empty_line() {
    // Going back to the user name is the core's rule (see the report of issue 12); the
    // terminal's part is to hand the empty line on, not to swallow it.
    let mut h = Harness::new(WIDE);
    h.prompt(Prompt::NewPassword);
    assert_eq!(h.enter(), KeyOutcome::Line(String::new()));
    assert_eq!(h.last_row(), "", "the prompt is closed, awaiting the core");
    assert!(
        h.text().contains("New password: "),
        "and stays in the scrollback"
    );
}

#[test]
fn a_cancel_offered_for_transfers_that_then_end_is_taken_back_unless_the_user_made_it_theirs() {
    const MIB: u64 = 1 << 20;
    let mut h = Harness::new(WIDE);
    h.prompt(yoda());
    h.progress(1, MIB, 10 * MIB, false);
    assert_eq!(h.ctrl('c'), KeyOutcome::Pending);
    assert_eq!(h.last_row(), "yoda> CANCEL");
    // The upload ends on its own: the offer goes with it, and what is typed next is sent as
    // typed, not `CANCELOUT`.
    h.progress(1, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> ");
    h.typed("OUT");
    assert_eq!(h.enter(), KeyOutcome::Line("OUT".into()));

    // Two transfers: `CANCEL ALL` stays while one still runs, and goes when both are done.
    h.prompt(yoda());
    h.progress(2, MIB, 10 * MIB, false);
    h.progress(3, MIB, 10 * MIB, false);
    h.ctrl('c');
    assert_eq!(h.last_row(), "yoda> CANCEL ALL");
    h.progress(2, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> CANCEL ALL");
    h.progress(3, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> ");

    // A line the user edited after the offer is theirs: it stays.
    h.progress(4, MIB, 10 * MIB, false);
    h.ctrl('c');
    h.typed(" clip.mp4");
    h.progress(4, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> CANCEL clip.mp4");
    assert_eq!(h.enter(), KeyOutcome::Line("CANCEL clip.mp4".into()));

    // Edited back to the very offer is still theirs; and a line cleared with Ctrl-C and
    // typed anew is never touched.
    h.prompt(yoda());
    h.progress(5, MIB, 10 * MIB, false);
    h.ctrl('c');
    h.key(KeyCode::Backspace, KeyModifiers::NONE);
    h.typed("L");
    h.progress(5, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> CANCEL");
    h.ctrl('c');
    h.progress(6, MIB, 10 * MIB, false);
    h.typed("MSG hi");
    h.progress(6, 10 * MIB, 10 * MIB, true);
    assert_eq!(h.last_row(), "yoda> MSG hi");
}
