//! huddle on threads and `std::net`: a thin driver of sockets, files and time around
//! `huddle-core`. It decides nothing; every rule lives in the core.

pub mod client;
pub mod clock;
pub mod files;
