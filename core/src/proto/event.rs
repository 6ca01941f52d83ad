//! Events the server pushes without being asked: `* KIND fields…`.
//!
//! A reply line always starts with a digit, an event line always with `* `, so a client can
//! tell them apart on every line, even in the middle of its own request.

use std::fmt;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_while1},
    character::complete::{char, digit1},
    combinator::{all_consuming, map, map_res, rest, value},
};

use super::timestamp::civil_time;
use super::upload::{UploadGrant, grant};
use crate::time::CivilTime;
use crate::types::{MessageNumber, PostId, UserName, is_name_byte};

/// A pushed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A post on the board: live, or caught up at login.
    Post {
        /// Its number.
        number: MessageNumber,
        /// Its stable id.
        id: PostId,
        /// Its timestamp.
        at: CivilTime,
        /// Who wrote it.
        author: UserName,
        /// Whether it was edited.
        edited: bool,
        /// The text.
        text: String,
    },
    /// A post was edited; its timestamp is now `at`.
    Edited {
        /// Its number.
        number: MessageNumber,
        /// Its stable id.
        id: PostId,
        /// The new timestamp.
        at: CivilTime,
        /// Who wrote it.
        author: UserName,
        /// The new text.
        text: String,
    },
    /// A post was deleted; later posts moved down by one.
    Deleted {
        /// The number it had.
        number: MessageNumber,
        /// Its stable id.
        id: PostId,
        /// Who wrote (and deleted) it.
        author: UserName,
    },
    /// A private message: live, or stored while the recipient was away.
    Private {
        /// When it was sent.
        at: CivilTime,
        /// Who sent it.
        from: UserName,
        /// The text.
        text: String,
    },
    /// At login, `hidden` older posts since the last logout were not shown.
    Backlog {
        /// How many were left out.
        hidden: u32,
        /// The last logout, to use with `RDM`.
        since: CivilTime,
    },
    /// A user logged in.
    Online {
        /// Who.
        user: UserName,
    },
    /// A user logged out or lost the connection.
    Offline {
        /// Who.
        user: UserName,
    },
    /// A presenter is about to send this client a file over UDP.
    Upload(UploadGrant),
    /// To the author, just before the reply to `MSG`: the number and id of the post (so the
    /// client knows which post "number 3" meant when it later sends `DLT 3 …`).
    Posted {
        /// Its number.
        number: MessageNumber,
        /// Its stable id.
        id: PostId,
    },
    /// Are you there? A client answers `PONG <token>` at once, by itself (the server's
    /// keepalive: see PROTOCOL.md).
    Ping {
        /// What the answer repeats.
        token: u64,
    },
    /// Anything else the server wants its users to know (shutdown, say).
    Notice {
        /// The text.
        text: String,
    },
}

impl fmt::Display for Event {
    /// The wire form without the line ending.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Post {
                number,
                id,
                at,
                author,
                edited,
                text,
            } => {
                let e = if *edited { "yes" } else { "no" };
                write!(f, "* POST {number}@{id} {at} {author} {e} {text}")
            }
            Event::Edited {
                number,
                id,
                at,
                author,
                text,
            } => write!(f, "* EDIT {number}@{id} {at} {author} {text}"),
            Event::Deleted { number, id, author } => {
                write!(f, "* DELETE {number}@{id} {author}")
            }
            Event::Posted { number, id } => write!(f, "* POSTED {number}@{id}"),
            Event::Private { at, from, text } => write!(f, "* PVT {at} {from} {text}"),
            Event::Backlog { hidden, since } => write!(f, "* BACKLOG {hidden} {since}"),
            Event::Online { user } => write!(f, "* ONLINE {user}"),
            Event::Offline { user } => write!(f, "* OFFLINE {user}"),
            Event::Upload(grant) => write!(f, "* {grant}"),
            Event::Notice { text } => write!(f, "* NOTICE {text}"),
            Event::Ping { token } => write!(f, "* PING {token}"),
        }
    }
}

impl Event {
    /// The wire form with its line ending.
    pub fn render(&self) -> String {
        let mut s = self.to_string().replace(['\n', '\r'], " ");
        s.push('\n');
        s
    }
}

fn user(i: &str) -> IResult<&str, UserName> {
    map_res(
        take_while1(|c: char| c.is_ascii() && is_name_byte(c as u8)),
        UserName::new,
    )
    .parse(i)
}

fn number(i: &str) -> IResult<&str, MessageNumber> {
    map_res(digit1, |d: &str| {
        d.parse::<u32>()
            .ok()
            .and_then(MessageNumber::new)
            .ok_or("bad number")
    })
    .parse(i)
}

/// `3@17`: a post's number and id.
fn numbered(i: &str) -> IResult<&str, (MessageNumber, PostId)> {
    map(
        (
            number,
            char('@'),
            map_res(digit1, |d: &str| d.parse::<u64>()),
        ),
        |(n, _, id)| (n, PostId(id)),
    )
    .parse(i)
}

fn text(i: &str) -> IResult<&str, String> {
    map(rest, str::to_owned).parse(i)
}

fn event(i: &str) -> IResult<&str, Event> {
    let post = map(
        (
            tag("POST "),
            numbered,
            char(' '),
            civil_time,
            char(' '),
            user,
            char(' '),
            alt((value(true, tag("yes")), value(false, tag("no")))),
            char(' '),
            text,
        ),
        |(_, (number, id), _, at, _, author, _, edited, _, text)| Event::Post {
            number,
            id,
            at,
            author,
            edited,
            text,
        },
    );
    let edited = map(
        (
            tag("EDIT "),
            numbered,
            char(' '),
            civil_time,
            char(' '),
            user,
            char(' '),
            text,
        ),
        |(_, (number, id), _, at, _, author, _, text)| Event::Edited {
            number,
            id,
            at,
            author,
            text,
        },
    );
    let deleted = map(
        (tag("DELETE "), numbered, char(' '), user),
        |(_, (number, id), _, author)| Event::Deleted { number, id, author },
    );
    let posted = map((tag("POSTED "), numbered), |(_, (number, id))| {
        Event::Posted { number, id }
    });
    let private = map(
        (tag("PVT "), civil_time, char(' '), user, char(' '), text),
        |(_, at, _, from, _, text)| Event::Private { at, from, text },
    );
    let backlog = map(
        (
            tag("BACKLOG "),
            map_res(digit1, |d: &str| d.parse::<u32>()),
            char(' '),
            civil_time,
        ),
        |(_, hidden, _, since)| Event::Backlog { hidden, since },
    );
    let online = map((tag("ONLINE "), user), |(_, user)| Event::Online { user });
    let offline = map((tag("OFFLINE "), user), |(_, user)| Event::Offline { user });
    let notice = map((tag("NOTICE "), text), |(_, text)| Event::Notice { text });
    let ping = map(
        (tag("PING "), map_res(digit1, |d: &str| d.parse::<u64>())),
        |(_, token)| Event::Ping { token },
    );
    let upload = map(grant, Event::Upload);
    let (i, _) = tag("* ").parse(i)?;
    all_consuming(alt((
        posted, post, edited, deleted, private, backlog, online, offline, notice, ping, upload,
    )))
    .parse(i)
}

/// Whether a line is an event line (starts with `* `).
pub fn is_event_line(line: &str) -> bool {
    line.starts_with("* ")
}

/// Parse one framed line as an event.
pub fn parse_event(line: &str) -> Option<Event> {
    event(line).ok().map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::timestamp::parse_civil_time;

    #[test]
    fn a_post_round_trips_with_semicolons_and_unicode() {
        let e = Event::Post {
            number: MessageNumber::new(3).unwrap(),
            id: PostId(17),
            at: parse_civil_time("21 Nov 2026 22:30:01").unwrap(),
            author: UserName::new("yoda").unwrap(),
            edited: false,
            text: "do; or do not ✓ #1".into(),
        };
        assert_eq!(
            e.render(),
            "* POST 3@17 21 Nov 2026 22:30:01 yoda no do; or do not ✓ #1\n"
        );
        assert_eq!(parse_event(e.to_string().as_str()), Some(e));
    }

    #[test]
    fn junk_is_not_an_event() {
        assert_eq!(parse_event("* POST x"), None);
        assert_eq!(parse_event("250 ok"), None);
        assert_eq!(parse_event("* DELETE 3@4 yoda extra"), None);
        assert_eq!(parse_event("* DELETE 3 yoda"), None, "the id is part of it");
    }
}
