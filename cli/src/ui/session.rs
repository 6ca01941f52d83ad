//! What the interactive terminal does with each thing the client core shows and each key the
//! user presses — every decision of the terminal UI, with no terminal in sight.
//!
//! # Driving it
//! A driver (see `term.rs`) owns the real terminal, the clock and the key reader, and calls:
//! - [`Session::handle_display`] and [`Session::handle_progress`] with the core's outputs (the
//!   core reports each running transfer at least every 200 ms, with its rate, ETA and stall,
//!   so the status area needs no clock of its own);
//! - [`Session::open_prompt`] when the core asks for a line, then [`Session::handle_event`]
//!   with each terminal event until it returns a [`KeyOutcome`] other than `Pending`;
//! - [`Session::leave`] once, at the end.
//!
//! Every call takes the terminal's [`Size`] (asked for anew each time, so a resize takes
//! effect at the next draw) and `now`. Everything is written to `W`, so tests read the screen
//! back through a terminal emulator.

use std::io::Write;
use std::time::{Duration, Instant};

use anstyle::Style;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use huddle_core::client::{Display, Progress, Prompt};

use super::complete::{Completer, KnownUser};
use super::editor::{Action, LineEditor};
use super::history::{History, HistoryConfig};
use super::mention;
use super::palette::Palette;
use super::screen::{InputRow, Live, Screen, Size, StyledRow};
use super::status::{StatusBoard, StatusConfig, StatusLine};
use super::wrap::{sanitize, wrap_rows};

/// Settings of the interactive terminal.
#[derive(Debug, Clone)]
pub struct TermConfig {
    /// Colours (off with `NO_COLOR`).
    pub colour: bool,
    /// Ring the terminal bell on a mention (and on a key that does nothing); `--no-bell`.
    pub bell: bool,
    /// Where history is kept.
    pub history: HistoryConfig,
    /// The status area.
    pub status: StatusConfig,
    /// Most bytes a typed line may hold. Above the protocol's 8 KiB request line, so that an
    /// over-long line still reaches the core and gets its explanation, but bounded, so a
    /// runaway paste cannot grow the buffer without end.
    pub max_line_bytes: usize,
    /// The quietest the mention bell can be: a burst of mentions (the catch-up at login) rings
    /// once, not once per post.
    pub bell_every: Duration,
}

impl Default for TermConfig {
    fn default() -> Self {
        Self {
            colour: true,
            bell: true,
            history: HistoryConfig::default(),
            status: StatusConfig::default(),
            max_line_bytes: 64 * 1024,
            bell_every: Duration::from_secs(2),
        }
    }
}

/// What a terminal event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Keep reading keys.
    Pending,
    /// The user entered this line.
    Line(String),
    /// Input ended (Ctrl-D on an empty line).
    EndOfInput,
    /// Ctrl-Z: the driver suspends the process and calls [`Session::redraw`] once it is back.
    Suspend,
}

/// What a terminal event that came while no prompt was open comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyOutcome {
    /// Keep it for the prompt (open now, or the next one: type-ahead).
    ForPrompt,
    /// Answered already.
    Handled,
    /// Ctrl-Z: suspend.
    Suspend,
    /// A second Ctrl-C while busy: the user wants out now.
    Quit,
}

/// Said on a Ctrl-C while the client waits (for a reply, or for transfers before logging
/// out) and so has no line to clear.
const BUSY_HINT: &str =
    "Waiting for the server or a transfer. Press Ctrl-C again to quit now, or wait.";

/// The same while transfers run: quitting cancels them.
const BUSY_TRANSFER_HINT: &str = "Waiting for a transfer. Press Ctrl-C again to cancel the running transfers (their peers are told; what was received is kept for resuming) and quit now, or wait.";

/// Said when Ctrl-C on an empty command line offers to cancel the running transfers.
const CANCEL_OFFER: &str = "Transfers are running: Enter cancels (the other side is told; what arrived is kept for resuming), Ctrl-C keeps them.";

/// How to quit, said on a Ctrl-C at an empty prompt.
fn quit_hint(prompt: &Prompt) -> &'static str {
    match prompt {
        Prompt::Command(_) => "To quit, type OUT or press Ctrl-D.",
        Prompt::UserName | Prompt::Password | Prompt::NewPassword | Prompt::ConfirmPassword => {
            "To quit, press Ctrl-D (once logged in, OUT logs out)."
        }
    }
}

/// A prompt waiting for its line.
#[derive(Debug)]
struct Open {
    prompt: Prompt,
    text: String,
    editor: LineEditor,
    /// The history entry shown, while browsing it.
    browsing: Option<usize>,
    /// What was typed before browsing started, given back at its end.
    draft: String,
    /// The `CANCEL` (or `CANCEL ALL`) a Ctrl-C typed for the user while transfers ran, as long
    /// as the line is still just that: it is taken back when the last transfer ends, so that
    /// it does not stay to be sent with the next command (`CANCELOUT`).
    offered: Option<&'static str>,
}

/// The interactive terminal's state and decisions.
pub struct Session<W: Write> {
    config: TermConfig,
    palette: Palette,
    screen: Screen<W>,
    board: StatusBoard,
    /// The status lines last drawn, to skip redraws that change nothing.
    drawn: Vec<StatusLine>,
    history: History,
    completer: Completer,
    open: Option<Open>,
    /// The logged-in user, from the command prompt: whose name is a mention.
    user: Option<String>,
    last_bell: Option<Instant>,
    /// Whether Ctrl-C was pressed since the last prompt closed (a second one quits).
    interrupted_while_busy: bool,
    /// Said once, at the first draw (a history file that could not be read).
    warning: Option<String>,
}

impl<W: Write> Session<W> {
    /// A session drawing on `out`, with history loaded.
    pub fn new(config: TermConfig, out: W) -> Self {
        let palette = Palette::new(config.colour);
        let (history, err) = History::load(config.history.clone());
        Self {
            palette,
            screen: Screen::new(out, palette),
            board: StatusBoard::new(config.status.clone()),
            drawn: Vec::new(),
            history,
            completer: Completer::new(),
            open: None,
            user: None,
            last_bell: None,
            interrupted_while_busy: false,
            warning: err.map(|e| e.to_string()),
            config,
        }
    }

    /// The screen (tests read what was written).
    #[cfg(test)]
    pub fn screen(&self) -> &Screen<W> {
        &self.screen
    }

    /// Whether transfers are shown.
    #[cfg(test)]
    pub fn is_transferring(&self) -> bool {
        !self.board.is_empty()
    }

    /// The users Tab offers after `PVT`, `BLK`, `UNB` and `UPD`, online first (the core's
    /// `ClientOutput::Users`).
    pub fn set_users(&mut self, users: Vec<KnownUser>) {
        self.completer.set_users(users);
    }

    /// Show what the core has to say, above the live area, wrapped to the width; mentions of
    /// the user's name highlighted, with a bell when it arrived unasked.
    pub fn handle_display(&mut self, d: &Display, size: Size, now: Instant) {
        let text = sanitize(&d.text);
        let clean = Display {
            tone: d.tone,
            text,
            pushed: d.pushed,
        };
        let mentions = match &self.user {
            Some(user) => mention::in_display(&clean, user),
            None => Vec::new(),
        };
        let tone = self.palette.tone(d.tone);
        let highlight = self.palette.mention();
        let rows: Vec<StyledRow> = wrap_rows(&clean.text, size.wrap_columns())
            .into_iter()
            .map(|row| {
                let mut parts = vec![(Style::new(), " ".repeat(row.indent))];
                let mut at = row.range.start;
                for m in &mentions {
                    let (from, to) = (m.start.max(row.range.start), m.end.min(row.range.end));
                    if from >= to {
                        continue;
                    }
                    parts.push((tone, clean.text[at..from].to_string()));
                    parts.push((highlight, clean.text[from..to].to_string()));
                    at = to;
                }
                parts.push((tone, clean.text[at..row.range.end].to_string()));
                parts.retain(|(_, t)| !t.is_empty());
                parts
            })
            .collect();
        self.print(&rows, size, now);
        if !mentions.is_empty() && d.pushed {
            self.ring(now);
        }
    }

    /// A transfer's progress: its status line is added, updated or removed. When the last one
    /// ends, a `CANCEL` offered for it and left as it was is taken back.
    pub fn handle_progress(&mut self, p: &Progress, size: Size, _now: Instant) {
        self.board.handle_progress(p);
        let mut taken_back = false;
        if self.board.is_empty()
            && let Some(open) = &mut self.open
            && let Some(offer) = open.offered.take()
            && open.editor.text() == offer
        {
            open.editor.set_text("");
            taken_back = true;
        }
        self.redraw_status(size);
        if taken_back {
            self.redraw_input(size);
        }
    }

    /// The core asks for a line.
    pub fn open_prompt(&mut self, prompt: &Prompt, size: Size, now: Instant) {
        if let Prompt::Command(user) = prompt {
            self.user = Some(user.clone());
        }
        self.interrupted_while_busy = false;
        self.open = Some(Open {
            prompt: prompt.clone(),
            text: prompt.text(),
            editor: LineEditor::new(self.config.max_line_bytes),
            browsing: None,
            draft: String::new(),
            offered: None,
        });
        self.screen.reset_scroll();
        if let Some(w) = self.warning.take() {
            self.print_hint(&w, size, now);
        } else {
            self.redraw(size, now);
        }
    }

    /// A terminal event while a prompt is open.
    pub fn handle_event(&mut self, ev: Event, size: Size, now: Instant) -> KeyOutcome {
        match ev {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.handle_key(key, size, now),
            Event::Paste(text) => {
                if let Some(open) = &mut self.open
                    && !open.editor.insert_str(&text)
                {
                    self.refuse();
                }
                self.redraw_input(size);
                KeyOutcome::Pending
            }
            Event::Resize(..) => {
                self.redraw(size, now);
                KeyOutcome::Pending
            }
            _ => KeyOutcome::Pending,
        }
    }

    /// A terminal event as it arrives, before any prompt sees it: with a prompt open it is the
    /// prompt's; without one, Ctrl-C and Ctrl-Z are answered now (the first Ctrl-C says what
    /// is going on, a second quits), a resize is drawn, and the rest waits for the next prompt.
    pub fn handle_busy_event(&mut self, ev: &Event, size: Size, now: Instant) -> BusyOutcome {
        if self.open.is_some() {
            return BusyOutcome::ForPrompt;
        }
        let Event::Key(key) = ev else {
            if matches!(ev, Event::Resize(..)) {
                self.redraw(size, now);
                return BusyOutcome::Handled;
            }
            return BusyOutcome::ForPrompt;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            _ if key.kind == KeyEventKind::Release => BusyOutcome::Handled,
            KeyCode::Char('c') if ctrl => {
                if std::mem::replace(&mut self.interrupted_while_busy, true) {
                    return BusyOutcome::Quit;
                }
                let hint = if self.board.is_empty() {
                    BUSY_HINT
                } else {
                    BUSY_TRANSFER_HINT
                };
                self.print_hint(hint, size, now);
                BusyOutcome::Handled
            }
            KeyCode::Char('z') if ctrl => BusyOutcome::Suspend,
            _ => BusyOutcome::ForPrompt,
        }
    }

    /// More was typed ahead than is kept: this key is dropped, with a bell.
    pub fn refuse_type_ahead(&mut self) {
        self.refuse();
    }

    /// Draw the live area again (after a suspend, or whenever in doubt).
    pub fn redraw(&mut self, size: Size, _now: Instant) {
        self.drawn = self.board.lines(size.live_columns());
        let live = live(&self.drawn, self.open.as_ref());
        self.screen.redraw(&live, size);
    }

    /// Erase the live area for a while (a suspend); [`Session::redraw`] brings it back.
    pub fn hide(&mut self) {
        self.drawn.clear();
        self.screen.leave();
    }

    /// Give the terminal back: the live area erased (a line typed but never entered goes with
    /// it: it was not sent).
    pub fn leave(&mut self) {
        self.open = None;
        self.screen.leave();
    }

    fn handle_key(&mut self, key: KeyEvent, size: Size, now: Instant) -> KeyOutcome {
        let Some(open) = &mut self.open else {
            return KeyOutcome::Pending;
        };
        let action = open.editor.handle_key(key);
        if !matches!(action, Action::Interrupt { had_text: false }) {
            // Anything else the user does to the line makes it theirs.
            open.offered = None;
        }
        match action {
            Action::Edited => self.redraw_input(size),
            Action::Submit(line) => return self.submit(line, size, now),
            Action::Interrupt { had_text: true } => {
                open.browsing = None;
                self.redraw_input(size);
            }
            // Ctrl-C on an empty command line while transfers run offers to cancel them: the
            // command is typed for the user, Enter sends it, Ctrl-C clears it again.
            Action::Interrupt { had_text: false }
                if matches!(open.prompt, Prompt::Command(_)) && !self.board.is_empty() =>
            {
                let offer = if self.board.len() > 1 {
                    "CANCEL ALL"
                } else {
                    "CANCEL"
                };
                open.editor.set_text(offer);
                open.offered = Some(offer);
                self.print_hint(CANCEL_OFFER, size, now);
            }
            Action::Interrupt { had_text: false } => {
                let hint = quit_hint(&open.prompt);
                self.print_hint(hint, size, now);
            }
            Action::EndOfInput => {
                self.commit("", size, now);
                return KeyOutcome::EndOfInput;
            }
            Action::Complete => self.complete(size, now),
            Action::HistoryBack => self.history_step(true, size),
            Action::HistoryForward => self.history_step(false, size),
            Action::ClearScreen => {
                self.drawn = self.board.lines(size.live_columns());
                let live = live(&self.drawn, self.open.as_ref());
                self.screen.clear(&live, size);
            }
            Action::Suspend => return KeyOutcome::Suspend,
            Action::Refused => self.refuse(),
        }
        KeyOutcome::Pending
    }

    fn submit(&mut self, line: String, size: Size, now: Instant) -> KeyOutcome {
        let is_command = self
            .open
            .as_ref()
            .is_some_and(|o| matches!(o.prompt, Prompt::Command(_)));
        // The name being logged in with is whose mentions to look for: the catch-up posts can
        // arrive before the command prompt that names the user opens.
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.prompt == Prompt::UserName)
            && !line.trim().is_empty()
        {
            self.user = Some(line.trim().to_string());
        }
        let secret = self.open.as_ref().is_some_and(|o| o.prompt.is_secret());
        self.commit(if secret { "" } else { &line }, size, now);
        if is_command && let Err(e) = self.history.add(&line) {
            self.print_hint(&e.to_string(), size, now);
        }
        KeyOutcome::Line(line)
    }

    /// Close the prompt, leaving it and `shown` in the scrollback as a record of what was
    /// entered.
    fn commit(&mut self, shown: &str, size: Size, now: Instant) {
        let Some(open) = self.open.take() else {
            return;
        };
        let text = sanitize(&format!("{}{shown}", open.text));
        let rows: Vec<StyledRow> = wrap_rows(&text, size.wrap_columns())
            .iter()
            .map(|r| vec![(Style::new(), r.render(&text))])
            .collect();
        self.print(&rows, size, now);
    }

    fn complete(&mut self, size: Size, now: Instant) {
        let Some(open) = &mut self.open else {
            return;
        };
        if !matches!(open.prompt, Prompt::Command(_)) {
            self.refuse();
            return;
        }
        let before: String = open.editor.chars()[..open.editor.cursor()].iter().collect();
        let completion = self.completer.complete(&before);
        let Some(replacement) = completion.replacement() else {
            self.refuse();
            return;
        };
        let typed = open.editor.cursor() - completion.start;
        if replacement.chars().count() > typed {
            open.editor
                .replace_before_cursor(completion.start, &replacement);
            self.redraw_input(size);
        } else if completion.candidates.len() > 1 {
            let list: Vec<&str> = completion
                .candidates
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            self.print_hint(&list.join("  "), size, now);
        } else {
            self.refuse();
        }
    }

    fn history_step(&mut self, back: bool, size: Size) {
        let Some(open) = &mut self.open else {
            return;
        };
        if !matches!(open.prompt, Prompt::Command(_)) {
            self.refuse();
            return;
        }
        let entries = self.history.entries();
        let next = match (back, open.browsing) {
            (true, None) if !entries.is_empty() => Some(entries.len() - 1),
            (true, Some(i)) if i > 0 => Some(i - 1),
            (false, Some(i)) if i + 1 < entries.len() => Some(i + 1),
            (false, Some(_)) => None,
            _ => {
                self.refuse();
                return;
            }
        };
        if open.browsing.is_none() {
            open.draft = open.editor.text();
        }
        open.browsing = next;
        match next {
            Some(i) => open.editor.set_text(&entries[i]),
            None => open.editor.set_text(&std::mem::take(&mut open.draft)),
        }
        self.redraw_input(size);
    }

    fn print_hint(&mut self, text: &str, size: Size, now: Instant) {
        let text = sanitize(text);
        let style = self.palette.hint();
        let rows: Vec<StyledRow> = wrap_rows(&text, size.wrap_columns())
            .iter()
            .map(|r| vec![(style, r.render(&text))])
            .collect();
        self.print(&rows, size, now);
    }

    fn print(&mut self, rows: &[StyledRow], size: Size, _now: Instant) {
        self.drawn = self.board.lines(size.live_columns());
        let live = live(&self.drawn, self.open.as_ref());
        self.screen.print(rows, &live, size);
    }

    fn redraw_status(&mut self, size: Size) {
        let lines = self.board.lines(size.live_columns());
        if lines != self.drawn {
            self.drawn = lines;
            let live = live(&self.drawn, self.open.as_ref());
            self.screen.redraw(&live, size);
        }
    }

    fn redraw_input(&mut self, size: Size) {
        let live = live(&self.drawn, self.open.as_ref());
        self.screen.redraw_input(&live, size);
    }

    fn ring(&mut self, now: Instant) {
        if !self.config.bell
            || self
                .last_bell
                .is_some_and(|t| now.saturating_duration_since(t) < self.config.bell_every)
        {
            return;
        }
        self.last_bell = Some(now);
        self.screen.bell();
    }

    /// A key that does nothing here: a short bell, as line editors do.
    fn refuse(&mut self) {
        if self.config.bell {
            self.screen.bell();
        }
    }
}

fn live<'a>(status: &'a [StatusLine], open: Option<&'a Open>) -> Live<'a> {
    Live {
        status,
        input: open.map(|o| InputRow {
            prompt: &o.text,
            chars: o.editor.chars(),
            cursor: o.editor.cursor(),
            secret: o.prompt.is_secret(),
        }),
    }
}

#[cfg(test)]
mod tests;
