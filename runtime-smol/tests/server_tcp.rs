//! The smol server over real TCP: the std runtime's cases, run against this runtime.

use huddle_runtime_smol::spawn_server;

#[path = "../../runtime-std/tests/cases/server_tcp.rs"]
mod server_tcp;
