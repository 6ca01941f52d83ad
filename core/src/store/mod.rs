//! The record formats of the data folder: parse and render, no I/O.
//!
//! | file | record |
//! |---|---|
//! | `credentials.txt` | `username password` or `username $argon2id$…` |
//! | `messagelog.txt` | `number; timestamp; username; message; edited` |
//! | `userlog.txt` | `number; login timestamp; username; client IP; client UDP port` |
//! | `inbox.txt` | `recipient; timestamp; sender; message` (private messages awaiting delivery) |
//! | `blocks.txt` | `blocker; blocked` |
//! | `logins.txt` | `username; last login; last logout` (`-` when never logged out) |
//!
//! The server core emits [`Persist`] records; a runtime applies them (append or atomic
//! replace, then fsync) before it sends the replies that follow them.

mod credentials;
mod lines;
mod messagelog;
mod state;
mod userlog;

pub use credentials::{Credential, Secret, parse_credentials, render_credential};
pub use messagelog::{PostRecord, parse_messagelog, render_post};
pub use state::{
    BlockRecord, InboxRecord, LoginRecord, parse_blocks, parse_inbox, parse_logins, render_block,
    render_inbox, render_login,
};
pub use userlog::{ActiveRecord, parse_userlog, render_active};

/// The files of the data folder the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataFile {
    /// Accounts.
    Credentials,
    /// The public message board.
    MessageLog,
    /// Who is online now.
    UserLog,
    /// Private messages awaiting an offline recipient.
    Inbox,
    /// Who blocked whom.
    Blocks,
    /// Last login and logout per user.
    Logins,
}

impl DataFile {
    /// Every data file.
    pub const ALL: [DataFile; 6] = [
        DataFile::Credentials,
        DataFile::MessageLog,
        DataFile::UserLog,
        DataFile::Inbox,
        DataFile::Blocks,
        DataFile::Logins,
    ];

    /// Its name inside the data folder.
    pub fn file_name(self) -> &'static str {
        match self {
            DataFile::Credentials => "credentials.txt",
            DataFile::MessageLog => "messagelog.txt",
            DataFile::UserLog => "userlog.txt",
            DataFile::Inbox => "inbox.txt",
            DataFile::Blocks => "blocks.txt",
            DataFile::Logins => "logins.txt",
        }
    }
}

/// A change to the data folder that must be durable before any later output is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Append `text` (whole lines, each ending in `\n`) to the file, creating it if needed.
    Append {
        /// Which file.
        file: DataFile,
        /// What to append.
        text: String,
    },
    /// Replace the file's whole content atomically (write a temporary file, fsync, rename).
    Replace {
        /// Which file.
        file: DataFile,
        /// The new content.
        text: String,
    },
}

impl Persist {
    /// The file this record changes.
    pub fn file(&self) -> DataFile {
        match self {
            Persist::Append { file, .. } | Persist::Replace { file, .. } => *file,
        }
    }
}

/// A problem found while reading a data file; the line is skipped and the server goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct LoadWarning {
    /// File name.
    pub file: &'static str,
    /// One-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}
