//! What the client shows is text, never terminal commands.
//!
//! Whoever sits on the clear-text path (or runs the server) chooses the bytes the client
//! prints. A terminal would obey the control characters among them: ESC starts CSI and OSC
//! sequences (clear the screen, set the window title, write the clipboard with OSC 52), CR
//! rewrites the line, bidirectional controls reorder what is read, invisible characters
//! disguise it. So every line the client shows, and every progress label, is passed through
//! [`neutralise`] on its way out ([`super::Client::poll_output`]): each such character is
//! replaced by its visible escape, `\u{1b}`, so the user sees that something odd arrived and
//! the terminal sees only printable text. Tabs stay, and so do the `\n`s the client itself
//! puts between the lines of a multi-line reply (a network line never holds one).

use std::borrow::Cow;

use crate::proto::text::hazard;

/// `text` with every unsafe character ([`hazard`]) but `\n` written as its escape `\u{…}`.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c != '\n' && hazard(c).is_some();
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Neutralise `text` in place (no allocation when it is already safe).
pub fn neutralise_in_place(text: &mut String) {
    if let Cow::Owned(safe) = neutralise(text) {
        *text = safe;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_become_visible_text() {
        assert_eq!(neutralise("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            neutralise("\u{1b}]52;c;aGVsbG8=\u{7}"),
            "\\u{1b}]52;c;aGVsbG8=\\u{7}"
        );
        assert_eq!(neutralise("\u{9b}31m red"), "\\u{9b}31m red");
        assert_eq!(neutralise("over\rwrite"), "over\\u{d}write");
        assert_eq!(neutralise("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(neutralise("pay\u{200b}pal"), "pay\\u{200b}pal");
    }

    #[test]
    fn a_hostile_server_cannot_reach_the_terminal_through_replies_or_events() {
        use crate::UnixMillis;
        use crate::client::{Client, ClientConfig, ClientOutput};
        use crate::proto::event::Event;
        use crate::time::CivilTime;
        use crate::types::UserName;

        let now = UnixMillis(1_795_300_000_000);
        let mut c = Client::new(ClientConfig::default(), now);
        c.handle_server_bytes(b"331 Hi \x1b]0;owned\x07 there\r\n", now);
        let at = CivilTime {
            day: 21,
            month: 11,
            year: 2026,
            hour: 10,
            minute: 0,
            second: 0,
        };
        let yoda = UserName::new("yoda").unwrap();
        for e in [
            Event::Private {
                at,
                from: yoda.clone(),
                text: "\u{1b}[2J\u{1b}]52;c;cm0gLXJm\u{7}\u{202e}gnp.exe".into(),
            },
            Event::Post {
                number: crate::types::MessageNumber::new(1).unwrap(),
                id: crate::types::PostId(1),
                at,
                author: yoda,
                edited: false,
                text: "\u{9b}2J pay\u{200b}pal\tok".into(),
            },
        ] {
            c.handle_server_bytes(e.render().as_ref(), now);
        }
        let mut shown = String::new();
        while let Some(out) = c.poll_output() {
            if let ClientOutput::Show(d) = out {
                shown.push_str(&d.text);
                shown.push('\n');
            }
        }
        for c in shown.chars() {
            assert!(
                c == '\n' || hazard(c).is_none(),
                "{c:?} reached the terminal: {shown:?}"
            );
        }
        for visible in [
            "\\u{1b}]0;owned\\u{7}",
            "\\u{1b}[2J",
            "\\u{202e}gnp.exe",
            "\\u{9b}2J",
            "pay\\u{200b}pal\tok",
        ] {
            assert!(shown.contains(visible), "{visible} not in {shown:?}");
        }
    }

    #[test]
    fn safe_text_is_untouched_and_neutralising_twice_changes_nothing() {
        for safe in ["a\tb\nc", "שלום 👨\u{200d}👩", "C:\\path\\u{1b}"] {
            assert!(matches!(neutralise(safe), Cow::Borrowed(_)), "{safe:?}");
        }
        let once = neutralise("x\u{1b}y\u{202e}").into_owned();
        assert_eq!(neutralise(&once), once);
    }
}
