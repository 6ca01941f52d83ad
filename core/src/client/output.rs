//! What the client core asks its driver (the terminal or a script) to do.

use bytes::Bytes;

/// How a shown line should look; the terminal picks colours from it, a pipe ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Plain information (welcome, listings).
    Info,
    /// A request succeeded.
    Success,
    /// Something failed or was refused.
    Error,
    /// A post pushed by the server.
    Post,
    /// A private message.
    Private,
    /// Presence and other notices.
    Notice,
}

/// A line (or a few) for the user to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Display {
    /// How it should look.
    pub tone: Tone,
    /// The text; may hold several lines separated by `\n`.
    pub text: String,
    /// Whether it arrived unasked (an event), so a terminal prints it above the line being
    /// typed instead of after it.
    pub pushed: bool,
}

/// What kind of line the user is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A user name.
    UserName,
    /// The password of an existing account (do not echo).
    Password,
    /// A password for a new account (do not echo).
    NewPassword,
    /// The new password again, to catch typing mistakes (interactive only; do not echo).
    ConfirmPassword,
    /// A command, as the given user.
    Command(String),
}

impl Prompt {
    /// The prompt text.
    pub fn text(&self) -> String {
        match self {
            Prompt::UserName => "Username: ".into(),
            Prompt::Password => "Password: ".into(),
            Prompt::NewPassword => "New password: ".into(),
            Prompt::ConfirmPassword => "Confirm password: ".into(),
            Prompt::Command(user) => format!("{user}> "),
        }
    }

    /// Whether what the user types must not be echoed.
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Prompt::Password | Prompt::NewPassword | Prompt::ConfirmPassword
        )
    }
}

/// Why the client stops; the process exit code follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// Logged out normally (`OUT`, or end of input at the command prompt).
    LoggedOut,
    /// Login did not succeed (input ended before it did, or the server refused).
    LoginFailed,
    /// The user name is blocked after too many failed logins.
    LockedOut,
    /// The connection to the server was lost.
    ConnectionLost,
    /// The server broke the protocol.
    ProtocolError,
}

impl ExitStatus {
    /// The process exit code: 0 only after a normal logout. (1 is left for "could not start"
    /// and 2 for command-line usage errors.)
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::LoggedOut => 0,
            ExitStatus::LoginFailed => 3,
            ExitStatus::LockedOut => 4,
            ExitStatus::ConnectionLost => 5,
            ExitStatus::ProtocolError => 6,
        }
    }
}

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// Send these bytes to the server.
    Send(Bytes),
    /// Show this to the user.
    Show(Display),
    /// Ask the user for one line of input.
    Prompt(Prompt),
    /// Stop with this status (after everything before it is done).
    Exit(ExitStatus),
}
