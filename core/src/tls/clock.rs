//! The time rustls sees: the latest `now` our inputs carried, never a clock read.
//!
//! rustls asks a `TimeProvider` for the current time to check certificate validity. Ours
//! answers with the largest [`UnixMillis`] any session sharing it was handed, so a test or a
//! simulation decides what time it is, and time never runs backwards for rustls either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::time_provider::TimeProvider;
use rustls_pki_types::UnixTime;

use crate::time::UnixMillis;

/// The latest input time, shared by the sessions of one configuration.
#[derive(Debug, Default)]
pub(crate) struct InputClock {
    millis: AtomicU64,
}

impl InputClock {
    /// Note an input's time.
    pub(crate) fn observe(&self, now: UnixMillis) {
        self.millis.fetch_max(now.0, Ordering::Relaxed);
    }
}

impl TimeProvider for InputClock {
    fn current_time(&self) -> Option<UnixTime> {
        match self.millis.load(Ordering::Relaxed) {
            // No input yet: rustls then refuses to judge a certificate rather than guess.
            0 => None,
            ms => Some(UnixTime::since_unix_epoch(Duration::from_millis(ms))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_latest_input_and_never_goes_back() {
        let clock = InputClock::default();
        assert_eq!(clock.current_time(), None);
        clock.observe(UnixMillis(5_000));
        clock.observe(UnixMillis(2_000));
        assert_eq!(clock.current_time().map(|t| t.as_secs()), Some(5));
    }
}
