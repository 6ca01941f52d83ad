//! The Sans-IO core of huddle.
//!
//! Everything that *decides* anything lives here: how bytes are framed and parsed, who may log
//! in, what a command does, what must be written to disk before a reply may be sent, how a file
//! crosses a lossy UDP path. Nothing in this crate opens a socket, spawns a thread, reads a clock
//! or touches a file. Inputs come in through `handle_*` methods together with the current time;
//! outputs are drained with `poll_*` methods. The runtimes (`huddle-runtime-std`,
//! `huddle-runtime-smol`) and the simulator (`huddle-sim-tests`) are thin loops around it, which
//! is why all three behave the same and a simulation replays exactly from its seed.

pub mod client;
pub mod proto;
pub mod server;
pub mod store;
pub mod time;
pub mod tls;
pub mod transfer;
pub mod types;

pub use time::{Clock, Timestamp, UnixMillis};
pub use types::{MessageNumber, UserName};
