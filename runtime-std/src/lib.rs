//! huddle on threads and `std::net`.
