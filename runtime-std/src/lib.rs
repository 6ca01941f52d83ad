//! huddle on threads and `std::net`: a thin driver of sockets, files and time around
//! `huddle-core`.
//!
//! - [`datadir`]: the data folder on disk (load at start, durable group-committed writes),
//!   shared with the smol runtime;
//! - [`server`]: the server driver — listener, per-connection reader and writer threads, one
//!   thread owning the core.

mod clock;
mod console;
pub mod datadir;
mod outbox;
pub mod server;

pub use console::LogSink;
pub use datadir::{DataDir, DataDirError};
pub use server::{ServerError, ServerHandle, ServerOptions, run_server, spawn_server};
