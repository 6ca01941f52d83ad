//! How pushed events read on the user's screen.

use super::output::Tone;
use crate::proto::event::Event;

/// The text and tone of an event; with `ids`, each post's stable id beside its number
/// (`#3@17`), which a person at a terminal may type (`DLT @17 …`). Scripts get the numbers
/// alone, as the lines read before posts had ids.
pub fn event(e: &Event, ids: bool) -> (Tone, String) {
    let tag = |number: &crate::types::MessageNumber, id: &crate::types::PostId| {
        if ids {
            format!("#{number}@{id}")
        } else {
            format!("#{number}")
        }
    };
    match e {
        Event::Post {
            number,
            at,
            id,
            author,
            edited,
            text,
        } => {
            let edited = if *edited { " (edited)" } else { "" };
            (
                Tone::Post,
                format!("{} {author} ({at}): {text}{edited}", tag(number, id)),
            )
        }
        Event::Edited {
            number,
            at,
            id,
            author,
            text,
        } => (
            Tone::Post,
            format!("{} edited by {author} ({at}): {text}", tag(number, id)),
        ),
        Event::Deleted { number, id, author } => (
            Tone::Notice,
            format!(
                "{author} deleted message {}; later messages moved up one number",
                tag(number, id)
            ),
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
        Event::Upload(g) => (
            Tone::Notice,
            format!(
                "Incoming upload: {} sends {} ({})",
                g.user,
                g.name,
                human_bytes(g.size)
            ),
        ),
        Event::Notice { text } => (Tone::Notice, text.clone()),
        // Taken in by the client itself, never shown; here for completeness.
        Event::Posted { number, id } => (Tone::Notice, format!("your post #{number} is @{id}")),
        Event::Ping { token } => (Tone::Notice, format!("keepalive {token}")),
    }
}

/// A byte count as people read it: `812 B`, `4.2 KiB`, `12.0 MiB`, `1.3 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
