//! Wire formats.
//!
//! The text protocol between client and server is line-based UTF-8, speakable with `nc`
//! (see `core/PROTOCOL.md`):
//! - [`framing`] cuts a byte stream into lines of at most [`MAX_LINE`] bytes;
//! - [`request`] parses and renders the commands a logged-in user sends;
//! - [`reply`] renders and parses replies: a three-digit code, `NNN-` continuation lines and a
//!   final `NNN ` line, as SMTP and FTP do;
//! - [`event`] renders and parses pushed events, lines starting with `* `, which can never be
//!   mistaken for a reply because a reply line always starts with a digit;
//! - [`timestamp`] parses `DD Mon YYYY HH:MM:SS`;
//! - [`text`] says which characters are unsafe on a terminal and checks new messages.
//!
//! Parsers are nom 8 `complete` parsers run over one whole, already framed line.

pub mod event;
pub mod framing;
pub mod reply;
pub mod request;
pub mod text;
pub mod timestamp;
pub mod upload;

/// Longest request or reply line accepted, in bytes, excluding the line ending.
///
/// 8 KiB holds any message a person types; a longer line is refused with an error and skipped,
/// so one runaway line cannot exhaust the server's memory.
pub const MAX_LINE: usize = 8 * 1024;
