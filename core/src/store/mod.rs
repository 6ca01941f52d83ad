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
//! | `postids.txt` | the stable id of each post, as a journal (see [`postids`]) |
//!
//! Beside each file the loader may write `<file>.rejected` (lines it could not load, byte for
//! byte, each after a `#` line saying when and why: see [`rejected`]) and `<file>.<time>.bak`
//! (the file as it was before the loader rewrote it). [`folder`] reads a whole folder.
//!
//! The server core emits [`Persist`] records; a runtime applies them (append or atomic
//! replace, then fsync) before it sends the replies that follow them.

mod credentials;
pub mod folder;
mod lines;
mod messagelog;
pub mod postids;
pub mod rejected;
mod state;
mod userlog;

pub use credentials::{Credential, Secret, parse_credentials, render_credential};
pub use folder::{DamagedFiles, DataFiles, Folder, Reason, Reserved};
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
    /// The stable id of every post (`postids.txt`). Before [`DataFile::MessageLog`] in this
    /// order on purpose: a runtime applies a batch's files in this order, and the journal of
    /// the ids must be durable before the board changes (see [`postids`]).
    PostIds,
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
    pub const ALL: [DataFile; 7] = [
        DataFile::Credentials,
        DataFile::PostIds,
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
            DataFile::PostIds => "postids.txt",
            DataFile::MessageLog => "messagelog.txt",
            DataFile::UserLog => "userlog.txt",
            DataFile::Inbox => "inbox.txt",
            DataFile::Blocks => "blocks.txt",
            DataFile::Logins => "logins.txt",
        }
    }

    /// The file beside it that holds the lines the loader could not load.
    pub fn rejected_name(self) -> String {
        format!("{}.rejected", self.file_name())
    }
}

impl std::fmt::Display for DataFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A change to the data folder that must be durable before any later output is sent.
///
/// Contents are bytes, not text: a file may hold bytes that are not UTF-8, and every rewrite
/// must keep them exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Append `text` (whole lines, each ending in `\n`) to the file, creating it if needed.
    Append {
        /// Which file.
        file: DataFile,
        /// What to append.
        text: Vec<u8>,
    },
    /// Replace the file's whole content atomically (write a temporary file, fsync, rename).
    Replace {
        /// Which file.
        file: DataFile,
        /// The new content.
        text: Vec<u8>,
    },
    /// Append entries (see [`rejected`]) to `<file>.rejected`, creating it if needed. Comes
    /// before the [`Persist::Replace`] that takes those lines out of `file`, so a crash between
    /// the two loses nothing (the next start rejects them again).
    Reject {
        /// The data file the lines came from.
        file: DataFile,
        /// The entries.
        text: Vec<u8>,
    },
    /// Write a copy of a data file as it was before the loader rewrote it, as the new file
    /// `name` in the data folder (atomically, like a replace).
    Backup {
        /// The data file it is a copy of.
        file: DataFile,
        /// The copy's file name, e.g. `messagelog.txt.2026-11-21_22-30-01.bak`.
        name: String,
        /// The original content, byte for byte.
        text: Vec<u8>,
    },
}

impl Persist {
    /// The data file this record changes or is about.
    pub fn file(&self) -> DataFile {
        match self {
            Persist::Append { file, .. }
            | Persist::Replace { file, .. }
            | Persist::Reject { file, .. }
            | Persist::Backup { file, .. } => *file,
        }
    }
}

/// Something the loader found in one line of a data file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {problem}")]
pub struct LoadWarning {
    /// Which file.
    pub file: DataFile,
    /// One-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a line of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line cannot be loaded. The server refuses to start until it is fixed by hand or
    /// moved to `<file>.rejected` by a repair.
    Damaged {
        /// Why, in words an operator can act on.
        reason: String,
        /// The line, byte for byte, without its `\n`.
        raw: Vec<u8>,
    },
    /// The last line lacks its `\n`: a write cut short by a crash, so never acknowledged. It
    /// is moved to `<file>.rejected` at every start, repair or not.
    Torn {
        /// What survived of the line, byte for byte.
        raw: Vec<u8>,
    },
    /// A post kept under a new number (numbers are positions, 1..n without gaps); the file is
    /// rewritten.
    Renumbered {
        /// The number the file gave it.
        from: u32,
        /// Its number now.
        to: u32,
    },
}

impl Problem {
    /// The line's bytes, for a problem that keeps the line out.
    pub fn rejected_bytes(&self) -> Option<&[u8]> {
        match self {
            Problem::Damaged { raw, .. } | Problem::Torn { raw } => Some(raw),
            Problem::Renumbered { .. } => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Damaged { reason, .. } => f.write_str(reason),
            Problem::Torn { .. } => f.write_str(
                "incomplete last line (a write cut short by a crash; it was never acknowledged)",
            ),
            Problem::Renumbered { from, to } => write!(f, "message #{from} renumbered #{to}"),
        }
    }
}
