//! Which characters are unsafe in text shown on a terminal, and the check of a new message.
//!
//! A terminal obeys some characters instead of showing them: control characters (ESC starts
//! the CSI and OSC sequences that clear the screen, set the window title or write the
//! clipboard), bidirectional controls (which make `txt.exe` read as `exe.txt`), and invisible
//! characters (which make two different texts look the same). The server refuses them in new
//! posts, private messages and names ([`check_message`]; names are ASCII by construction); the
//! client shows any that still reach it escaped (`crate::client::sanitize`). Tabs are text.
//!
//! Joiners (U+200C ZWNJ, U+200D ZWJ) are allowed: emoji sequences and several scripts need
//! them.

use crate::types::{TextError, check_text};

/// Why a character must not reach a terminal as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hazard {
    /// A C0 or C1 control character or DEL (tab excepted).
    Control,
    /// A bidirectional control: an embedding, override, isolate or mark.
    Bidi,
    /// A character that shows as nothing: zero-width space, word joiner, byte order mark,
    /// invisible operators, line and paragraph separators, fillers.
    Invisible,
}

/// The hazard `c` is, if any.
pub fn hazard(c: char) -> Option<Hazard> {
    match c {
        '\t' => None,
        c if c.is_control() => Some(Hazard::Control),
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some(Hazard::Bidi),
        '\u{115F}'
        | '\u{1160}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{2060}'..='\u{2064}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}' => Some(Hazard::Invisible),
        _ => None,
    }
}

/// Check the text of a new post or private message: non-empty, not blank (white space only
/// shows as nothing), and no character in it is a [`Hazard`].
pub fn check_message(text: &str) -> Result<(), TextError> {
    check_text(text)?;
    if text.chars().all(char::is_whitespace) {
        return Err(TextError::Blank);
    }
    match text.chars().find_map(|c| hazard(c).map(|h| (c, h))) {
        None => Ok(()),
        Some((c, Hazard::Control)) => Err(TextError::ControlCharacter(c as u32)),
        Some((c, Hazard::Bidi)) => Err(TextError::Bidi(c as u32)),
        Some((c, Hazard::Invisible)) => Err(TextError::Invisible(c as u32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_characters_are_refused_and_ordinary_text_is_not() {
        for bad in [
            "a\u{1b}[2Jb",
            "\u{1b}]52;c;aGk=\u{7}",
            "\u{9b}31m",
            "a\u{7f}",
            "invoice\u{202E}fdp.exe",
            "a\u{2066}b",
            "\u{200F}x",
            "pay\u{200B}pal",
            "\u{FEFF}x",
            "a\u{2028}b",
            "\u{3164}",
        ] {
            assert!(check_message(bad).is_err(), "{bad:?}");
        }
        for good in [
            "do; or do not\tthere is no try",
            "שלום עולם and العربية",
            "👨\u{200D}👩\u{200D}👧 family",
            "می\u{200C}خواهم",
            "café ✓ \u{fffd}",
        ] {
            assert_eq!(check_message(good), Ok(()), "{good:?}");
        }
        assert_eq!(check_message("x\u{202E}y"), Err(TextError::Bidi(0x202E)));
    }

    #[test]
    fn a_blank_message_is_refused_and_inner_spaces_are_kept() {
        for blank in [" ", "   ", "\t", " \t ", "\u{3000}", "\u{a0}\u{2003}"] {
            assert_eq!(check_message(blank), Err(TextError::Blank), "{blank:?}");
        }
        assert_eq!(check_message("  a  "), Ok(()));
    }
}
