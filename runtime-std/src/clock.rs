//! The wall clock, read in one place.
//!
//! The core never reads a clock; the runtime hands it this value with every input. Wall-clock
//! milliseconds (not `Instant`) because the same number becomes the timestamps users see; the
//! core itself keeps time from running backwards if the system clock steps back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;

/// Now, in milliseconds since the Unix epoch (zero if the system clock is set before 1970).
pub fn now() -> UnixMillis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// How long from `now` until `deadline`, zero if it has passed.
pub fn until(deadline: UnixMillis, now: UnixMillis) -> Duration {
    Duration::from_millis(deadline.millis_since(now))
}
