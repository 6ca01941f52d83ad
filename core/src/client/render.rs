//! How pushed events read on the user's screen.

use super::output::Tone;
use crate::proto::event::Event;
use crate::time::CivilTime;
use crate::types::{MessageNumber, PostId, UserName};

/// How posts read, in one format wherever they appear — live, caught up at login, after an
/// edit, and in an `RDM` listing (which the server writes the same way):
/// `#3 yoda, 07:46: text` (` (edited)` when edited).
///
/// A person at a terminal sees the short time, with a `Day changed to 01 Dec 2026` line before
/// the first post of each day shown, and each post's stable id beside its number (`#3@17`),
/// which they may type (`DLT @17 …`); a script (piped mode) gets the full timestamp on every
/// line and the numbers alone, `#3 yoda, 01 Dec 2026 07:46:05: text`, so that it can parse a
/// line alone and feed it back to `DLT`, `EDT` or `RDM`.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Short times, day lines and ids (a terminal) rather than full timestamps (a pipe).
    short: bool,
    /// The day of the last post or message shown, as (year, month, day).
    day: Option<(i32, u8, u8)>,
}

impl Timeline {
    /// A timeline for a terminal (`short`) or a pipe.
    pub fn new(short: bool) -> Self {
        Self { short, day: None }
    }

    /// `at` as this timeline writes it, after a day line if the day changed.
    fn time(&mut self, at: &CivilTime) -> (Option<String>, String) {
        if !self.short {
            return (None, at.to_string());
        }
        let day = (at.year, at.month, at.day);
        let changed = (self.day != Some(day)).then(|| {
            let date = at.to_string();
            format!("Day changed to {}", &date[..11])
        });
        self.day = Some(day);
        (changed, format!("{:02}:{:02}", at.hour, at.minute))
    }

    /// One post's line (after a day line, if the day changed).
    pub fn post(
        &mut self,
        number: MessageNumber,
        id: PostId,
        author: &UserName,
        at: &CivilTime,
        text: &str,
        edited: bool,
    ) -> String {
        let (day, time) = self.time(at);
        let edited = if edited { " (edited)" } else { "" };
        let tag = tag(&number, &id, self.short);
        let line = format!("{tag} {author}, {time}: {text}{edited}");
        match day {
            Some(d) => format!("{d}\n{line}"),
            None => line,
        }
    }

    /// The text and tone of an event.
    pub fn event(&mut self, e: &Event) -> (Tone, String) {
        match e {
            Event::Post {
                number,
                at,
                id,
                author,
                edited,
                text,
            } => (
                Tone::Post,
                self.post(*number, *id, author, at, text, *edited),
            ),
            Event::Edited {
                number,
                at,
                id,
                author,
                text,
            } => (Tone::Post, self.post(*number, *id, author, at, text, true)),
            Event::Private { at, from, text } => {
                let (day, time) = self.time(at);
                let line = format!("Private message from {from}, {time}: {text}");
                let text = match day {
                    Some(d) => format!("{d}\n{line}"),
                    None => line,
                };
                (Tone::Private, text)
            }
            other => event(other, self.short),
        }
    }
}

/// `#3@17` with ids, `#3` without.
fn tag(number: &MessageNumber, id: &PostId, ids: bool) -> String {
    if ids {
        format!("#{number}@{id}")
    } else {
        format!("#{number}")
    }
}

/// The text and tone of an event that is not a post or a private message (those read through
/// a [`Timeline`]); with `ids`, a post's stable id beside its number.
fn event(e: &Event, ids: bool) -> (Tone, String) {
    match e {
        Event::Post { .. } | Event::Edited { .. } | Event::Private { .. } => {
            Timeline::new(ids).event(e)
        }
        Event::Deleted { number, id, author } => (
            Tone::Notice,
            format!(
                "{author} deleted message {}; later messages moved up one number",
                tag(number, id, ids)
            ),
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
