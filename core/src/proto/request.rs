//! Commands a logged-in user sends: parsing, rendering, usage.

use std::fmt;

use nom::{
    IResult, Parser,
    bytes::complete::take_while1,
    character::complete::digit1,
    combinator::{all_consuming, map_res},
};

use super::MAX_TEXT;
use super::since::{Since, parse_since};
use super::timestamp::civil_time;
use crate::proto::text::check_message;
use crate::time::CivilTime;
use crate::transfer::names::check_file_name;
use crate::types::{MessageNumber, PostId, PostRef, TextError, UserName, is_name_byte};

/// The verbs of the protocol, for usage messages and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Post to everyone.
    Msg,
    /// Private message.
    Pvt,
    /// Delete own post.
    Dlt,
    /// Edit own post.
    Edt,
    /// Read posts since a time.
    Rdm,
    /// Active users.
    Atu,
    /// Recently logged-in users.
    Rcu,
    /// Block a user.
    Blk,
    /// Unblock a user.
    Unb,
    /// Upload a video file over UDP.
    Upd,
    /// Log out.
    Out,
    /// List commands.
    Help,
}

/// What users and the protocol know of one command: its row in [`COMMANDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command.
    pub command: Command,
    /// The word as users type it (any case is accepted).
    pub word: &'static str,
    /// How to call it, shown with every argument error and in HELP.
    pub usage: &'static str,
    /// A filled-in example, for the commands whose arguments are not obvious.
    pub example: Option<&'static str>,
    /// One line on what it does, for HELP.
    pub summary: &'static str,
    /// Whether it carries a message text (at most [`MAX_TEXT`] bytes).
    pub takes_text: bool,
}

const fn row(
    command: Command,
    word: &'static str,
    usage: &'static str,
    example: Option<&'static str>,
    summary: &'static str,
    takes_text: bool,
) -> CommandSpec {
    CommandSpec {
        command,
        word,
        usage,
        example,
        summary,
        takes_text,
    }
}

/// Every command, one row each, in the order HELP lists them and in the order of the
/// [`Command`] variants: adding a command is a variant, a row here and its parser and handler
/// (which the compiler asks for). HELP, the usage errors, the unknown-command error,
/// [`Command::ALL`] and the completion of command words all come from this table; the test
/// `the_table_has_one_row_per_command_in_order` checks the rows.
pub const COMMANDS: [CommandSpec; 12] = [
    row(
        Command::Msg,
        "MSG",
        "MSG message",
        None,
        "post a message to everyone",
        true,
    ),
    row(
        Command::Pvt,
        "PVT",
        "PVT user message",
        None,
        "send a private message to one user",
        true,
    ),
    row(
        Command::Dlt,
        "DLT",
        "DLT n timestamp",
        Some("DLT 3 21 Nov 2026 22:30:01"),
        "delete your message n",
        false,
    ),
    row(
        Command::Edt,
        "EDT",
        "EDT n timestamp message",
        Some("EDT 3 21 Nov 2026 22:30:01 new text"),
        "edit your message n",
        true,
    ),
    row(
        Command::Rdm,
        "RDM",
        "RDM [time]",
        Some("RDM 21 Nov 2026 22:30:01, RDM 2h"),
        "read posts made after a time: timestamp, 10m, 2h, today",
        false,
    ),
    row(
        Command::Atu,
        "ATU",
        "ATU",
        None,
        "list the other active users",
        false,
    ),
    row(
        Command::Rcu,
        "RCU",
        "RCU [minutes]",
        Some("RCU 30"),
        "list users who logged in within the last minutes (default 60)",
        false,
    ),
    row(
        Command::Blk,
        "BLK",
        "BLK user",
        None,
        "block a user: you stop seeing them and they cannot reach you",
        false,
    ),
    row(
        Command::Unb,
        "UNB",
        "UNB user",
        None,
        "unblock a user",
        false,
    ),
    row(
        Command::Upd,
        "UPD",
        "UPD user file",
        Some("UPD bob clip.mp4"),
        "upload a video file to a user over UDP",
        false,
    ),
    row(Command::Out, "OUT", "OUT", None, "log out", false),
    row(Command::Help, "HELP", "HELP", None, "show this list", false),
];

/// The first line of HELP and of the welcome's list of commands.
pub const HELP_HEADER: &str = "Commands (case-insensitive; timestamps as DD Mon YYYY HH:MM:SS):";

/// The rows of HELP as lines (`  usage  summary`), after [`HELP_HEADER`]: the server's HELP
/// reply and its welcome, and the client's HELP, show the same list.
pub fn help_rows() -> impl Iterator<Item = String> {
    COMMANDS
        .iter()
        .map(|c| format!("  {:<24} {}", c.usage, c.summary))
}

/// The command words, comma-separated, for the unknown-command error.
fn command_words() -> String {
    COMMANDS.map(|c| c.word).join(", ")
}

/// The unknown-command error for `word`, listing the server's commands and then `more` (a
/// client's own, which its HELP shows too). An empty word is a line that starts with a space.
pub fn unknown_command_text(word: &str, more: &[&str]) -> String {
    let mut words = command_words();
    for w in more {
        words.push_str(", ");
        words.push_str(w);
    }
    if word.is_empty() {
        format!(
            "extra space at the start of the line: begin with the command; commands are {words}"
        )
    } else {
        format!("unknown command {word:?}; commands are {words}")
    }
}

impl Command {
    /// Every command, in the order help lists them (the table's order).
    pub const ALL: [Command; COMMANDS.len()] = {
        let mut all = [Command::Msg; COMMANDS.len()];
        let mut i = 0;
        while i < COMMANDS.len() {
            all[i] = COMMANDS[i].command;
            i += 1;
        }
        all
    };

    /// The command's row of [`COMMANDS`] (rows are in variant order: see the table's test).
    pub fn spec(self) -> &'static CommandSpec {
        &COMMANDS[self as usize]
    }

    /// The command word as users type it (any case is accepted).
    pub fn word(self) -> &'static str {
        self.spec().word
    }

    /// How to call it, shown with every argument error.
    pub fn usage(self) -> &'static str {
        self.spec().usage
    }

    /// A filled-in example, for the commands whose arguments are not obvious.
    pub fn example(self) -> Option<&'static str> {
        self.spec().example
    }

    /// Whether the command carries a message text (at most [`MAX_TEXT`] bytes).
    pub fn takes_text(self) -> bool {
        self.spec().takes_text
    }

    /// The usage with its example and the text limit, as error messages show it.
    pub fn usage_line(self) -> String {
        let mut line = match self.example() {
            Some(e) => format!("{} (e.g. {e})", self.usage()),
            None => self.usage().to_string(),
        };
        if self.takes_text() {
            line.push_str(&format!("; a message is at most {MAX_TEXT} bytes"));
        }
        line
    }

    /// One line on what it does, for help.
    pub fn summary(self) -> &'static str {
        self.spec().summary
    }

    /// The command named by `word`, in any case.
    pub fn from_word(word: &str) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.word().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A command with validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `MSG message`
    Msg {
        /// The post, one printable line.
        text: String,
    },
    /// `PVT user message`
    Pvt {
        /// Recipient.
        to: UserName,
        /// The message.
        text: String,
    },
    /// `DLT n timestamp` (or `@id`, `n@id` instead of `n`)
    Dlt {
        /// Which post.
        target: PostRef,
        /// The post's current timestamp, as its version.
        at: CivilTime,
    },
    /// `EDT n timestamp message` (or `@id`, `n@id` instead of `n`)
    Edt {
        /// Which post.
        target: PostRef,
        /// The post's current timestamp, as its version.
        at: CivilTime,
        /// The new text.
        text: String,
    },
    /// `RDM [timestamp|10m|2h|3d|today]`
    Rdm {
        /// Read posts strictly later than this.
        since: Since,
    },
    /// `ATU`
    Atu,
    /// `RCU [minutes]`
    Rcu {
        /// Window in minutes; `None` means the default (60).
        minutes: Option<u32>,
    },
    /// `BLK user`
    Blk {
        /// Whom to block.
        user: UserName,
    },
    /// `UNB user`
    Unb {
        /// Whom to unblock.
        user: UserName,
    },
    /// `UPD user size name` on the wire; people type `UPD user file` and the client fills in
    /// the size and keeps only the base name (see [`parse_user_upload`]).
    Upd {
        /// The audience.
        to: UserName,
        /// The file size in bytes.
        size: u64,
        /// The file's base name.
        name: String,
    },
    /// `OUT`
    Out,
    /// `HELP`
    Help,
}

/// Parse `UPD user file` as a person types it: the audience and the file's path.
///
/// The client then checks the file, keeps its base name and sends [`Request::Upd`] with the
/// size. Only the shape is checked here; the path may hold directories and spaces.
pub fn parse_user_upload(line: &str) -> Result<(UserName, String), RequestError> {
    let command = Command::Upd;
    let (_, args) = split_word(line);
    let (user, file) = split_word(args.unwrap_or(""));
    let to = parse_user(command, user, file)?;
    let file = file.unwrap_or("");
    if file.is_empty() {
        return Err(RequestError::args(command, "missing file name"));
    }
    if file.chars().any(char::is_control) {
        return Err(RequestError::args(
            command,
            "the file name contains a control character",
        ));
    }
    Ok((to, file.to_owned()))
}

/// Whether a typed line is an upload command (`UPD …`, any case).
pub fn is_upload_line(line: &str) -> bool {
    split_word(line).0.eq_ignore_ascii_case("UPD")
}

/// Largest `RCU` window: ten years of minutes.
pub const MAX_RCU_MINUTES: u32 = 10 * 366 * 24 * 60;

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An empty line.
    #[error("empty command; type HELP for the list of commands")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("the line is not valid UTF-8 text")]
    NotUtf8,
    /// The first word names no command (empty: the line starts with a space).
    #[error("{}", unknown_command_text(.0, &[]))]
    UnknownCommand(String),
    /// The arguments do not fit the command.
    #[error("{reason}. Usage: {}", command.usage_line())]
    BadArguments {
        /// The command that was recognised.
        command: Command,
        /// What is wrong with its arguments.
        reason: String,
    },
}

impl RequestError {
    fn args(command: Command, reason: impl Into<String>) -> Self {
        RequestError::BadArguments {
            command,
            reason: reason.into(),
        }
    }

    /// `what` came out empty. With more on the line after it, that is two spaces where one
    /// separates (`PVT  luke hi`): said so, rather than that `what` is missing.
    fn missing(command: Command, what: &str, after: Option<&str>) -> Self {
        if after.is_some_and(|a| !a.trim().is_empty()) {
            Self::args(
                command,
                format!("extra space before the {what} (arguments are separated by single spaces)"),
            )
        } else {
            Self::args(command, format!("missing {what}"))
        }
    }

    /// Spaces at the end of a line whose arguments are otherwise right.
    fn trailing_space(command: Command) -> Self {
        Self::args(command, "extra space at the end of the line")
    }
}

fn user_name(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii() && is_name_byte(c as u8)).parse(i)
}

fn parse_user(command: Command, s: &str, after: Option<&str>) -> Result<UserName, RequestError> {
    if s.is_empty() {
        return Err(RequestError::missing(command, "user name", after));
    }
    UserName::new(s)
        .map_err(|e| RequestError::args(command, format!("invalid user name {s:?}: {e}")))
}

fn parse_text(command: Command, s: &str) -> Result<String, RequestError> {
    check_message(s).map_err(|e| match e {
        TextError::Empty => RequestError::args(command, "missing message"),
        other => RequestError::args(command, other.to_string()),
    })?;
    if s.len() > MAX_TEXT {
        return Err(RequestError::args(
            command,
            format!("the message is too long ({} bytes)", s.len()),
        ));
    }
    Ok(s.to_owned())
}

/// Split `args` at its first space: (first word, rest after the space).
fn split_word(args: &str) -> (&str, Option<&str>) {
    match args.split_once(' ') {
        Some((w, rest)) => (w, Some(rest)),
        None => (args, None),
    }
}

fn number_and_time(
    command: Command,
    args: &str,
) -> Result<(PostRef, CivilTime, &str), RequestError> {
    let (first, more) = split_word(args);
    if first.is_empty() {
        return Err(RequestError::missing(command, "message number", more));
    }
    let target = post_ref(first).ok_or_else(|| {
        RequestError::args(
            command,
            format!("{first:?} is not a message number (n, #n, @id or n@id)"),
        )
    })?;
    let target = target.ok_or_else(|| RequestError::args(command, "message numbers start at 1"))?;
    let Some(more) = more else {
        return Err(RequestError::args(command, "missing timestamp"));
    };
    if more.starts_with(' ') && !more.trim().is_empty() {
        return Err(RequestError::missing(command, "timestamp", Some(more)));
    }
    let parsed: IResult<&str, CivilTime> = civil_time.parse(more);
    let (rest, at) = parsed.map_err(|_| {
        RequestError::args(command, "malformed timestamp (write DD Mon YYYY HH:MM:SS)")
    })?;
    Ok((target, at, rest))
}

/// `3`, `#3`, `@17`, `3@17` or `#3@17`: `None` if it is none of these, `Some(None)` for the
/// number 0.
fn post_ref(word: &str) -> Option<Option<PostRef>> {
    let digits = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let word = word.strip_prefix('#').unwrap_or(word);
    let (number, id) = match word.split_once('@') {
        Some((n, i)) => (n, Some(PostId(digits(i)?))),
        None => (word, None),
    };
    if number.is_empty() {
        return id.map(|i| Some(PostRef::Id(i)));
    }
    let n = u32::try_from(digits(number)?).ok()?;
    let Some(n) = MessageNumber::new(n) else {
        return Some(None);
    };
    Some(Some(match id {
        Some(i) => PostRef::Both(n, i),
        None => PostRef::Number(n),
    }))
}

fn no_args(command: Command, args: Option<&str>) -> Result<(), RequestError> {
    match args {
        None => Ok(()),
        Some(a) if a.trim().is_empty() => Ok(()),
        Some(a) => Err(RequestError::args(
            command,
            format!("unexpected argument {a:?}"),
        )),
    }
}

/// Parse one framed line as a command.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let line = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    parse_request_str(line)
}

/// Parse one line of text as a command.
pub fn parse_request_str(line: &str) -> Result<Request, RequestError> {
    if line.trim().is_empty() {
        return Err(RequestError::Empty);
    }
    let (word, args) = split_word(line);
    // A leading space leaves the word empty: `UnknownCommand("")` says it is an extra space.
    let command = Command::from_word(word)
        .ok_or_else(|| RequestError::UnknownCommand(word.chars().take(40).collect()))?;
    match command {
        Command::Msg => Ok(Request::Msg {
            text: parse_text(command, args.unwrap_or(""))?,
        }),
        Command::Pvt => {
            let (user, text) = split_word(args.unwrap_or(""));
            let to = parse_user(command, user, text)?;
            let text = parse_text(command, text.unwrap_or(""))?;
            Ok(Request::Pvt { to, text })
        }
        Command::Dlt => {
            let (number, at, rest) = number_and_time(command, args.unwrap_or(""))?;
            if !rest.is_empty() && rest.trim().is_empty() {
                return Err(RequestError::trailing_space(command));
            }
            if !rest.is_empty() {
                return Err(RequestError::args(
                    command,
                    format!("unexpected text after the timestamp: {rest:?}"),
                ));
            }
            Ok(Request::Dlt { target: number, at })
        }
        Command::Edt => {
            let (number, at, rest) = number_and_time(command, args.unwrap_or(""))?;
            let text = match rest.strip_prefix(' ') {
                Some(t) => parse_text(command, t)?,
                None if rest.is_empty() => {
                    return Err(RequestError::args(command, "missing new message"));
                }
                None => {
                    return Err(RequestError::args(
                        command,
                        "malformed timestamp (write DD Mon YYYY HH:MM:SS)",
                    ));
                }
            };
            Ok(Request::Edt {
                target: number,
                at,
                text,
            })
        }
        Command::Rdm if args.is_some_and(|a| a.starts_with(' ') && !a.trim().is_empty()) => {
            Err(RequestError::missing(command, "time", args))
        }
        Command::Rdm => Ok(Request::Rdm {
            since: parse_since(args).map_err(|e| RequestError::args(command, e.to_string()))?,
        }),
        Command::Atu => no_args(command, args).map(|_| Request::Atu),
        Command::Out => no_args(command, args).map(|_| Request::Out),
        Command::Help => no_args(command, args).map(|_| Request::Help),
        Command::Rcu => match args {
            None => Ok(Request::Rcu { minutes: None }),
            Some(a) => {
                let parsed: IResult<&str, u32> =
                    all_consuming(map_res(digit1, |d: &str| d.parse::<u32>())).parse(a);
                match parsed {
                    Ok((_, m)) if (1..=MAX_RCU_MINUTES).contains(&m) => {
                        Ok(Request::Rcu { minutes: Some(m) })
                    }
                    Ok(_) => Err(RequestError::args(
                        command,
                        format!("minutes must be between 1 and {MAX_RCU_MINUTES}"),
                    )),
                    Err(_) if a.starts_with(' ') && !a.trim().is_empty() => {
                        Err(RequestError::missing(command, "minutes", Some(a)))
                    }
                    Err(_) if a.ends_with(' ') && !a.trim().is_empty() => {
                        Err(RequestError::trailing_space(command))
                    }
                    Err(_) => Err(RequestError::args(
                        command,
                        format!("{a:?} is not a number of minutes"),
                    )),
                }
            }
        },
        Command::Blk | Command::Unb => {
            let a = args.unwrap_or("");
            let parsed: IResult<&str, &str> = all_consuming(user_name).parse(a);
            let user = match parsed {
                Ok((_, u)) => parse_user(command, u, None)?,
                Err(_) if a.is_empty() => {
                    return Err(RequestError::args(command, "missing user name"));
                }
                Err(_) if a.starts_with(' ') && !a.trim().is_empty() => {
                    return Err(RequestError::missing(command, "user name", Some(a)));
                }
                Err(_) if a.ends_with(' ') && !a.trim().is_empty() => {
                    return Err(RequestError::trailing_space(command));
                }
                Err(_) => {
                    return Err(RequestError::args(
                        command,
                        format!("invalid user name {a:?}"),
                    ));
                }
            };
            Ok(if command == Command::Blk {
                Request::Blk { user }
            } else {
                Request::Unb { user }
            })
        }
        Command::Upd => {
            let (user, rest) = split_word(args.unwrap_or(""));
            let to = parse_user(command, user, rest)?;
            let (size, name) = split_word(rest.unwrap_or(""));
            let size = size.parse::<u64>().map_err(|_| {
                RequestError::args(
                    command,
                    "uploads need the huddle client, which sends the file size (wire form: UPD user size name)",
                )
            })?;
            let name = name.unwrap_or("");
            check_file_name(name)
                .map_err(|e| RequestError::args(command, format!("bad file name {name:?}: {e}")))?;
            Ok(Request::Upd {
                to,
                size,
                name: name.to_owned(),
            })
        }
    }
}

impl fmt::Display for Request {
    /// The canonical line for this request (no line ending).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Msg { text } => write!(f, "MSG {text}"),
            Request::Pvt { to, text } => write!(f, "PVT {to} {text}"),
            Request::Dlt { target, at } => write!(f, "DLT {target} {at}"),
            Request::Edt { target, at, text } => write!(f, "EDT {target} {at} {text}"),
            Request::Rdm {
                since: Since::LastLogout,
            } => f.write_str("RDM"),
            Request::Rdm { since } => write!(f, "RDM {since}"),
            Request::Atu => f.write_str("ATU"),
            Request::Rcu { minutes: None } => f.write_str("RCU"),
            Request::Rcu { minutes: Some(m) } => write!(f, "RCU {m}"),
            Request::Blk { user } => write!(f, "BLK {user}"),
            Request::Unb { user } => write!(f, "UNB {user}"),
            Request::Upd { to, size, name } => write!(f, "UPD {to} {size} {name}"),
            Request::Out => f.write_str("OUT"),
            Request::Help => f.write_str("HELP"),
        }
    }
}

impl Request {
    /// The verb of this request.
    pub fn command(&self) -> Command {
        match self {
            Request::Msg { .. } => Command::Msg,
            Request::Pvt { .. } => Command::Pvt,
            Request::Dlt { .. } => Command::Dlt,
            Request::Edt { .. } => Command::Edt,
            Request::Rdm { .. } => Command::Rdm,
            Request::Atu => Command::Atu,
            Request::Rcu { .. } => Command::Rcu,
            Request::Blk { .. } => Command::Blk,
            Request::Unb { .. } => Command::Unb,
            Request::Upd { .. } => Command::Upd,
            Request::Out => Command::Out,
            Request::Help => Command::Help,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_command_in_order() {
        // Every variant, by an exhaustive match: a new variant fails to compile here until it
        // is listed, and then this test fails until it has its row.
        fn listed(c: Command) -> Command {
            match c {
                Command::Msg
                | Command::Pvt
                | Command::Dlt
                | Command::Edt
                | Command::Rdm
                | Command::Atu
                | Command::Rcu
                | Command::Blk
                | Command::Unb
                | Command::Upd
                | Command::Out
                | Command::Help => c,
            }
        }
        for (i, row) in COMMANDS.iter().enumerate() {
            assert_eq!(row.command as usize, i, "{} is out of order", row.word);
            assert_eq!(listed(row.command).spec(), row);
            assert_eq!(Command::from_word(row.word), Some(row.command));
            assert_eq!(row.word, row.word.to_ascii_uppercase());
            assert!(row.usage.starts_with(row.word), "{}", row.usage);
            // HELP, the usage errors and the unknown-command error show every command.
            assert!(help_rows().any(|l| l.trim_start().starts_with(row.usage)));
            let unknown = RequestError::UnknownCommand("XYZ".into()).to_string();
            assert!(unknown.contains(row.word), "{unknown}");
            if let Some(example) = row.example {
                for e in example.split(", ") {
                    // The example is what a user types; UPD's wire form differs (the client
                    // adds the size), so it needs only to be recognised as its command.
                    let recognised = match parse_request_str(e) {
                        Ok(r) => r.command(),
                        Err(RequestError::BadArguments { command, .. })
                            if command == Command::Upd =>
                        {
                            command
                        }
                        Err(err) => panic!("the example {e:?}: {err}"),
                    };
                    assert_eq!(recognised, row.command, "the example {e:?}");
                }
            }
        }
        assert_eq!(Command::ALL.len(), COMMANDS.len());
    }

    fn p(s: &str) -> Result<Request, RequestError> {
        parse_request_str(s)
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(p("msg hi").unwrap(), Request::Msg { text: "hi".into() });
        assert_eq!(p("Atu").unwrap(), Request::Atu);
    }

    #[test]
    fn a_message_is_the_rest_of_the_line_verbatim() {
        let r = p("MSG  two  spaces; #3 \"q\" ✓").unwrap();
        assert_eq!(
            r,
            Request::Msg {
                text: " two  spaces; #3 \"q\" ✓".into()
            }
        );
    }

    #[test]
    fn dlt_and_edt_accept_a_hash_before_the_number() {
        let a = p("DLT #3 21 Nov 2026 22:30:01").unwrap();
        let b = p("DLT 3 21 Nov 2026 22:30:01").unwrap();
        assert_eq!(a, b);
        let e = p("EDT #2 1 Nov 2026 22:30:01 new words").unwrap();
        assert!(matches!(e, Request::Edt { ref text, .. } if text == "new words"));
    }

    #[test]
    fn errors_show_usage() {
        let e = p("PVT bob").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "missing message. Usage: PVT user message; a message is at most {MAX_TEXT} bytes"
            )
        );
        let e = p("DLT x 21 Nov 2026 22:30:01").unwrap_err();
        assert!(
            e.to_string().contains("\"x\" is not a message number"),
            "{e}"
        );
        let e = p("RDM yesterday").unwrap_err();
        assert!(e.to_string().contains("malformed timestamp"), "{e}");
        assert!(matches!(p("FOO bar"), Err(RequestError::UnknownCommand(w)) if w == "FOO"));
        assert!(matches!(
            p("ATU now"),
            Err(RequestError::BadArguments { .. })
        ));
        assert!(matches!(p("MSG"), Err(RequestError::BadArguments { .. })));
        assert!(matches!(p("RCU 0"), Err(RequestError::BadArguments { .. })));
        assert!(matches!(
            p("RCU ten"),
            Err(RequestError::BadArguments { .. })
        ));
        assert!(matches!(
            p("DLT 0 21 Nov 2026 22:30:01"),
            Err(RequestError::BadArguments { .. })
        ));
        assert_eq!(p(""), Err(RequestError::Empty));
        assert_eq!(parse_request(b"MSG \xff"), Err(RequestError::NotUtf8));
    }

    #[test]
    fn an_extra_space_is_named_as_the_problem_not_a_missing_word_or_an_empty_command() {
        let ts = "21 Nov 2026 22:30:01";
        let said = |line: &str| p(line).unwrap_err().to_string();
        let start = said(" MSG x");
        assert!(
            start.starts_with("extra space at the start of the line: begin with the command;"),
            "{start}"
        );
        assert!(
            start.contains("MSG, PVT"),
            "the commands are listed: {start}"
        );
        assert!(matches!(p(" MSG x"), Err(RequestError::UnknownCommand(w)) if w.is_empty()));
        for (line, what) in [
            ("PVT  luke hi", "PVT user message"),
            ("DLT  3 {ts}", "DLT n timestamp"),
            ("EDT  3 {ts} text", "EDT n timestamp message"),
            ("UPD  luke 10 clip.mp4", "UPD user"),
        ] {
            let line = line.replace("{ts}", ts);
            let e = said(&line);
            assert!(
                e.starts_with("extra space before the ")
                    && e.contains("(arguments are separated by single spaces)")
                    && e.contains(&format!("Usage: {what}")),
                "{line:?}: {e}"
            );
        }
        for (line, what) in [
            ("PVT  luke hi", "user name"),
            ("BLK  luke", "user name"),
            ("UNB  luke", "user name"),
            ("DLT  3 {ts}", "message number"),
            ("DLT 3  {ts}", "timestamp"),
            ("EDT 3  {ts} text", "timestamp"),
            ("RCU  5", "minutes"),
            ("RDM  today", "time"),
        ] {
            let line = line.replace("{ts}", ts);
            assert!(
                said(&line).starts_with(&format!("extra space before the {what} ")),
                "{line:?}: {}",
                said(&line)
            );
        }
        for line in ["DLT 3 {ts} ", "BLK luke ", "UNB luke  ", "RCU 5 "] {
            let line = line.replace("{ts}", ts);
            assert!(
                said(&line).starts_with("extra space at the end of the line. Usage: "),
                "{line:?}: {}",
                said(&line)
            );
        }
        // What is truly missing or wrong is still said so.
        assert!(said("PVT").starts_with("missing user name"));
        assert!(said("PVT  ").starts_with("missing user name"));
        assert!(said("BLK").starts_with("missing user name"));
        assert!(said("DLT ").starts_with("missing message number"));
        assert!(said("BLK luke x").starts_with("invalid user name \"luke x\""));
        assert!(said("RCU five").starts_with("\"five\" is not a number of minutes"));
        assert!(said(&format!("DLT 3 {ts} x")).starts_with("unexpected text after the timestamp"));
        assert!(said("FOO").starts_with("unknown command \"FOO\"; commands are MSG, "));
        // A message is the rest of the line: its spaces are its own.
        assert_eq!(
            p("MSG  two spaces").unwrap(),
            Request::Msg {
                text: " two spaces".into()
            }
        );
    }

    #[test]
    fn a_text_longer_than_the_limit_is_refused_with_the_limit_in_the_usage() {
        let longest = "é".repeat(MAX_TEXT / 2);
        assert!(p(&format!("MSG {longest}")).is_ok());
        let e = p(&format!("PVT bob {longest}x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the message is too long ({} bytes). Usage: PVT user message; a message is at most {MAX_TEXT} bytes",
                MAX_TEXT + 1
            )
        );
        assert!(p(&format!("EDT 1 21 Nov 2026 22:30:01 {longest}x")).is_err());
    }

    #[test]
    fn rcu_minutes_are_optional() {
        assert_eq!(p("RCU").unwrap(), Request::Rcu { minutes: None });
        assert_eq!(p("rcu 5").unwrap(), Request::Rcu { minutes: Some(5) });
    }

    #[test]
    fn rendering_is_canonical() {
        assert_eq!(
            p("dlt #3 1 nov 2026 22:30:01").unwrap().to_string(),
            "DLT 3 01 Nov 2026 22:30:01"
        );
    }
}
