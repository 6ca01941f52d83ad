//! The std server over real TCP; the cases are shared with the smol runtime.

use huddle_runtime_std::spawn_server;

#[path = "cases/server_tcp.rs"]
mod server_tcp;
