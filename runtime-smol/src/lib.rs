//! huddle on smol and async-io: the same core as the std runtime, driven by async sockets and
//! timers. It decides nothing; every rule lives in the core, and whatever both runtimes need
//! besides moving bytes (the data folder, the input thread, the user interface) is shared from
//! `huddle-runtime-std`.

pub mod client;
pub mod server;

pub use server::{ServerError, ServerHandle, ServerOptions, run_server, spawn_server};
