//! The line being typed: a buffer, a cursor, and what each key does to them.
//!
//! The keys are those of readline's emacs mode, which shells, rustyline and most chat clients
//! share, so fingers need nothing new. The editor only edits: what a submitted line, a Ctrl-C or
//! a Tab means is decided by the session around it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks of the session, beyond editing the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The buffer changed or the cursor moved (or nothing happened): redraw the line.
    Edited,
    /// Enter: the line is done.
    Submit(String),
    /// Ctrl-C: `had_text` tells whether there was a line to clear (it is cleared).
    Interrupt {
        /// Whether the buffer held anything before.
        had_text: bool,
    },
    /// Ctrl-D on an empty line: input ends.
    EndOfInput,
    /// Tab: complete the word before the cursor.
    Complete,
    /// Up, Ctrl-P: the previous history entry.
    HistoryBack,
    /// Down, Ctrl-N: the next history entry.
    HistoryForward,
    /// Ctrl-L: clear the screen and redraw.
    ClearScreen,
    /// Ctrl-Z: suspend the client, as a shell job.
    Suspend,
    /// A key that does nothing here, or text past the line limit: ring the bell.
    Refused,
}

/// A line being edited.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    /// The characters typed (a char at a time, so the cursor never splits one).
    chars: Vec<char>,
    /// Where the cursor is, as an index into `chars` (0..=len).
    cursor: usize,
    /// Most bytes the line may hold; more typing or pasting is refused.
    max_bytes: usize,
    /// Bytes held, kept in step with `chars`.
    bytes: usize,
}

impl LineEditor {
    /// An empty line that refuses to grow past `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            ..Self::default()
        }
    }

    /// The text.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The characters.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The cursor, as an index into [`LineEditor::chars`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replace the whole line (a history entry) and put the cursor at its end. Text past the
    /// limit is cut.
    pub fn set_text(&mut self, text: &str) {
        self.chars.clear();
        self.bytes = 0;
        self.cursor = 0;
        self.insert_str(text);
    }

    /// Replace `chars[from..cursor]` with `text` (a completion), cursor after it.
    pub fn replace_before_cursor(&mut self, from: usize, text: &str) {
        let from = from.min(self.cursor);
        let removed: usize = self.chars[from..self.cursor]
            .iter()
            .map(|c| c.len_utf8())
            .sum();
        self.chars.drain(from..self.cursor);
        self.bytes -= removed;
        self.cursor = from;
        self.insert_str(text);
    }

    /// Insert text at the cursor (typed or pasted). Line breaks become spaces, so a paste of
    /// several lines is one line to look at before Enter, never several commands sent at once;
    /// other control characters are dropped. Returns false if the limit cut the text short.
    pub fn insert_str(&mut self, text: &str) -> bool {
        for c in text.chars() {
            let c = match c {
                '\r' | '\n' | '\t' => ' ',
                c if c.is_control() => continue,
                c => c,
            };
            if self.bytes + c.len_utf8() > self.max_bytes {
                return false;
            }
            self.chars.insert(self.cursor, c);
            self.cursor += 1;
            self.bytes += c.len_utf8();
        }
        true
    }

    /// What `key` does.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Enter => return Action::Submit(self.take()),
            KeyCode::Char('j' | 'm') if ctrl => return Action::Submit(self.take()),
            KeyCode::Char('c') if ctrl => {
                let had_text = !self.chars.is_empty();
                self.take();
                return Action::Interrupt { had_text };
            }
            KeyCode::Char('d') if ctrl => {
                if self.chars.is_empty() {
                    return Action::EndOfInput;
                }
                self.delete_at_cursor();
            }
            KeyCode::Tab => return Action::Complete,
            // Esc alone is the start of many key sequences; readline ignores it, so do we.
            KeyCode::Esc => {}
            KeyCode::Up => return Action::HistoryBack,
            KeyCode::Down => return Action::HistoryForward,
            KeyCode::Char('p') if ctrl => return Action::HistoryBack,
            KeyCode::Char('n') if ctrl => return Action::HistoryForward,
            KeyCode::Char('l') if ctrl => return Action::ClearScreen,
            KeyCode::Char('z') if ctrl => return Action::Suspend,
            KeyCode::Left if ctrl || alt => self.cursor = self.word_start(),
            KeyCode::Right if ctrl || alt => self.cursor = self.word_end(),
            KeyCode::Char('b') if alt => self.cursor = self.word_start(),
            KeyCode::Char('f') if alt => self.cursor = self.word_end(),
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Char('b') if ctrl => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.chars.len()),
            KeyCode::Char('f') if ctrl => self.cursor = (self.cursor + 1).min(self.chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::End => self.cursor = self.chars.len(),
            KeyCode::Char('e') if ctrl => self.cursor = self.chars.len(),
            KeyCode::Backspace if alt => self.delete_range(self.word_start(), self.cursor),
            KeyCode::Char('w') if ctrl => self.delete_range(self.word_start(), self.cursor),
            KeyCode::Char('d') if alt => self.delete_range(self.cursor, self.word_end()),
            KeyCode::Backspace => {
                if self.cursor > 0 {
                    self.delete_range(self.cursor - 1, self.cursor);
                }
            }
            KeyCode::Char('h') if ctrl => {
                if self.cursor > 0 {
                    self.delete_range(self.cursor - 1, self.cursor);
                }
            }
            KeyCode::Delete => self.delete_at_cursor(),
            KeyCode::Char('u') if ctrl => self.delete_range(0, self.cursor),
            KeyCode::Char('k') if ctrl => self.delete_range(self.cursor, self.chars.len()),
            KeyCode::Char(c) if !ctrl && !alt => {
                if !self.insert_str(c.encode_utf8(&mut [0; 4])) {
                    return Action::Refused;
                }
            }
            _ => return Action::Refused,
        }
        Action::Edited
    }

    fn take(&mut self) -> String {
        let text = self.text();
        self.chars.clear();
        self.cursor = 0;
        self.bytes = 0;
        text
    }

    fn delete_at_cursor(&mut self) {
        if self.cursor < self.chars.len() {
            self.delete_range(self.cursor, self.cursor + 1);
        }
    }

    fn delete_range(&mut self, from: usize, to: usize) {
        let removed: usize = self.chars[from..to].iter().map(|c| c.len_utf8()).sum();
        self.chars.drain(from..to);
        self.bytes -= removed;
        self.cursor = from;
    }

    /// The start of the word before the cursor (skipping spaces first).
    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && self.chars[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && self.chars[i - 1] != ' ' {
            i -= 1;
        }
        i
    }

    /// The end of the word after the cursor (skipping spaces first).
    fn word_end(&self) -> usize {
        let mut i = self.cursor;
        let n = self.chars.len();
        while i < n && self.chars[i] == ' ' {
            i += 1;
        }
        while i < n && self.chars[i] != ' ' {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(text: &str) -> LineEditor {
        let mut e = LineEditor::new(1024);
        for c in text.chars() {
            assert_eq!(e.handle_key(key(KeyCode::Char(c))), Action::Edited);
        }
        e
    }

    #[test]
    fn typing_and_enter_submit_the_line() {
        let mut e = typed("MSG héllo");
        assert_eq!(
            e.handle_key(key(KeyCode::Enter)),
            Action::Submit("MSG héllo".into())
        );
        assert!(e.text().is_empty());
    }

    #[test]
    fn moving_and_deleting_as_in_readline() {
        let mut e = typed("MSG one two");
        e.handle_key(ctrl('w'));
        assert_eq!(e.text(), "MSG one ");
        e.handle_key(ctrl('a'));
        e.handle_key(ctrl('f'));
        e.handle_key(ctrl('d'));
        assert_eq!(e.text(), "MG one ");
        e.handle_key(key(KeyCode::End));
        e.handle_key(key(KeyCode::Backspace));
        assert_eq!(e.text(), "MG one");
        e.handle_key(key(KeyCode::Left));
        e.handle_key(key(KeyCode::Left));
        e.handle_key(ctrl('k'));
        assert_eq!(e.text(), "MG o");
        e.handle_key(ctrl('u'));
        assert!(e.text().is_empty());
    }

    #[test]
    fn ctrl_c_clears_and_tells_whether_there_was_text() {
        let mut e = typed("half a thought");
        assert_eq!(
            e.handle_key(ctrl('c')),
            Action::Interrupt { had_text: true }
        );
        assert!(e.text().is_empty());
        assert_eq!(
            e.handle_key(ctrl('c')),
            Action::Interrupt { had_text: false }
        );
    }

    #[test]
    fn ctrl_d_ends_input_only_on_an_empty_line() {
        let mut e = typed("ab");
        e.handle_key(key(KeyCode::Left));
        assert_eq!(e.handle_key(ctrl('d')), Action::Edited);
        assert_eq!(e.text(), "a");
        e.handle_key(ctrl('u'));
        assert_eq!(e.handle_key(ctrl('d')), Action::EndOfInput);
    }

    #[test]
    fn a_pasted_block_is_one_line_without_control_characters() {
        let mut e = LineEditor::new(1024);
        assert!(e.insert_str("MSG one\nMSG two\r\n\x1b[2J\x07end"));
        assert_eq!(e.text(), "MSG one MSG two  [2Jend");
    }

    #[test]
    fn the_line_limit_holds_against_a_huge_paste() {
        let mut e = LineEditor::new(100);
        assert!(!e.insert_str(&"é".repeat(1 << 20)));
        assert!(e.text().len() <= 100);
        assert_eq!(e.handle_key(key(KeyCode::Char('x'))), Action::Refused);
        e.handle_key(key(KeyCode::Backspace));
        assert_eq!(e.handle_key(key(KeyCode::Char('x'))), Action::Edited);
    }

    #[test]
    fn completion_replaces_the_word_before_the_cursor() {
        let mut e = typed("ms hello");
        e.handle_key(key(KeyCode::Home));
        e.handle_key(key(KeyCode::Right));
        e.handle_key(key(KeyCode::Right));
        e.replace_before_cursor(0, "MSG");
        assert_eq!(e.text(), "MSG hello");
        assert_eq!(e.cursor(), 3);
    }
}
