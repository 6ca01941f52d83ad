//! Pacing: spread datagrams over time at the controller's rate instead of sending a window in
//! one burst that overflows a queue (a socket buffer, a router) on the way.
//!
//! A token bucket in bytes, refilled at the pacing rate. The core's clock ticks in
//! milliseconds, so the bucket holds up to five ticks' worth of the rate (at least a few
//! datagrams): enough to keep a fast path busy between late ticks, small enough not to flood.

use crate::UnixMillis;

/// Ticks of credit the bucket may hold. Five: a sender on a busy machine is not always woken
/// on the next tick, and credit beyond the cap is lost; at slow rates the
/// [`MIN_BURST_DATAGRAMS`] floor decides instead.
const BURST_MS: u64 = 5;
/// Datagrams the bucket may hold at any rate, so a slow rate still sends whole datagrams.
const MIN_BURST_DATAGRAMS: u64 = 4;

/// A token bucket of bytes refilled at the pacing rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    tokens: u64,
    last: UnixMillis,
}

impl Pacer {
    /// A bucket holding one burst at `now`.
    pub fn new(now: UnixMillis, max_datagram: u64) -> Self {
        Self {
            tokens: MIN_BURST_DATAGRAMS * max_datagram,
            last: now,
        }
    }

    fn capacity(rate: u64, max_datagram: u64) -> u64 {
        (rate.saturating_mul(BURST_MS) / 1000).max(MIN_BURST_DATAGRAMS * max_datagram)
    }

    /// Add the credit earned since the last refill at `rate` bytes per second.
    pub fn refill(&mut self, now: UnixMillis, rate: u64, max_datagram: u64) {
        let elapsed = now.millis_since(self.last);
        if elapsed == 0 {
            return;
        }
        self.last = now;
        let earned = rate.saturating_mul(elapsed) / 1000;
        self.tokens = self
            .tokens
            .saturating_add(earned)
            .min(Self::capacity(rate, max_datagram));
    }

    /// Whether a datagram of `size` bytes may leave now.
    pub fn can_send(&self, size: u64) -> bool {
        self.tokens >= size
    }

    /// Spend the credit of a datagram that left.
    pub fn on_sent(&mut self, size: u64) {
        self.tokens = self.tokens.saturating_sub(size);
    }

    /// When enough credit for `size` bytes will have accrued at `rate`.
    pub fn next_send_time(&self, size: u64, rate: u64) -> UnixMillis {
        let missing = size.saturating_sub(self.tokens);
        let ms = missing.saturating_mul(1000).div_ceil(rate.max(1)).max(1);
        self.last.plus_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_spread_over_ticks() {
        let mut p = Pacer::new(UnixMillis(0), 1000);
        p.on_sent(4000);
        assert!(!p.can_send(1000));
        // 1 MB/s earns 1000 bytes per millisecond.
        assert_eq!(p.next_send_time(1000, 1_000_000), UnixMillis(1));
        p.refill(UnixMillis(1), 1_000_000, 1000);
        assert!(p.can_send(1000));
    }

    #[test]
    fn idle_time_does_not_build_an_unbounded_burst() {
        let mut p = Pacer::new(UnixMillis(0), 1000);
        p.refill(UnixMillis(60_000), 1_000_000, 1000);
        // A minute's credit is capped at BURST_MS of the rate (1 MB/s: 1000 bytes per ms).
        let cap = BURST_MS * 1000;
        assert!(p.can_send(cap));
        assert!(!p.can_send(cap + 1));
    }
}
