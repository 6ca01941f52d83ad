//! The simulated wall clock handed to the core.
//!
//! The core wants milliseconds since the Unix epoch ([`UnixMillis`]). Inside a simulation
//! that is a fixed epoch plus the simulated time elapsed. We read it through
//! [`turmoil::since_epoch`], which is tokio's paused clock accumulated across host restarts:
//! a bare `tokio::time::Instant` starts again from zero whenever turmoil rebuilds a crashed
//! host's runtime, which would make a restarted server's clock jump back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;

/// When every simulation starts: 21 Nov 2026 22:26:40 UTC, a whole second, so that simulated
/// seconds and the timestamps the core writes line up.
pub const EPOCH_MILLIS: u64 = 1_795_300_000_000;

/// The simulation epoch as turmoil's builder wants it.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(EPOCH_MILLIS)
}

/// Now, in the simulation. Panics outside a turmoil host, where there is no simulated time.
pub fn now() -> UnixMillis {
    let since = turmoil::since_epoch().expect("the simulated clock is read inside a turmoil host");
    UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the simulation started.
pub fn elapsed_ms() -> u64 {
    now().0.saturating_sub(EPOCH_MILLIS)
}

/// The instant `ms` milliseconds after the simulation started.
pub fn at(ms: u64) -> UnixMillis {
    UnixMillis(EPOCH_MILLIS + ms)
}

/// Sleep until the simulated clock reads `t` (at once if it already does).
pub async fn sleep_until(t: UnixMillis) {
    let wait = t.millis_since(now());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}
