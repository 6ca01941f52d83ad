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
//! - [`report`] is the presenter's report of how an upload ended (`XFR`, no reply);
//! - [`starttls`] says how a connection upgrades to TLS (the greeting's offer, `STARTTLS`);
//! - [`since`] is what `RDM` reads since (a timestamp, `10m`, `today`, your last logout);
//! - [`timestamp`] parses `DD Mon YYYY HH:MM:SS`;
//! - [`text`] says which characters are unsafe on a terminal and checks new messages.
//!
//! Parsers are nom 8 `complete` parsers run over one whole, already framed line.

pub mod event;
pub mod framing;
pub mod reply;
pub mod report;
pub mod request;
pub mod since;
pub mod starttls;
pub mod text;
pub mod timestamp;
pub mod upload;

/// Longest request or reply line accepted, in bytes, excluding the line ending.
///
/// 8 KiB holds any message a person types; a longer line is refused with an error and skipped,
/// so one runaway line cannot exhaust the server's memory.
pub const MAX_LINE: usize = 8 * 1024;

/// Longest message text (`MSG`, `PVT`, `EDT`), in bytes of UTF-8.
///
/// Every line the server builds around a text — `* POST`, `* EDIT`, `* PVT`, a line of an
/// `RDM` listing — adds at most [`MAX_TEXT_OVERHEAD`] bytes (the longest number, timestamp and
/// user name), so a text of this length still fits in [`MAX_LINE`] and reaches every client,
/// live, at catch-up and by `RDM`.
pub const MAX_TEXT: usize = 8000;

/// The most bytes a line the server sends adds around a message text:
/// `250-#4294967295@18446744073709551615 ` (a number and a post id), a 32-byte user name, `, `,
/// a timestamp, `: ` and ` (edited)` is the longest (102 bytes), with room to spare.
pub const MAX_TEXT_OVERHEAD: usize = 128;

const _: () = assert!(MAX_TEXT + MAX_TEXT_OVERHEAD <= MAX_LINE);

/// Longest line a client accepts from the server: twice [`MAX_LINE`]. Clients may receive
/// longer lines than they may send, so that texts stored by earlier versions (which allowed
/// up to a whole request line of text) still reach them whole.
pub const MAX_SERVER_LINE: usize = 2 * MAX_LINE;
