//! huddle on threads and `std::net`: a thin driver of sockets, files and time around
//! `huddle-core`. It decides nothing; every rule lives in the core.
//!
//! - [`datadir`]: the data folder on disk (load at start, durable group-committed writes),
//!   shared with the smol runtime;
//! - [`server`]: the server driver — listener, per-connection reader and writer threads, one
//!   thread owning the core;
//! - [`driver`]: the part of a server driver that does not depend on how bytes move (the
//!   core's batch loop and group commit), shared with the smol runtime together with
//!   [`outbox`] (queues and read gates), [`hasher`] (password hashing workers), [`limits`]
//!   (the descriptor limit) and [`console`];
//! - [`client`]: the client driver and the pieces the smol client shares (input thread, UI
//!   trait, local side of the outputs);
//! - [`files`]: source and part files of uploads and downloads, shared with the smol runtime;
//! - [`clock`]: the wall clock, read in one place;
//! - [`hints`]: operating-system errors in words, once, with what to try next;
//! - [`udp`]: the client's UDP socket and its buffers.

pub mod client;
pub mod clock;
pub mod console;
pub mod datadir;
pub mod driver;
pub mod files;
pub mod hasher;
pub mod hints;
pub mod limits;
pub mod outbox;
pub mod server;
pub mod tls_files;
pub mod udp;

pub use console::LogSink;
pub use datadir::{DataDir, DataDirError};
pub use server::{
    ServerError, ServerHandle, ServerOptions, Stopper, TlsSource, run_server, spawn_server,
};
