//! The rate controller: BBR-style delivery-rate probing (after BBR v1, draft-cardwell-iccrg-bbr).
//!
//! Why not loss-based AIMD: on a path that loses 5–20 % of datagrams at random, halving the
//! window at every loss collapses the rate to almost nothing although the path has capacity.
//! Instead the sender measures how fast the path *delivers* (bytes acknowledged per unit of
//! time), keeps the maximum over the last few rounds as the bottleneck bandwidth, and paces at
//! that rate times a gain: above one briefly to probe for more, below one briefly to drain
//! the queue it may have built. Random loss lowers the measured rate only by the loss
//! fraction; a slow bottleneck caps the measured rate, so the sender never floods it.
//!
//! States: `Startup` (gain 2.89 until the rate stops growing by 25 % for three rounds),
//! `Drain` (gain 1/2.89 until the queue built in startup is gone), then `ProbeBw`, cycling
//! gains 1.25, 0.75, 1, 1, 1, 1, 1, 1. The congestion window caps data in flight at twice the
//! bandwidth-delay product, plus allowances for jitter and for a few sends in progress.
//!
//! Not implemented from BBR: ProbeRTT (transfers are short compared with its 10-second
//! period), and loss-based bounds of BBR v2.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::MAX_BATCH_BYTES;
use crate::UnixMillis;

const STARTUP_GAIN_X1000: u64 = 2885;
const PROBE_GAINS_X1000: [u64; 8] = [1250, 750, 1000, 1000, 1000, 1000, 1000, 1000];
const CWND_GAIN_X1000: u64 = 2000;
/// A startup round losing more than this share (in thousandths) of what it sent ends
/// startup: random loss up to 20 % is tolerated, an overflowing bottleneck queue is not.
const STARTUP_LOSS_EXIT_X1000: u64 = 300;
const BTL_BW_WINDOW_ROUNDS: u64 = 10;
const INITIAL_WINDOW_DATAGRAMS: u64 = 32;
const MIN_WINDOW_DATAGRAMS: u64 = 4;
/// Sends' worth of extra in-flight allowance (BBR's 3 × send quantum, see
/// `RateController::send_quantum`): one send in the socket, one being handled by the
/// receiver, one waiting for its delayed ACK.
///
/// Why not 3 ms' worth whatever the rate, plus up to 10 ms of jitter, as before: on loopback
/// the minimum RTT reads one tick, and that allowance let the sender keep 15 ms of data queued
/// in front of a receiver that was busy anyway. The queue fed itself (queued datagrams raise
/// the smoothed RTT, which widened the window), held up to the whole receive window behind
/// each hole under loss and pushed both sides' buffers out of the caches (see the README's
/// bench section for what `huddle bench udp` measured with each allowance).
const SEND_QUANTA: u64 = 3;
/// Jitter always allowed for, in ms, however short the minimum RTT. Why: on a path whose
/// round trip is below the clock's millisecond (loopback, a LAN) the minimum reads one tick,
/// while a machine whose cores other work takes makes the receiver wait a scheduler's time
/// slice or two; a window of one more tick then ran dry in every such wait (7-18 % less with
/// both cores busy). 10 ms, as before, let the sender's own queue justify itself.
const JITTER_FLOOR_MS: u64 = 4;
/// Shortest ProbeBW phase: one tick of the millisecond clock is too coarse to probe with.
const MIN_PHASE_MS: u64 = 4;

/// Where the controller is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Doubling per round until the delivery rate stops growing.
    Startup,
    /// Pacing below the estimate until the queue built in startup is gone.
    Drain,
    /// Cruising at the estimate, probing up and down in phases.
    ProbeBw,
}

/// What the sender remembers about the delivery state when it sent a packet.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryState {
    /// Bytes delivered when the packet was sent.
    pub delivered: u64,
    /// When `delivered` last grew, as of sending.
    pub delivered_time: UnixMillis,
    /// Send time of the first packet of the current flight.
    pub first_sent_time: UnixMillis,
    /// Whether the sender had nothing more to send (so samples under-estimate the path).
    pub app_limited: bool,
}

/// One delivery-rate measurement.
#[derive(Debug, Clone, Copy)]
struct RateSample {
    rate: u64,
    prior_delivered: u64,
    app_limited: bool,
}

/// The controller: a bandwidth model and the pacing rate and window derived from it.
#[derive(Debug, Clone)]
pub struct RateController {
    mode: Mode,
    max_datagram: u64,
    max_rate: Option<u64>,
    // Delivery-rate tracking.
    delivered: u64,
    delivered_time: UnixMillis,
    first_sent_time: UnixMillis,
    app_limited_until: u64,
    best_sample: Option<(DeliveryState, UnixMillis)>,
    // Model.
    btl_bw_samples: Vec<(u64, u64)>,
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    full_bw: u64,
    full_bw_rounds: u8,
    min_rtt_ms: Option<u64>,
    initial_rtt_ms: u64,
    cwnd: u64,
    acked_since_update: u64,
    round_delivered: u64,
    round_lost: u64,
    srtt_ms: u64,
    // ProbeBw cycle.
    phase: usize,
    phase_start: UnixMillis,
}

impl RateController {
    /// A controller for datagrams of `max_datagram` bytes, optionally capped at `max_rate`
    /// bytes per second; `seed` picks the first ProbeBw phase so that flows desynchronise.
    pub fn new(
        now: UnixMillis,
        max_datagram: usize,
        initial_rtt_ms: u64,
        max_rate: Option<u64>,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Any phase but the draining one (index 1), as BBR does.
        let phase = match (rng.next_u32() % 7) as usize {
            0 => 0,
            n => n + 1,
        };
        Self {
            mode: Mode::Startup,
            max_datagram: max_datagram as u64,
            max_rate,
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            app_limited_until: 0,
            best_sample: None,
            btl_bw_samples: Vec::new(),
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            full_bw: 0,
            full_bw_rounds: 0,
            min_rtt_ms: None,
            initial_rtt_ms: initial_rtt_ms.max(1),
            cwnd: INITIAL_WINDOW_DATAGRAMS * max_datagram as u64,
            acked_since_update: 0,
            round_delivered: 0,
            round_lost: 0,
            srtt_ms: initial_rtt_ms.max(1),
            phase,
            phase_start: now,
        }
    }

    /// The current mode, for statistics and tests.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bottleneck-bandwidth estimate in bytes per second (0 before the first sample).
    pub fn btl_bw(&self) -> u64 {
        self.btl_bw_samples
            .iter()
            .map(|&(_, bw)| bw)
            .max()
            .unwrap_or(0)
    }

    fn rtt_for_bdp(&self) -> u64 {
        self.min_rtt_ms.unwrap_or(self.initial_rtt_ms).max(1)
    }

    fn pacing_gain(&self) -> u64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN_X1000,
            Mode::Drain => 1_000_000 / STARTUP_GAIN_X1000,
            Mode::ProbeBw => PROBE_GAINS_X1000[self.phase],
        }
    }

    /// Bytes per second to pace at.
    pub fn pacing_rate(&self) -> u64 {
        let bw = self.btl_bw();
        let rate = if bw == 0 {
            // No measurement yet: the initial window per (guessed) round trip, with the gain.
            INITIAL_WINDOW_DATAGRAMS * self.max_datagram * 1000 / self.rtt_for_bdp()
                * STARTUP_GAIN_X1000
                / 1000
        } else {
            bw.saturating_mul(self.pacing_gain()) / 1000
        };
        let floor = MIN_WINDOW_DATAGRAMS * self.max_datagram; // a few datagrams per second
        let rate = rate.max(floor);
        match self.max_rate {
            Some(cap) => rate.min(cap.max(1)),
            None => rate,
        }
    }

    /// Cap the pacing rate at `cap` bytes per second from now on (a share of the client's
    /// cap that changes as uploads start and end).
    pub fn set_max_rate(&mut self, cap: u64) {
        self.max_rate = Some(cap);
    }

    /// Most bytes that may be in flight.
    pub fn cwnd(&self) -> u64 {
        self.cwnd
    }

    /// The window the model asks for: the gain times the bandwidth-delay product (with the
    /// minimum RTT, as BBR does, so that a queue the sender built does not justify a larger
    /// window and a larger queue), plus an allowance for jitter (the smoothed RTT's excess over
    /// the minimum, at most one more minimum RTT, or [`JITTER_FLOOR_MS`] where the minimum is
    /// shorter) and [`SEND_QUANTA`] sends: datagrams delayed by jitter or lost but not yet
    /// declared lost occupy the window too.
    fn target_cwnd(&self) -> u64 {
        let bw = self.btl_bw();
        let min_rtt = self.rtt_for_bdp();
        let jitter = self
            .srtt_ms
            .saturating_sub(min_rtt)
            .min(min_rtt.max(JITTER_FLOOR_MS));
        let bdp = bw.saturating_mul(min_rtt) / 1000;
        let allowance = (bw.saturating_mul(jitter) / 1000)
            .saturating_add(SEND_QUANTA.saturating_mul(self.send_quantum()));
        (bdp.saturating_mul(CWND_GAIN_X1000) / 1000)
            .saturating_add(allowance)
            .max(MIN_WINDOW_DATAGRAMS * self.max_datagram)
    }

    /// What one send carries at this rate, as BBR sizes it: a millisecond's worth, at least
    /// two datagrams and at most one batch (so a slow path is not given a batch of queue);
    /// datagrams larger than half a batch go one to a send.
    fn send_quantum(&self) -> u64 {
        let most = (MAX_BATCH_BYTES as u64).max(self.max_datagram);
        let least = (2 * self.max_datagram).min(most);
        (self.btl_bw() / 1000).clamp(least, most)
    }

    fn update_cwnd(&mut self) {
        let acked = std::mem::take(&mut self.acked_since_update);
        let target = self.target_cwnd();
        if self.mode == Mode::Startup {
            // Slow start: grow by what was acknowledged, as long as the model asks for more.
            if self.cwnd < target || self.delivered < INITIAL_WINDOW_DATAGRAMS * self.max_datagram {
                self.cwnd += acked;
            }
        } else {
            self.cwnd = (self.cwnd + acked).min(target);
        }
        self.cwnd = self.cwnd.max(MIN_WINDOW_DATAGRAMS * self.max_datagram);
    }

    /// Note a packet leaving; returns the delivery state to store with it.
    ///
    /// `app_limited`: the sender has nothing else to send right after this packet (file data
    /// not read yet, flow-control window full, end of file).
    pub fn on_packet_sent(
        &mut self,
        now: UnixMillis,
        bytes_in_flight: u64,
        app_limited: bool,
    ) -> DeliveryState {
        if bytes_in_flight == 0 {
            // A new flight after idleness: do not count the idle time as delivery time.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        if app_limited {
            self.app_limited_until = (self.delivered + bytes_in_flight).max(1);
        }
        DeliveryState {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited_until != 0,
        }
    }

    /// Note a packet of `bytes`, sent at `sent_time` with `state`, acknowledged at `now`.
    pub fn on_packet_acked(
        &mut self,
        state: DeliveryState,
        sent_time: UnixMillis,
        bytes: u64,
        now: UnixMillis,
    ) {
        self.delivered += bytes;
        self.acked_since_update += bytes;
        self.round_delivered += bytes;
        self.delivered_time = now;
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        // The newest-sent packet of an ACK gives the sample (largest prior_delivered); the
        // rate is computed once the whole ACK is counted.
        if self
            .best_sample
            .is_none_or(|(s, _)| state.delivered >= s.delivered)
        {
            self.best_sample = Some((state, sent_time));
        }
    }

    /// Note a packet of `bytes` declared lost.
    pub fn on_packet_lost(&mut self, bytes: u64) {
        self.round_lost += bytes;
    }

    /// Update the model after all packets of one ACK were processed.
    ///
    /// `min_rtt_ms` and `srtt_ms` come from the RTT estimator once it has a sample.
    pub fn on_ack_processed(
        &mut self,
        now: UnixMillis,
        rtt_ms: Option<(u64, u64)>,
        bytes_in_flight: u64,
    ) {
        if let Some((min, srtt)) = rtt_ms {
            self.min_rtt_ms = Some(min);
            self.srtt_ms = srtt;
        }
        let Some((state, sent_time)) = self.best_sample.take() else {
            return;
        };
        let send_elapsed = sent_time.millis_since(state.first_sent_time);
        let ack_elapsed = now.millis_since(state.delivered_time);
        let interval = send_elapsed.max(ack_elapsed).max(1);
        let rate = (self.delivered - state.delivered).saturating_mul(1000) / interval;
        self.first_sent_time = sent_time;
        let sample = RateSample {
            rate,
            prior_delivered: state.delivered,
            app_limited: state.app_limited,
        };
        self.round_start = false;
        if sample.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = self.delivered;
            self.round += 1;
            self.round_start = true;
        }
        if !sample.app_limited || sample.rate >= self.btl_bw() {
            self.btl_bw_samples.push((self.round, sample.rate));
        }
        let oldest = self.round.saturating_sub(BTL_BW_WINDOW_ROUNDS);
        self.btl_bw_samples.retain(|&(r, _)| r > oldest);
        // Keep the filter small: only samples that could still be the maximum matter.
        if self.btl_bw_samples.len() > 64 {
            let max = self.btl_bw();
            let last = self.btl_bw_samples.last().copied();
            self.btl_bw_samples.retain(|&(_, bw)| bw == max);
            if let Some(l) = last {
                self.btl_bw_samples.push(l);
            }
        }

        let mode = self.mode;
        match mode {
            Mode::Startup => {
                let (lost, delivered) = (self.round_lost, self.round_delivered);
                if self.round_start
                    && lost.saturating_mul(1000)
                        > (lost + delivered).saturating_mul(STARTUP_LOSS_EXIT_X1000)
                {
                    self.mode = Mode::Drain;
                } else if self.round_start && !sample.app_limited {
                    let bw = self.btl_bw();
                    if bw >= self.full_bw.saturating_mul(5) / 4 {
                        self.full_bw = bw;
                        self.full_bw_rounds = 0;
                    } else {
                        self.full_bw_rounds += 1;
                        if self.full_bw_rounds >= 3 {
                            self.mode = Mode::Drain;
                        }
                    }
                }
            }
            Mode::Drain => {
                let bdp = self.btl_bw().saturating_mul(self.rtt_for_bdp()) / 1000;
                if bytes_in_flight <= bdp.max(MIN_WINDOW_DATAGRAMS * self.max_datagram) {
                    self.mode = Mode::ProbeBw;
                    self.phase_start = now;
                }
            }
            Mode::ProbeBw => {
                let phase_len = self.rtt_for_bdp().max(MIN_PHASE_MS);
                if now.millis_since(self.phase_start) >= phase_len {
                    self.phase = (self.phase + 1) % PROBE_GAINS_X1000.len();
                    self.phase_start = now;
                }
            }
        }
        if self.round_start {
            self.round_lost = 0;
            self.round_delivered = 0;
        }
        self.update_cwnd();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the model with a path that delivers `rate` bytes/s and return the estimate.
    fn settle(rate: u64) -> RateController {
        settle_on(rate, 10, 10)
    }

    /// As [`settle`], on a path of minimum RTT `min_ms` whose smoothed RTT reads `srtt_ms`:
    /// one round per minimum RTT, `rate × min_ms` bytes delivered in each.
    fn settle_on(rate: u64, min_ms: u64, srtt_ms: u64) -> RateController {
        let mut c = RateController::new(UnixMillis(0), 1000, 100, None, 1);
        let mut now = UnixMillis(0);
        for _ in 0..200 {
            let st = c.on_packet_sent(now, 1, false);
            now = now.plus_millis(min_ms);
            for _ in 0..(rate * min_ms / 1000 / 1000) {
                c.on_packet_acked(st, st.first_sent_time, 1000, now);
            }
            c.on_ack_processed(now, Some((min_ms, srtt_ms)), 0);
        }
        c
    }

    #[test]
    fn estimate_converges_to_the_delivery_rate_and_leaves_startup() {
        let c = settle(10_000_000);
        assert_eq!(c.btl_bw(), 10_000_000);
        assert_eq!(c.mode(), Mode::ProbeBw);
        assert!(c.pacing_rate() >= 7_500_000 && c.pacing_rate() <= 12_500_000);
    }

    #[test]
    fn a_queue_the_sender_built_does_not_widen_the_window() {
        // Loopback at 600 MB/s: the minimum RTT reads one tick, the smoothed one 15 ms
        // because of datagrams queued in front of a busy receiver.
        let c = settle_on(600_000_000, 1, 15);
        assert_eq!(c.btl_bw(), 600_000_000);
        let quanta = SEND_QUANTA * MAX_BATCH_BYTES as u64; // 600 kB a ms: whole batches
        // Twice the BDP, the jitter floor, a few sends: not 15 ms' worth (9 MB).
        assert_eq!(c.cwnd(), 2 * 600_000 + JITTER_FLOOR_MS * 600_000 + quanta);
        assert!(c.cwnd() < 4_000_000, "{} bytes in flight", c.cwnd());
    }

    #[test]
    fn jitter_is_allowed_for_up_to_one_more_minimum_rtt() {
        // 100 MB/s over 20 ms: 10 ms of jitter is carried whole; 40 ms only up to 20 ms.
        let quanta = SEND_QUANTA * MAX_BATCH_BYTES as u64; // 100 kB a ms: whole batches
        let c = settle_on(100_000_000, 20, 30);
        assert_eq!(c.cwnd(), 2 * 2_000_000 + 1_000_000 + quanta);
        let c = settle_on(100_000_000, 20, 60);
        assert_eq!(c.cwnd(), 2 * 2_000_000 + 2_000_000 + quanta);
    }

    #[test]
    fn a_slow_path_gets_sends_of_a_millisecond_not_whole_batches() {
        // 1 MB/s over 50 ms: 1 kB a ms is less than two datagrams, so two datagrams a send.
        let c = settle_on(1_000_000, 50, 50);
        assert_eq!(c.cwnd(), 2 * 50_000 + SEND_QUANTA * 2 * 1000);
        // 20 MB/s over 10 ms: 20 kB a send.
        let c = settle_on(20_000_000, 10, 10);
        assert_eq!(c.cwnd(), 2 * 200_000 + SEND_QUANTA * 20_000);
    }

    #[test]
    fn max_rate_caps_pacing() {
        let mut c = settle(10_000_000);
        c.max_rate = Some(1_000_000);
        assert_eq!(c.pacing_rate(), 1_000_000);
    }
}
