//! Replies: a three-digit code and one or more lines of human-readable text.
//!
//! A one-line reply is `NNN text`. A multi-line reply is any number of `NNN-text` lines followed
//! by one `NNN text` line, all with the same code, as in SMTP and FTP. The first digit says how
//! it went: 2 done, 3 the server wants more input (login dialogue), 4 refused for now (try
//! again later), 5 refused (fix the request).

use std::fmt;

use crate::types::UserName;

use nom::{
    IResult, Parser,
    bytes::complete::take_while_m_n,
    character::complete::one_of,
    combinator::{all_consuming, map_res, rest},
};

/// A reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(u16);

impl Code {
    /// Noted: the `UDP port` declaration before login.
    pub const NOTED: Code = Code(200);
    /// Logged in; the text is the welcome and the list of commands.
    pub const LOGGED_IN: Code = Code(230);
    /// Logged out; the server closes the connection.
    pub const BYE: Code = Code(221);
    /// Help text.
    pub const HELP: Code = Code(214);
    /// The command was carried out.
    pub const OK: Code = Code(250);
    /// Upload approved: where to send and the transfer's id and secret (issue 3).
    pub const UPLOAD_APPROVED: Code = Code(227);
    /// `STARTTLS` accepted: the TLS handshake starts with the next byte (sent in clear).
    pub const READY_FOR_TLS: Code = Code(220);
    /// Send your user name.
    pub const ASK_USER: Code = Code(331);
    /// Send your password.
    pub const ASK_PASSWORD: Code = Code(332);
    /// New user: send the password to create the account with.
    pub const ASK_NEW_PASSWORD: Code = Code(333);
    /// The server is closing the connection (locked out, shutting down, protocol abuse).
    pub const CLOSING: Code = Code(421);
    /// Slow down: the user sent rate-limited commands too fast for too long; this one was
    /// refused (not carried out). Send it again later.
    pub const SLOW_DOWN: Code = Code(450);
    /// 452: the server cannot store a change now (its data folder cannot be written); the
    /// change was not made, and reads keep working.
    pub const CANNOT_STORE: Code = Code(452);
    /// The user name is blocked after too many failed logins; the server closes the connection.
    pub const LOCKED_OUT: Code = Code(435);
    /// That user name cannot log in now; send another user name.
    pub const USER_REFUSED: Code = Code(431);
    /// Wrong password; send the password again.
    pub const WRONG_PASSWORD: Code = Code(432);
    /// That password cannot be used for a new account; send another.
    pub const NEW_PASSWORD_REFUSED: Code = Code(433);
    /// Unknown command.
    pub const UNKNOWN_COMMAND: Code = Code(500);
    /// Malformed arguments; the text shows the usage.
    pub const BAD_ARGUMENTS: Code = Code(501);
    /// The command exists but is not available in this build.
    pub const NOT_AVAILABLE: Code = Code(502);
    /// Line too long or not UTF-8.
    pub const BAD_LINE: Code = Code(503);
    /// A request out of sequence: `STARTTLS` on a connection already encrypted, or after
    /// login (the same 503 as [`Code::BAD_LINE`], as SMTP's "bad sequence of commands").
    pub const BAD_SEQUENCE: Code = Code(503);
    /// A user name sent in clear from an address the server accepts logins from only over
    /// TLS: send `STARTTLS` first (SMTP's 530).
    pub const TLS_REQUIRED: Code = Code(530);
    /// No such message or user.
    pub const NOT_FOUND: Code = Code(550);
    /// The timestamp given is not the message's current one (it changed, or is wrong).
    pub const CONFLICT: Code = Code(551);
    /// Not allowed: someone else's message, a user who blocked you, yourself.
    pub const NOT_PERMITTED: Code = Code(553);
    /// The recipient is not online.
    pub const OFFLINE: Code = Code(554);

    /// A code from its number, if it has three digits with a first digit 1..=5.
    pub fn new(n: u16) -> Option<Code> {
        (100..600).contains(&n).then_some(Code(n))
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// 2xx: success.
    pub fn is_success(self) -> bool {
        self.0 / 100 == 2
    }

    /// 4xx or 5xx: the request was refused.
    pub fn is_error(self) -> bool {
        self.0 >= 400
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// A whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What happened.
    pub code: Code,
    /// The text, one entry a line; at least one line (possibly empty). Lines hold no `\n`.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: Code, text: impl Into<String>) -> Self {
        Self {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply; an empty list becomes one empty line.
    pub fn lines(code: Code, lines: Vec<String>) -> Self {
        let lines = if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        };
        Self { code, lines }
    }

    /// The wire form, every line ending in `\n`.
    ///
    /// Any `\r` or `\n` inside a line is replaced by a space, so a reply can never forge the
    /// end of another.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            render_line(&mut out, self.code, i == last, line);
        }
        out
    }

    /// The text joined with newlines, as a person reads it.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Append one line of a reply to `out`: `NNN-text` or, for the `last`, `NNN text`, with its
/// `\n`. For replies produced a few lines at a time (long listings); [`Reply::render`] is
/// this line after line.
pub fn render_line(out: &mut String, code: Code, last: bool, text: &str) {
    use std::fmt::Write as _;
    let _ = write!(out, "{code}{}", if last { ' ' } else { '-' });
    out.extend(
        text.chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
    );
    out.push('\n');
}

/// One line of a reply, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// The code.
    pub code: Code,
    /// Whether this is the last line of its reply (`NNN ` rather than `NNN-`).
    pub last: bool,
    /// The text after the separator.
    pub text: &'a str,
}

fn code(i: &str) -> IResult<&str, Code> {
    map_res(
        take_while_m_n(3, 3, |c: char| c.is_ascii_digit()),
        |d: &str| {
            d.parse::<u16>()
                .ok()
                .and_then(Code::new)
                .ok_or("not a reply code")
        },
    )
    .parse(i)
}

/// Parse one framed line as a reply line.
pub fn parse_reply_line(line: &str) -> Option<ReplyLine<'_>> {
    let parsed: IResult<&str, (Code, char, &str)> =
        all_consuming((code, one_of(" -"), rest)).parse(line);
    let (_, (code, sep, text)) = parsed.ok()?;
    Some(ReplyLine {
        code,
        last: sep == ' ',
        text,
    })
}

/// Why a reply could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The line is neither a reply line nor an event.
    #[error("the server sent a line that is not a reply: {0:?}")]
    NotAReply(String),
    /// A continuation line changed code midway.
    #[error("the server changed reply code in the middle of a reply ({0} then {1})")]
    MixedCodes(Code, Code),
}

/// Collects `NNN-` lines until the `NNN ` line completes a [`Reply`].
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    pending: Option<Reply>,
}

impl ReplyAssembler {
    /// An assembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one reply line; returns the reply it completes, if any.
    pub fn push(&mut self, line: &str) -> Result<Option<Reply>, ReplyError> {
        let parsed = parse_reply_line(line)
            .ok_or_else(|| ReplyError::NotAReply(line.chars().take(200).collect()))?;
        let reply = match self.pending.take() {
            Some(mut r) => {
                if r.code != parsed.code {
                    return Err(ReplyError::MixedCodes(r.code, parsed.code));
                }
                r.lines.push(parsed.text.to_owned());
                r
            }
            None => Reply {
                code: parsed.code,
                lines: vec![parsed.text.to_owned()],
            },
        };
        if parsed.last {
            Ok(Some(reply))
        } else {
            self.pending = Some(reply);
            Ok(None)
        }
    }

    /// Whether a multi-line reply is half received.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// The first line of the `230` welcome, naming the account as it was created (the user may
/// have typed it in another case: `LEIA` logs in to `leia`).
pub fn welcome_line(user: &UserName) -> String {
    format!("{WELCOME}{user}!")
}

/// The user a [`welcome_line`] names: the client takes its user's own spelling from it.
pub fn welcomed_user(line: &str) -> Option<UserName> {
    let name = line.strip_prefix(WELCOME)?.strip_suffix('!')?;
    UserName::new(name).ok()
}

const WELCOME: &str = "Welcome to huddle, ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_welcome_names_its_user_and_nothing_else_is_taken_for_one() {
        let leia = UserName::new("leia").unwrap();
        let line = welcome_line(&leia);
        assert_eq!(line, "Welcome to huddle, leia!");
        assert_eq!(
            welcomed_user(&line).map(|u| u.as_str().to_owned()),
            Some("leia".into())
        );
        for other in [
            "Welcome to huddle, !",
            "Welcome to huddle, a b!",
            "Welcome to huddle, leia",
            "Welcome, leia!",
        ] {
            assert_eq!(welcomed_user(other), None, "{other}");
        }
    }

    #[test]
    fn renders_single_and_multi_line_replies() {
        assert_eq!(Reply::new(Code::OK, "done").render(), "250 done\n");
        let r = Reply::lines(Code::OK, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(r.render(), "250-a\n250-b\n250 c\n");
    }

    #[test]
    fn assembles_a_multi_line_reply() {
        let mut a = ReplyAssembler::new();
        assert_eq!(a.push("250-first").unwrap(), None);
        assert!(a.is_pending());
        let r = a.push("250 second").unwrap().unwrap();
        assert_eq!(r.lines, vec!["first", "second"]);
        assert!(!a.is_pending());
    }

    #[test]
    fn newlines_inside_text_cannot_forge_lines() {
        let r = Reply::new(Code::OK, "x\n221 bye");
        assert_eq!(r.render(), "250 x 221 bye\n");
    }

    #[test]
    fn rejects_non_replies_and_mixed_codes() {
        let mut a = ReplyAssembler::new();
        assert!(a.push("hello").is_err());
        assert!(a.push("099 x").is_err());
        a.push("250-a").unwrap();
        assert!(matches!(a.push("550 b"), Err(ReplyError::MixedCodes(..))));
    }
}
