//! The wall clock, read in one place.

use std::time::{SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;

/// Now, as the core wants it: milliseconds since the Unix epoch.
pub fn now() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    UnixMillis(ms)
}

/// How long to wait from now until `deadline` (zero if it has passed).
pub fn until(deadline: UnixMillis) -> std::time::Duration {
    std::time::Duration::from_millis(deadline.millis_since(now()))
}
