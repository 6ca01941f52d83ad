//! Round-trip time estimation after RFC 6298 and RFC 9002 §5, in milliseconds.
//!
//! The sender measures each RTT on a packet number acknowledged for the first time (every
//! transmission has its own number, so retransmissions are never ambiguous — Karn's problem
//! does not arise), subtracts the receiver's reported ACK delay, and keeps the smoothed RTT,
//! its variation and the minimum. The probe timeout and the loss-detection time threshold are
//! derived from these.

/// Timer granularity: the clock handed to the core ticks in milliseconds.
pub const GRANULARITY_MS: u64 = 1;

/// Smoothed RTT, RTT variation, latest and minimum RTT.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    latest: u64,
    smoothed: u64,
    var: u64,
    min: u64,
    has_sample: bool,
}

impl RttEstimator {
    /// An estimator that assumes `initial_ms` until the first sample (RFC 9002 §6.2.2).
    pub fn new(initial_ms: u64) -> Self {
        let initial = initial_ms.max(GRANULARITY_MS);
        Self {
            latest: initial,
            smoothed: initial,
            var: initial / 2,
            min: initial,
            has_sample: false,
        }
    }

    /// Feed one sample: `rtt_ms` as measured, `ack_delay_ms` as reported by the peer.
    pub fn update(&mut self, rtt_ms: u64, ack_delay_ms: u64) {
        self.latest = rtt_ms;
        if !self.has_sample {
            self.has_sample = true;
            self.min = rtt_ms;
            self.smoothed = rtt_ms;
            self.var = rtt_ms / 2;
            return;
        }
        self.min = self.min.min(rtt_ms);
        // Only subtract the ACK delay if that does not take the sample below the minimum.
        let adjusted = if rtt_ms >= self.min.saturating_add(ack_delay_ms) {
            rtt_ms - ack_delay_ms
        } else {
            rtt_ms
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (3 * self.var + diff) / 4;
        self.smoothed = (7 * self.smoothed + adjusted) / 8;
    }

    /// Whether any sample was taken yet.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The smoothed RTT (ms).
    pub fn smoothed(&self) -> u64 {
        self.smoothed
    }

    /// The latest sample (ms).
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// The smallest sample seen (ms): the path's propagation delay as best known.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Probe timeout before backoff (RFC 9002 §6.2.1): smoothed + max(4·var, granularity) +
    /// the peer's maximum ACK delay.
    pub fn pto_base(&self, max_ack_delay_ms: u64) -> u64 {
        self.smoothed + (4 * self.var).max(GRANULARITY_MS) + max_ack_delay_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_replaces_the_guess() {
        let mut r = RttEstimator::new(200);
        r.update(40, 0);
        assert_eq!((r.smoothed(), r.min()), (40, 40));
    }

    #[test]
    fn smoothing_follows_rfc_6298_weights() {
        let mut r = RttEstimator::new(200);
        r.update(80, 0);
        r.update(160, 0);
        assert_eq!(r.smoothed(), 90);
        assert_eq!(r.min(), 80);
    }

    #[test]
    fn ack_delay_is_not_subtracted_below_min_rtt() {
        let mut r = RttEstimator::new(200);
        r.update(50, 0);
        r.update(55, 20);
        assert!(r.smoothed() >= 50);
    }
}
