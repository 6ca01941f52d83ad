//! huddle on threads and `std::net`.

pub mod udp;
