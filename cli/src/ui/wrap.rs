//! Fitting text to the terminal: characters that would steer the terminal made visible, and
//! lines wrapped at word boundaries to the width.
//!
//! Why here and not in the terminal: a terminal wraps at the last column, mid-word, and it
//! cannot tell our status area from the text above it. Lines we wrap ourselves never exceed
//! the width, so the screen knows exactly how many rows everything takes.

use std::ops::Range;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns a tab stands for: tabs are expanded so that widths are known.
const TAB_COLUMNS: usize = 4;

/// A continuation line is indented at most this fraction of the width (as 1/n), so that a deep
/// table column never leaves too little room for text.
const MAX_INDENT_FRACTION: usize = 2;

/// `text` with every control character replaced by a visible stand-in: `^[` for ESC and the
/// other C0 controls, `^?` for DEL, `\u{FFFD}` for C1 controls. Newlines are kept (they
/// separate lines) and tabs become spaces.
///
/// Text shown here comes from other users; one raw ESC would let them move our cursor, recolour
/// the screen or overwrite the line being typed, and would break the row count the status area
/// relies on.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.extend(std::iter::repeat_n(' ', TAB_COLUMNS)),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if (0x80..0xa0).contains(&(c as u32)) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Columns `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

fn char_width(c: char) -> usize {
    UnicodeWidthChar::width(c).unwrap_or(0)
}

/// The longest prefix of `s` that fits in `columns`, and its width.
pub fn take_columns(s: &str, columns: usize) -> (&str, usize) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > columns {
            return (&s[..i], used);
        }
        used += w;
    }
    (s, used)
}

/// `s` cut to `columns`, ending in `…` when something was cut.
pub fn truncate(s: &str, columns: usize) -> String {
    if width(s) <= columns {
        return s.to_string();
    }
    if columns == 0 {
        return String::new();
    }
    let (head, _) = take_columns(s, columns - 1);
    format!("{head}…")
}

/// Where continuation lines of `line` start: under the second column of a table row (text
/// after a run of two or more spaces, as in HELP), else two columns in from the line's own
/// indentation, so a wrapped message reads as one block.
fn hanging_indent(line: &str, columns: usize) -> usize {
    let lead = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[lead..];
    let indent = match rest.find("  ") {
        Some(gap) => {
            let after = rest[gap..].trim_start_matches(' ');
            let col = width(&line[..line.len() - after.len()]);
            if after.is_empty() { lead + 2 } else { col }
        }
        None => lead + 2,
    };
    if indent > columns / MAX_INDENT_FRACTION {
        (lead + 2).min(columns / MAX_INDENT_FRACTION)
    } else {
        indent
    }
}

/// One row of wrapped text: `indent` spaces, then `text[range]`.
///
/// A row is always a contiguous piece of the text (only the spaces where it was broken are
/// left out), so anything found in the text by its byte range — a mention — can be found again
/// in the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Spaces before the text (continuation rows hang under the first).
    pub indent: usize,
    /// The bytes of the text this row shows.
    pub range: Range<usize>,
}

impl Row {
    /// The row as it is printed.
    pub fn render(&self, text: &str) -> String {
        format!("{}{}", " ".repeat(self.indent), &text[self.range.clone()])
    }
}

/// `text` (already [`sanitize`]d) as rows of at most `columns` columns, broken at spaces; a
/// word longer than a whole row is broken where it must be. `columns == 0` (a terminal that
/// does not say its width) leaves every line as it is.
pub fn wrap_rows(text: &str, columns: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut at = 0;
    for line in text.split('\n') {
        wrap_line(text, at..at + line.len(), columns, &mut rows);
        at += line.len() + 1;
    }
    rows
}

/// The row being filled.
struct Open {
    indent: usize,
    /// Where its text starts, once it has any.
    start: Option<usize>,
    end: usize,
    used: usize,
    has_word: bool,
}

impl Open {
    fn continuation(indent: usize, at: usize) -> Self {
        Open {
            indent,
            start: None,
            end: at,
            used: indent,
            has_word: false,
        }
    }

    fn extend(&mut self, from: usize, to: usize, columns: usize) {
        self.start.get_or_insert(from);
        self.end = to;
        self.used += columns;
    }

    fn close(self) -> Row {
        Row {
            indent: self.indent,
            range: self.start.unwrap_or(self.end)..self.end,
        }
    }
}

fn wrap_line(text: &str, line: Range<usize>, columns: usize, rows: &mut Vec<Row>) {
    let s = &text[line.clone()];
    if columns == 0 || width(s) <= columns {
        rows.push(Row {
            indent: 0,
            range: line,
        });
        return;
    }
    let indent = hanging_indent(s, columns);
    let lead = s.len() - s.trim_start_matches(' ').len();
    // An indentation of more than half a row is kept only up to that.
    let kept = lead.min(columns / MAX_INDENT_FRACTION);
    let first = line.start + lead - kept;
    let mut row = Open {
        indent: 0,
        start: Some(first),
        end: line.start + lead,
        used: kept,
        has_word: false,
    };
    let mut pending = 0;
    let mut pushed = false;
    for (off, piece) in split_keep_spaces(&s[lead..]) {
        let pos = line.start + lead + off;
        if piece.starts_with(' ') {
            pending = piece.len();
            continue;
        }
        let w = width(piece);
        // Spaces between words survive; spaces at the start of a continuation row do not.
        let spaces = if row.has_word { pending } else { 0 };
        pending = 0;
        if row.used + spaces + w <= columns {
            row.extend(pos - spaces, pos + piece.len(), spaces + w);
            row.has_word = true;
            continue;
        }
        if row.has_word {
            rows.push(std::mem::replace(&mut row, Open::continuation(indent, pos)).close());
            pushed = true;
        }
        // A word wider than what is left of a fresh row: break it across rows.
        let mut at = pos;
        let mut rest = piece;
        while row.used + width(rest) > columns {
            let (head, w) = take_columns(rest, columns.saturating_sub(row.used));
            let (head, w) = if head.is_empty() {
                // Not even one character fits after the indentation (a double-width character
                // in one column): put it on a row of its own rather than loop.
                let c = rest.chars().next().map_or(0, char::len_utf8);
                (&rest[..c], width(&rest[..c]))
            } else {
                (head, w)
            };
            row.extend(at, at + head.len(), w);
            at += head.len();
            rest = &rest[head.len()..];
            rows.push(std::mem::replace(&mut row, Open::continuation(indent, at)).close());
            pushed = true;
        }
        if !rest.is_empty() {
            row.extend(at, at + rest.len(), width(rest));
            row.has_word = true;
        }
    }
    if row.has_word || !pushed {
        rows.push(row.close());
    }
}

/// `s` as alternating runs of spaces and of everything else, with their byte offsets.
fn split_keep_spaces(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = &s[at..];
        if rest.is_empty() {
            return None;
        }
        let spaces = rest.starts_with(' ');
        let end = rest
            .find(|c: char| (c == ' ') != spaces)
            .unwrap_or(rest.len());
        let piece = (at, &rest[..end]);
        at += end;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(text: &str, columns: usize) -> Vec<String> {
        wrap_rows(text, columns)
            .iter()
            .map(|r| r.render(text))
            .collect()
    }

    fn assert_fits(rows: &[String], columns: usize) {
        for r in rows {
            assert!(width(r) <= columns, "{r:?} is wider than {columns}");
        }
    }

    #[test]
    fn short_lines_are_left_alone() {
        assert_eq!(wrap("hello there", 60), vec!["hello there"]);
        assert_eq!(wrap("a\nb", 60), vec!["a", "b"]);
    }

    #[test]
    fn long_lines_break_between_words_never_inside_one() {
        let text = "Invalid command. Usage: EDT n timestamp message (e.g. EDT 3 21 Nov 2026 22:30:01 new text)";
        for columns in [20, 33, 60, 80] {
            let rows = wrap(text, columns);
            assert_fits(&rows, columns);
            let words: Vec<&str> = rows.iter().flat_map(|r| r.split_whitespace()).collect();
            let original: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(words, original, "a word was broken at {columns} columns");
        }
    }

    #[test]
    fn continuation_rows_hang_under_the_text() {
        let rows = wrap(
            "#3 luke (01 Dec 2026 07:46:05): a message long enough to wrap at forty columns",
            40,
        );
        assert!(rows.len() > 1);
        assert!(rows[1..].iter().all(|r| r.starts_with("  ")), "{rows:?}");
    }

    #[test]
    fn help_rows_wrap_under_their_description_column() {
        let line = format!(
            "  {:<24} {}",
            "RCU [minutes]", "list users who logged in within the last minutes (default 60)"
        );
        let rows = wrap(&line, 60);
        assert_fits(&rows, 60);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1].len() - rows[1].trim_start().len(), 27, "{rows:?}");
    }

    #[test]
    fn a_word_longer_than_the_row_is_broken_and_nothing_is_lost() {
        let word = "x".repeat(250);
        let rows = wrap(&format!("see {word} here"), 60);
        assert_fits(&rows, 60);
        let joined: String = rows.concat().split_whitespace().collect();
        assert_eq!(joined, format!("see{word}here"));
    }

    #[test]
    fn wide_characters_count_double() {
        let text = "日本語のテキスト ".repeat(20);
        let rows = wrap(&text, 30);
        assert_fits(&rows, 30);
        // A double-width character in a one-column terminal still makes progress.
        let rows = wrap("日本", 1);
        assert_eq!(rows.concat(), "日本");
    }

    #[test]
    fn rows_are_ranges_of_the_text() {
        let text = "#3 luke (07:46): yoda, look at this very long message for yoda";
        for columns in [10, 20, 33, 60] {
            for row in wrap_rows(text, columns) {
                let shown = row.render(text);
                assert!(shown.ends_with(&text[row.range.clone()]));
                assert!(width(&shown) <= columns, "{shown:?}");
            }
        }
    }

    #[test]
    fn an_unknown_width_wraps_nothing() {
        let long = "word ".repeat(100);
        assert_eq!(wrap(&long, 0), vec![long]);
    }

    #[test]
    fn control_characters_cannot_steer_the_terminal() {
        let hostile = "hi\x1b[2J\x1b]0;owned\x07\r\u{9b}31m\u{7f}\tend";
        let clean = sanitize(hostile);
        assert!(!clean.chars().any(|c| c.is_control()), "{clean:?}");
        assert_eq!(clean, "hi^[[2J^[]0;owned^G^M\u{fffd}31m^?    end");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("clip.mp4 → luke", 9), "clip.mp4…");
        assert_eq!(truncate("short", 9), "short");
        assert_eq!(width(&truncate("日本語のテキスト", 7)), 7);
    }

    #[test]
    fn an_eight_kib_hostile_line_wraps_into_bounded_rows() {
        let line: String = (0..8192)
            .map(|i| if i % 97 == 0 { ' ' } else { 'é' })
            .collect();
        let rows = wrap(&sanitize(&line), 60);
        assert_fits(&rows, 60);
        // Every row but those that end a broken word is at least half full.
        assert!(rows.len() <= 2 * 8192 / 60 + 1, "{} rows", rows.len());
    }
}
