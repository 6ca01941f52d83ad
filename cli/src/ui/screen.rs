//! The bottom of the terminal, owned by the client: output scrolls above a live area of status
//! lines and the line being typed.
//!
//! ```text
//! #4 luke (07:46): the output scrolls up as usual        ← printed once, then the terminal's
//! Message #5 posted at 01 Dec 2026 07:46:09                 scrollback
//! clip.mp4 → luke  [#######-----]  45%  2.7/6.0 MiB  …   ← live area: redrawn in place
//! yoda> MSG half-typed line_                             ←
//! ```
//!
//! Every change erases the live area (the cursor goes up to its first row and clears to the end
//! of the screen), prints new output where it was, and draws the live area again below it. So
//! the live area needs to know exactly how many rows it takes: status lines are cut to the
//! width, the input row scrolls sideways instead of wrapping, and output is wrapped before it
//! gets here. Nothing is drawn in the last column, where terminals disagree on wrapping.

use std::io::Write;

use anstyle::Style;

use super::palette::Palette;
use super::status::StatusLine;
use super::wrap::{take_columns, truncate, width};

/// Columns assumed when the terminal does not say (a pty nobody sized).
pub const FALLBACK_COLUMNS: usize = 80;

/// Rows assumed when the terminal does not say.
const FALLBACK_ROWS: usize = 24;

/// The fewest columns kept for the typed text, however long the prompt.
const MIN_INPUT_COLUMNS: usize = 8;

/// The terminal's size; 0 columns means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl Size {
    /// Columns to wrap output to; 0 when unknown (then output is not wrapped).
    pub fn wrap_columns(&self) -> usize {
        usize::from(self.cols)
    }

    /// Columns the live area may use: all but the last.
    pub fn live_columns(&self) -> usize {
        match self.cols {
            0 => FALLBACK_COLUMNS - 1,
            c => usize::from(c).saturating_sub(1).max(1),
        }
    }
}

/// The line being typed, as the screen draws it.
#[derive(Debug, Clone, Copy)]
pub struct InputRow<'a> {
    /// The prompt, e.g. `yoda> `.
    pub prompt: &'a str,
    /// What is typed.
    pub chars: &'a [char],
    /// Where the cursor is in `chars`.
    pub cursor: usize,
    /// Whether to show nothing of what is typed (a password).
    pub secret: bool,
}

/// What the live area shows.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// Status lines, already cut to [`Size::live_columns`].
    pub status: &'a [StatusLine],
    /// The line being typed, if a prompt is open.
    pub input: Option<InputRow<'a>>,
}

/// A row of output: text and the style of each part.
pub type StyledRow = Vec<(Style, String)>;

/// The terminal, as far as the client draws on it.
#[derive(Debug)]
pub struct Screen<W: Write> {
    out: W,
    palette: Palette,
    /// Rows from the top of the live area down to the cursor's row.
    live_above: usize,
    /// The first typed character shown (the input row scrolls sideways).
    scroll: usize,
}

impl<W: Write> Screen<W> {
    /// A screen on `out` whose cursor stands at the start of an empty row.
    pub fn new(out: W, palette: Palette) -> Self {
        Self {
            out,
            palette,
            live_above: 0,
            scroll: 0,
        }
    }

    /// What was written (tests read it back through a terminal emulator).
    #[cfg(test)]
    pub fn output(&self) -> &W {
        &self.out
    }

    /// Print rows above the live area, then draw it again.
    pub fn print(&mut self, rows: &[StyledRow], live: &Live, size: Size) {
        let mut buf = Vec::new();
        self.erase_live(&mut buf);
        for row in rows {
            for (style, text) in row {
                write_styled(&mut buf, *style, text);
            }
            buf.extend_from_slice(b"\r\n");
        }
        self.draw_live(&mut buf, live, size);
        self.flush(buf);
    }

    /// Draw the live area again (status changed, resize).
    pub fn redraw(&mut self, live: &Live, size: Size) {
        let mut buf = Vec::new();
        self.erase_live(&mut buf);
        self.draw_live(&mut buf, live, size);
        self.flush(buf);
    }

    /// Draw only the input row (a key was typed): the cursor is on it already.
    pub fn redraw_input(&mut self, live: &Live, size: Size) {
        let Some(input) = live.input else {
            return;
        };
        let mut buf = Vec::new();
        buf.extend_from_slice(b"\x1b[?25l");
        self.draw_input(&mut buf, &input, size);
        buf.extend_from_slice(b"\x1b[?25h");
        self.flush(buf);
    }

    /// A new prompt starts with its text scrolled to the start.
    pub fn reset_scroll(&mut self) {
        self.scroll = 0;
    }

    /// Clear the whole screen (Ctrl-L) and draw the live area at the top.
    pub fn clear(&mut self, live: &Live, size: Size) {
        let mut buf = b"\x1b[H\x1b[2J".to_vec();
        self.live_above = 0;
        self.draw_live(&mut buf, live, size);
        self.flush(buf);
    }

    /// Ring the terminal bell.
    pub fn bell(&mut self) {
        self.flush(b"\x07".to_vec());
    }

    /// Give the terminal back: the live area erased, the cursor at the start of an empty row
    /// and visible.
    pub fn leave(&mut self) {
        let mut buf = Vec::new();
        self.erase_live(&mut buf);
        buf.extend_from_slice(b"\x1b[0m\x1b[?25h");
        self.flush(buf);
    }

    fn flush(&mut self, buf: Vec<u8>) {
        // A terminal that went away cannot be written to; input ends on its own then.
        let _ = self.out.write_all(&buf);
        let _ = self.out.flush();
    }

    fn erase_live(&mut self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"\x1b[?25l\r");
        if self.live_above > 0 {
            buf.extend_from_slice(format!("\x1b[{}A", self.live_above).as_bytes());
        }
        buf.extend_from_slice(b"\x1b[J");
        self.live_above = 0;
    }

    fn draw_live(&mut self, buf: &mut Vec<u8>, live: &Live, size: Size) {
        let columns = size.live_columns();
        // Keep at least the input row on screen, and one row of output above.
        let rows = match size.rows {
            0 => FALLBACK_ROWS,
            r => usize::from(r),
        };
        let room = rows.saturating_sub(2).max(1);
        for line in live.status.iter().take(room) {
            let text = truncate(&line.text, columns);
            write_styled(buf, self.palette.status(line.stalled), &text);
            buf.extend_from_slice(b"\r\n");
            self.live_above += 1;
        }
        if let Some(input) = live.input {
            self.draw_input(buf, &input, size);
        }
        buf.extend_from_slice(b"\x1b[?25h");
    }

    fn draw_input(&mut self, buf: &mut Vec<u8>, input: &InputRow, size: Size) {
        let columns = size.live_columns();
        let prompt = truncate(
            input.prompt,
            columns.saturating_sub(MIN_INPUT_COLUMNS).max(1),
        );
        let room = columns.saturating_sub(width(&prompt));
        buf.extend_from_slice(b"\r");
        write_styled(buf, self.palette.prompt(), &prompt);
        let mut col = width(&prompt);
        if !input.secret {
            let cursor = input.cursor.min(input.chars.len());
            self.scroll = self.scroll.min(cursor);
            // Leave a column for the cursor after the last character.
            while self.scroll < cursor && chars_width(&input.chars[self.scroll..cursor]) >= room {
                self.scroll += 1;
            }
            let visible: String = input.chars[self.scroll..].iter().collect();
            let (shown, _) = take_columns(&visible, room);
            buf.extend_from_slice(shown.as_bytes());
            col += chars_width(&input.chars[self.scroll..cursor]);
        }
        buf.extend_from_slice(b"\x1b[K\r");
        if col > 0 {
            buf.extend_from_slice(format!("\x1b[{col}C").as_bytes());
        }
    }
}

fn chars_width(chars: &[char]) -> usize {
    chars
        .iter()
        .map(|&c| unicode_width::UnicodeWidthChar::width(c).unwrap_or(0))
        .sum()
}

fn write_styled(buf: &mut Vec<u8>, style: Style, text: &str) {
    if style == Style::new() {
        buf.extend_from_slice(text.as_bytes());
    } else {
        buf.extend_from_slice(format!("{style}{text}{style:#}").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Size = Size { cols: 60, rows: 12 };

    fn screen() -> Screen<Vec<u8>> {
        Screen::new(Vec::new(), Palette::new(false))
    }

    fn shown(s: &Screen<Vec<u8>>, size: Size) -> vt100::Parser {
        let mut p = vt100::Parser::new(size.rows, size.cols, 100);
        p.process(s.output());
        p
    }

    fn plain(text: &str) -> StyledRow {
        vec![(Style::new(), text.to_string())]
    }

    fn status(text: &str) -> StatusLine {
        StatusLine {
            text: text.into(),
            stalled: false,
        }
    }

    fn row(p: &vt100::Parser, r: u16) -> String {
        p.screen().contents_between(r, 0, r, p.screen().size().1)
    }

    #[test]
    fn output_goes_above_the_status_and_the_typed_line() {
        let mut s = screen();
        let typed: Vec<char> = "MSG half".chars().collect();
        let input = InputRow {
            prompt: "yoda> ",
            chars: &typed,
            cursor: typed.len(),
            secret: false,
        };
        let bar = [status("clip.mp4 → luke   10%")];
        let live = Live {
            status: &bar,
            input: Some(input),
        };
        s.redraw(&live, SIZE);
        for i in 0..30 {
            let bar = [status(&format!("clip.mp4 → luke   {}%", 10 + i))];
            let live = Live {
                status: &bar,
                input: Some(input),
            };
            if i % 3 == 0 {
                s.print(&[plain(&format!("line {i}"))], &live, SIZE);
            } else {
                s.redraw(&live, SIZE);
            }
        }
        let p = shown(&s, SIZE);
        let rows = SIZE.rows;
        assert_eq!(row(&p, rows - 1), "yoda> MSG half");
        assert_eq!(row(&p, rows - 2), "clip.mp4 → luke   39%");
        assert_eq!(row(&p, rows - 3), "line 27");
        assert_eq!(p.screen().cursor_position(), (rows - 1, 14));
        // One status line on screen, however often it was redrawn.
        let all = p.screen().contents();
        assert_eq!(all.matches("clip.mp4").count(), 1, "{all}");
    }

    #[test]
    fn a_long_typed_line_scrolls_sideways_and_keeps_the_cursor_visible() {
        let mut s = screen();
        let typed: Vec<char> = "MSG ".chars().chain("word ".repeat(40).chars()).collect();
        let live = Live {
            status: &[],
            input: Some(InputRow {
                prompt: "yoda> ",
                chars: &typed,
                cursor: typed.len(),
                secret: false,
            }),
        };
        s.redraw(&live, SIZE);
        let p = shown(&s, SIZE);
        let (r, c) = p.screen().cursor_position();
        assert_eq!(r, 0, "the input row never wraps");
        assert!(c < SIZE.cols, "{c}");
        assert!(row(&p, 0).starts_with("yoda> "));
        assert!(row(&p, 1).is_empty());
    }

    #[test]
    fn a_secret_shows_nothing_typed() {
        let mut s = screen();
        let typed: Vec<char> = "jedi*knight".chars().collect();
        let live = Live {
            status: &[],
            input: Some(InputRow {
                prompt: "Password: ",
                chars: &typed,
                cursor: typed.len(),
                secret: true,
            }),
        };
        s.redraw(&live, SIZE);
        let p = shown(&s, SIZE);
        assert_eq!(row(&p, 0), "Password: ");
        assert_eq!(p.screen().cursor_position(), (0, 10));
    }

    #[test]
    fn leaving_erases_the_live_area() {
        let mut s = screen();
        let bars = [status("a"), status("b")];
        s.print(
            &[plain("kept")],
            &Live {
                status: &bars,
                input: None,
            },
            SIZE,
        );
        s.leave();
        let p = shown(&s, SIZE);
        assert_eq!(p.screen().contents().trim_end(), "kept");
        assert_eq!(p.screen().cursor_position(), (1, 0));
    }
}
