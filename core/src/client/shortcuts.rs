//! `DLT n` and `EDT n text`: the forms a person types, which the client completes with the
//! timestamp it last saw for post n (see `seen_posts`) into DESIGN §2's requests.
//!
//! They are tried only when a line is not a valid request as it stands, so `DLT n timestamp`
//! and `EDT n timestamp text` mean what they always meant, and only for a person at a
//! terminal: a script keeps DESIGN §2's exact grammar, where `EDT 1 yesterday text` is a
//! malformed timestamp, not a new text (and piped output gives it the full timestamps). An `EDT` whose text starts like a
//! timestamp (`EDT 3 21 Nov 2026 22:30 text`, a mistyped one) is left to the usual error
//! instead of being read as a new text.

use crate::time::MONTHS;

/// A shortcut a person typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortcut {
    /// `DLT n`
    Dlt(u32),
    /// `EDT n text`
    Edt(u32, String),
}

fn number(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('#').unwrap_or(s);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Whether `text` begins as a timestamp would (`21 Nov …`): a day, then a month's name.
fn starts_like_a_timestamp(text: &str) -> bool {
    let mut words = text.split(' ');
    let day = words.next().unwrap_or("");
    let month = words.next().unwrap_or("");
    !day.is_empty()
        && day.len() <= 2
        && day.bytes().all(|b| b.is_ascii_digit())
        && MONTHS.iter().any(|m| m.eq_ignore_ascii_case(month))
}

/// The shortcut `line` is, if it is one.
pub fn parse(line: &str) -> Option<Shortcut> {
    let (word, args) = line.split_once(' ')?;
    if word.eq_ignore_ascii_case("DLT") {
        return number(args).map(Shortcut::Dlt);
    }
    if word.eq_ignore_ascii_case("EDT") {
        let (n, text) = args.split_once(' ')?;
        let n = number(n)?;
        if text.is_empty() || starts_like_a_timestamp(text) {
            return None;
        }
        return Some(Shortcut::Edt(n, text.to_string()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_forms_are_read_and_nothing_else() {
        assert_eq!(parse("DLT 3"), Some(Shortcut::Dlt(3)));
        assert_eq!(parse("dlt #12"), Some(Shortcut::Dlt(12)));
        assert_eq!(
            parse("EDT 3 there is no try"),
            Some(Shortcut::Edt(3, "there is no try".into()))
        );
        assert_eq!(
            parse("edt #3 2 apples"),
            Some(Shortcut::Edt(3, "2 apples".into()))
        );
        for not in [
            "DLT",
            "DLT ",
            "DLT 0",
            "DLT x",
            "DLT 3 extra",
            "DLT 9999999999",
            "DLT -1",
            "EDT 3",
            "EDT 3 ",
            "EDT x text",
            "EDT 3 21 Nov 2026 22:30 text",
            "EDT 3 1 dec oops",
            "MSG 3 text",
        ] {
            assert_eq!(parse(not), None, "{not:?}");
        }
    }
}
