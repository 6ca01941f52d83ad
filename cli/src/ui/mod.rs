//! The two faces of the client: a plain one for pipes and scripts, a rich one for people.

mod plain;
mod term;

pub use plain::PlainUi;
pub use term::TermUi;
