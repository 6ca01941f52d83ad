//! The two faces of the client: a plain one for pipes and scripts, a rich one for people.
//!
//! The rich one is cut by concern: [`session`] decides everything (what is drawn where, what a
//! key means), over small pieces that each do one thing — the line being typed
//! ([`editor`]), the screen's live area ([`screen`]), transfer status lines ([`status`]), text
//! fitted to the width ([`wrap`]), mentions ([`mention`]), completion ([`complete`]), history
//! ([`history`]) and colours ([`palette`]) — while [`term`] only drives it on the real terminal.

mod complete;
mod editor;
mod history;
mod mention;
mod palette;
mod plain;
mod screen;
mod session;
mod status;
mod term;
mod wrap;

pub use history::HistoryConfig;
pub use palette::Palette;
pub use plain::PlainUi;
pub use session::TermConfig;
pub use term::TermUi;
