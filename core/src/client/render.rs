//! How pushed events read on the user's screen.

use super::output::Tone;
use crate::proto::event::Event;

/// The text and tone of an event.
pub fn event(e: &Event) -> (Tone, String) {
    match e {
        Event::Post {
            number,
            at,
            author,
            edited,
            text,
        } => {
            let edited = if *edited { " (edited)" } else { "" };
            (
                Tone::Post,
                format!("#{number} {author} ({at}): {text}{edited}"),
            )
        }
        Event::Edited {
            number,
            at,
            author,
            text,
        } => (
            Tone::Post,
            format!("#{number} edited by {author} ({at}): {text}"),
        ),
        Event::Deleted { number, author } => (
            Tone::Notice,
            format!("{author} deleted message #{number}; later messages moved up one number"),
        ),
        Event::Private { at, from, text } => (
            Tone::Private,
            format!("Private message from {from} ({at}): {text}"),
        ),
        Event::Backlog { hidden, since } => (
            Tone::Notice,
            format!(
                "{hidden} earlier message{} since your last logout not shown; use RDM {since} to read them all",
                if *hidden == 1 { "" } else { "s" }
            ),
        ),
        Event::Online { user } => (Tone::Notice, format!("{user} is now online")),
        Event::Offline { user } => (Tone::Notice, format!("{user} went offline")),
        Event::Notice { text } => (Tone::Notice, text.clone()),
    }
}
