//! How fast a transfer goes and whether it stalled, judged once, in the core, from the bytes
//! it moved and the core's clock — so every UI shows the same rate, ETA and "stalled", and a
//! UI needs no clock or ticker of its own to notice a stall: reports keep coming every
//! [`ProgressConfig::every_ms`] while a transfer runs, moving or not.

use std::collections::VecDeque;

use crate::UnixMillis;

/// How progress is measured and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressConfig {
    /// A report per transfer at least this often while it runs (ms), even when nothing
    /// moved. 200 ms: a bar that moves smoothly, a stall that shows within a blink.
    pub every_ms: u64,
    /// No byte moved for this long (ms) and the transfer reads "stalled" instead of a rate
    /// and an ETA that would only grow. Three seconds: well above the report interval and a
    /// few round trips, well below the 10 s idle timeout, so a person sees the stall before
    /// the transfer gives up.
    pub stall_after_ms: u64,
    /// The rate (and so the ETA) is measured over this last stretch (ms): short enough to
    /// follow a change of speed, long enough not to jump with every report.
    pub rate_window_ms: u64,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            every_ms: 200,
            stall_after_ms: 3_000,
            rate_window_ms: 5_000,
        }
    }
}

/// Samples kept per transfer: bounded whatever the report rate (a window of 5 s at one
/// sample per 200 ms needs 26).
const MAX_SAMPLES: usize = 64;

/// One transfer's measurements.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    /// `(when, bytes done)`, oldest first: the first at most a window old, or the last
    /// before it.
    samples: VecDeque<(UnixMillis, u64)>,
    /// When the byte count last moved (or the meter started).
    moved_at: UnixMillis,
    done: u64,
    /// When the last report went out.
    pub(crate) reported_at: Option<UnixMillis>,
}

/// What a meter says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Bytes per second over the window, once it can be told.
    pub(crate) rate: Option<u64>,
    /// Milliseconds left at that rate.
    pub(crate) eta_ms: Option<u64>,
    /// How long nothing moved, once that is at least the stall threshold.
    pub(crate) stalled_for_ms: Option<u64>,
}

impl Meter {
    /// A meter starting at `now` with `done` bytes (a resume starts above 0).
    pub(crate) fn new(now: UnixMillis, done: u64) -> Self {
        Self {
            samples: VecDeque::from([(now, done)]),
            moved_at: now,
            done,
            reported_at: None,
        }
    }

    /// The count is `done` at `now` (called as often as the count may change).
    pub(crate) fn update(&mut self, now: UnixMillis, done: u64) {
        if done != self.done {
            self.moved_at = now;
            self.done = done;
        }
    }

    /// Keep the count at `now` for the rate (once per report: a fast transfer updates far
    /// more often than the window needs samples).
    pub(crate) fn sample(&mut self, now: UnixMillis, config: &ProgressConfig) {
        self.samples.push_back((now, self.done));
        let start = UnixMillis(now.0.saturating_sub(config.rate_window_ms));
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Rate, ETA and stall at `now`, for a transfer of `total` bytes.
    pub(crate) fn reading(&self, now: UnixMillis, total: u64, config: &ProgressConfig) -> Reading {
        let still = now.millis_since(self.moved_at);
        let stalled = self.done < total && still >= config.stall_after_ms;
        let rate = self.samples.front().and_then(|&(t0, d0)| {
            let span = now.millis_since(t0);
            (span >= config.every_ms.max(1)).then(|| self.done.saturating_sub(d0) * 1000 / span)
        });
        let eta_ms = match rate {
            Some(r) if r > 0 && !stalled => {
                let left = u128::from(total.saturating_sub(self.done));
                Some((left * 1000 / u128::from(r)).min(u128::from(u64::MAX)) as u64)
            }
            _ => None,
        };
        Reading {
            rate: if stalled { None } else { rate },
            eta_ms,
            stalled_for_ms: stalled.then_some(still),
        }
    }

    /// Whether a report is due at `now`.
    pub(crate) fn due(&self, now: UnixMillis, config: &ProgressConfig) -> bool {
        self.reported_at
            .is_none_or(|t| now.millis_since(t) >= config.every_ms)
    }

    /// When the next report is due.
    pub(crate) fn next_due(&self, config: &ProgressConfig) -> Option<UnixMillis> {
        Some(match self.reported_at {
            Some(t) => t.plus_millis(config.every_ms),
            None => self.moved_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(ms: u64) -> UnixMillis {
        UnixMillis(1_000_000 + ms)
    }

    #[test]
    fn a_running_transfer_has_a_rate_and_an_eta() {
        let c = ProgressConfig::default();
        let mut m = Meter::new(at(0), 0);
        for i in 1..=10 {
            m.update(at(i * 500), i * MIB / 2);
            m.sample(at(i * 500), &c);
        }
        let r = m.reading(at(5000), 10 * MIB, &c);
        assert_eq!(r.rate, Some(MIB));
        assert_eq!(r.eta_ms, Some(5000));
        assert_eq!(r.stalled_for_ms, None);
    }

    #[test]
    fn no_progress_for_a_while_is_a_stall_not_an_eta() {
        let c = ProgressConfig::default();
        let mut m = Meter::new(at(0), 0);
        m.update(at(1000), MIB);
        m.sample(at(1000), &c);
        for i in 0..20 {
            m.update(at(1200 + i * 200), MIB);
            m.sample(at(1200 + i * 200), &c);
        }
        let r = m.reading(at(5200), 10 * MIB, &c);
        assert_eq!(r.stalled_for_ms, Some(4200));
        assert_eq!((r.rate, r.eta_ms), (None, None));
        m.update(at(5400), 2 * MIB);
        assert_eq!(m.reading(at(5400), 10 * MIB, &c).stalled_for_ms, None);
        // A finished count is never stalled.
        let done = Meter::new(at(0), 10 * MIB);
        assert_eq!(done.reading(at(60_000), 10 * MIB, &c).stalled_for_ms, None);
    }

    #[test]
    fn a_transfer_that_never_starts_stalls_too_and_too_early_has_no_rate() {
        let c = ProgressConfig::default();
        let m = Meter::new(at(0), 0);
        assert_eq!(m.reading(at(100), MIB, &c).rate, None);
        assert!(m.reading(at(3000), MIB, &c).stalled_for_ms.is_some());
    }

    #[test]
    fn a_long_session_keeps_bounded_samples_and_absurd_sizes_do_not_overflow() {
        let c = ProgressConfig::default();
        let mut m = Meter::new(at(0), 0);
        for i in 0..100_000u64 {
            m.update(at(i), i);
            m.sample(at(i), &c);
        }
        assert!(m.samples.len() <= MAX_SAMPLES);
        let mut big = Meter::new(at(0), 0);
        big.update(at(1000), 1);
        let r = big.reading(at(1000), u64::MAX, &c);
        assert_eq!(r.rate, Some(1));
        assert!(r.eta_ms.is_some());
        let _ = Meter::new(at(0), u64::MAX).reading(at(0), 0, &c);
    }
}
