//! huddle on smol and async-io: the same core as the std runtime, driven by async sockets and
//! timers. It decides nothing; every rule lives in the core, and whatever both runtimes need
//! besides moving bytes (the server's batch loop and group commit, the outboxes, the data
//! folder, the input thread, the user interface) is shared from `huddle-runtime-std`.
//!
//! - [`server`]: the server on an executor thread of tasks plus the shared core thread; for
//!   thousands of mostly idle connections (see `README.md` for the measurements);
//! - [`client`]: the client, with the std runtime's user interface and transfer files.

pub mod client;
pub mod server;

pub use server::{ServerError, ServerHandle, ServerOptions, run_server, spawn_server};
