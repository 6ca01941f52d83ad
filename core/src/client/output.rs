//! What the client core asks its driver (the terminal or a script) to do.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::UnixMillis;
use crate::tls::KnownHost;
use crate::transfer::TransferId;

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
    /// The connection to the server was lost without a word from the server (it crashed,
    /// or the network failed).
    ConnectionLost,
    /// The server ended the session and said why (`421`): it is shutting down, or it closed
    /// a connection that timed out or stopped answering its keepalive.
    ServerClosed,
    /// The server broke the protocol.
    ProtocolError,
    /// The user interrupted the client (Ctrl-C twice while it waited).
    Interrupted,
    /// The server could not be trusted: its certificate changed or could not be checked,
    /// the TLS handshake failed, or it offers no TLS and is not on loopback. Nothing secret
    /// was sent.
    Untrusted,
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
            // As shells report a process ended by SIGINT.
            ExitStatus::Interrupted => 130,
            ExitStatus::ServerClosed => 7,
            ExitStatus::Untrusted => 8,
        }
    }
}

/// A file operation the core needs for an upload or a download; the driver answers with
/// [`super::Client::handle_input`] with [`super::Input::File`] where the operation says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Open `path` for reading as the source of upload `id` (answer only on failure).
    OpenSource {
        /// The upload.
        id: TransferId,
        /// The path the user typed.
        path: String,
    },
    /// Read `len` bytes at `offset` of the source of `id` (answer with the data).
    Read {
        /// The upload.
        id: TransferId,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// Close the source of `id` (no answer).
    CloseSource {
        /// The upload.
        id: TransferId,
    },
    /// Create the file `part` in the download folder, exclusively, for the download's bytes
    /// until it is verified (answer only on failure). The name comes from
    /// `transfer::part_name`, e.g. `yoda_clip.mp4.00c0ffee00c0ffee.part`.
    CreatePart {
        /// The download.
        id: TransferId,
        /// The part file's name.
        part: String,
    },
    /// Write `data` at `offset` of the part file of `id` (answer only on failure).
    Write {
        /// The download.
        id: TransferId,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
    },
    /// Sync the part file of `id` and give it exactly the name `name`, only if no file of that
    /// name exists: never overwrite. Answer [`FileResult::Saved`], or
    /// [`FileResult::NameTaken`] (the core then offers the next name, `name (1).ext`, …).
    Finish {
        /// The download.
        id: TransferId,
        /// The final name to try.
        name: String,
    },
    /// Delete the part file of `id` (no answer).
    Discard {
        /// The download.
        id: TransferId,
    },
    /// Keep the part file of `id` for resuming: flush it, cut it to exactly `held` bytes, sync
    /// it, write `sidecar` beside it as `<part>.resume` (atomically: a temporary name, then
    /// renamed), and close it. No answer; if any of that fails, delete the part instead (a
    /// part without its sidecar is never resumed).
    KeepPart {
        /// The download.
        id: TransferId,
        /// Bytes of the file the part holds, from its start.
        held: u64,
        /// The sidecar's bytes (`transfer::resume::Sidecar::render`).
        sidecar: Bytes,
    },
    /// Look for parts an interrupted download of `saved_as` kept: files named
    /// `transfer::is_part_of(name, saved_as)` that have a sidecar and no running client holds.
    /// Answer [`FileResult::Resumable`] with at most `transfer::resume::MAX_CANDIDATES` of
    /// them, each with at most `transfer::resume::MAX_SIDECAR` bytes of sidecar.
    FindResumable {
        /// The download that may resume one.
        id: TransferId,
        /// The name the download is saved under.
        saved_as: String,
    },
    /// Take the kept part `part` for download `id`: open it for writing, lock it (fail if
    /// another client holds it), remove its sidecar, and cut it to at most `keep` bytes.
    /// Answer [`FileResult::Resumed`] with its length after that, or `Failed`.
    OpenPart {
        /// The download.
        id: TransferId,
        /// The part file's name, from [`FileResult::Resumable`].
        part: String,
        /// Bytes to keep of it.
        keep: u64,
    },
    /// Read `len` bytes at `offset` of the part file of `id` (a resume checks them): answer
    /// [`FileResult::Data`], or `Failed`.
    ReadPart {
        /// The download.
        id: TransferId,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// Delete the part files in the download folder that no running client is writing and
    /// that `transfer::resume::keep_at_start(sidecar, now, max_age_ms)` does not keep (a
    /// crash's leftovers, damaged or old sidecars), and sidecars whose part is gone. Asked
    /// once, when the client starts (no answer).
    RemoveStaleParts {
        /// The core's clock.
        now: UnixMillis,
        /// How old a kept part may be.
        max_age_ms: u64,
    },
}

/// A part an interrupted download kept, as [`FileOp::FindResumable`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPart {
    /// The part file's name in the download folder.
    pub part: String,
    /// Its length on disk.
    pub len: u64,
    /// Its sidecar's bytes.
    pub sidecar: Bytes,
}

/// The driver's answer to a [`FileOp`] or a [`ClientOutput::InspectFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileResult {
    /// The file to upload exists, is a regular file and is readable: its size.
    Inspected {
        /// Size in bytes.
        size: u64,
    },
    /// The bytes a [`FileOp::Read`] asked for.
    Data {
        /// Where they were read.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// The download was saved under this name.
    Saved {
        /// The final file name in the download folder.
        name: String,
    },
    /// A file of the name a [`FileOp::Finish`] offered exists already; nothing changed.
    NameTaken,
    /// The kept parts [`FileOp::FindResumable`] found (perhaps none).
    Resumable(Vec<KeptPart>),
    /// The part [`FileOp::OpenPart`] opened, and its length now.
    Resumed {
        /// Bytes it holds.
        len: u64,
    },
    /// The operation failed.
    Failed(FileProblem),
}

/// Why a file operation failed, as far as the user needs to know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// No such file.
    #[error("no such file")]
    NotFound,
    /// A directory, not a file.
    #[error("it is a directory, not a file")]
    IsDirectory,
    /// Not a regular file (a device, a socket…).
    #[error("it is not a regular file")]
    NotRegular,
    /// Permission denied.
    #[error("permission denied")]
    PermissionDenied,
    /// Anything else the system said.
    #[error("{0}")]
    Other(String),
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We present.
    Upload,
    /// We are the audience.
    Download,
}

/// How far a transfer has come, for a status line: the core judges rate, ETA and stalls, so
/// a UI only draws what it is told.
///
/// While a transfer runs, a report comes at least every `ProgressConfig::every_ms`, moving
/// or not; the last one has [`Phase::Ended`] with the bytes really done and the outcome (the
/// line saying how it ended comes as a [`Display`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Which transfer.
    pub id: TransferId,
    /// Which way.
    pub direction: Direction,
    /// A short label, e.g. `clip.mp4 → bob`.
    pub label: String,
    /// Bytes done (for a download, those received in order, a resume's kept bytes
    /// included; for an upload, those the audience acknowledged).
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Bytes per second over the last few seconds, once it can be told (not while waiting,
    /// starting or stalled).
    pub rate: Option<u64>,
    /// Milliseconds left at that rate.
    pub eta_ms: Option<u64>,
    /// How long nothing has moved, once that is at least `ProgressConfig::stall_after_ms`.
    pub stalled_for_ms: Option<u64>,
    /// What the transfer is doing.
    pub phase: Phase,
}

impl Progress {
    /// Whether this is the last report for this transfer (remove its line).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }
}

/// What a transfer is doing, as its status line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The user is asked whether to take this download.
    Asking,
    /// The presenter waits for the audience to decide.
    Waiting,
    /// A resume is being checked: the kept part hashed, or compared with the file.
    Checking,
    /// Bytes move (or should: see `stalled_for_ms`).
    Moving,
    /// Over.
    Ended(Outcome),
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file arrived, verified.
    Complete,
    /// The audience declined it (or did not answer in time).
    Declined,
    /// Either side cancelled it (or left).
    Cancelled,
    /// It failed (the network, a disk, the file's check).
    Failed,
}

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// Send these datagrams on the client's UDP socket, in one send where the socket has UDP
    /// GSO (quinn-udp's `Transmit { contents: bytes, segment_size, .. }`), else one send per
    /// `segment_size` bytes. Never more than [`super::Client::set_max_segments`] allowed.
    Transmit {
        /// To whom (every datagram of the batch).
        to: SocketAddr,
        /// The datagrams, back to back.
        bytes: Bytes,
        /// Size of each datagram but the last, which may be shorter; `bytes.len()` for one.
        segment_size: usize,
    },
    /// Check the file the user wants to upload; answer with
    /// [`super::Client::handle_input`] with [`super::Input::Inspected`].
    InspectFile {
        /// The path as typed.
        path: String,
    },
    /// A file operation for a transfer.
    File(FileOp),
    /// Transfer progress (a terminal draws a bar; a pipe ignores it).
    Progress(Progress),
    /// Send these bytes to the server (TLS records once the link is upgraded: the core
    /// seals them).
    Send(Bytes),
    /// The server was met for the first time and its certificate is now trusted on first
    /// use: append this pin to the known-hosts file (and fsync it), so that a changed
    /// certificate is refused next time. No answer.
    PinServer(KnownHost),
    /// Show this to the user.
    Show(Display),
    /// Ask the user for one line of input.
    Prompt(Prompt),
    /// The user names the client knows of now, online first, for completion (given whenever
    /// the list changes; a pipe ignores it).
    Users(Vec<KnownUser>),
    /// Stop with this status (after everything before it is done).
    Exit(ExitStatus),
}

/// A user name the client knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownUser {
    /// The name.
    pub name: String,
    /// Whether they are online now, as far as the client heard.
    pub online: bool,
}
