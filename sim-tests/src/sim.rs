//! Seeded simulations: builders, seed lists, and the seed report on failure.
//!
//! Every simulation sets `rng_seed`, a fixed epoch and its duration, so a run replays exactly
//! from its seed. Which seeds run is chosen here, once, for every scenario:
//! - by default a few fixed seeds per scenario, to stay within the test budget;
//! - `HUDDLE_SIM_SEED=<n>` runs that one seed (to replay a failure);
//! - `HUDDLE_SOAK=1` (or any number ≥ 1) runs the soak variant: many more seeds and longer
//!   runs, `HUDDLE_SOAK=<n>` scaling the seed count by n.

use std::time::Duration;

use crate::clock;

/// A turmoil builder with the seed, the epoch and the duration set, 1 ms ticks.
pub fn builder(seed: u64, duration: Duration) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .epoch(clock::epoch())
        .simulation_duration(duration)
        .tick_duration(Duration::from_millis(1));
    b
}

/// The soak factor: 0 normally, n with `HUDDLE_SOAK=n` (`HUDDLE_SOAK=1` for the soak runs).
pub fn soak() -> u64 {
    std::env::var("HUDDLE_SOAK")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The seeds a scenario runs: `quick` of them normally, `per_soak × HUDDLE_SOAK` in a soak,
/// or only `HUDDLE_SIM_SEED` if set. `base` keeps scenarios on different seeds.
pub fn seeds(base: u64, quick: u64, per_soak: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("HUDDLE_SIM_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return vec![seed];
    }
    let n = match soak() {
        0 => quick,
        k => per_soak.saturating_mul(k),
    };
    (0..n)
        .map(|i| base.wrapping_mul(1000).wrapping_add(i))
        .collect()
}

/// Prints the seed (and how to replay it) if the run it guards panics.
pub struct SeedGuard {
    scenario: &'static str,
    seed: u64,
}

impl SeedGuard {
    /// Guard one run of `scenario` with `seed`.
    pub fn new(scenario: &'static str, seed: u64) -> Self {
        Self { scenario, seed }
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation {} failed with seed {}; replay it with HUDDLE_SIM_SEED={} cargo test -p huddle-sim-tests --test {}",
                self.scenario, self.seed, self.seed, self.scenario
            );
        }
    }
}

/// Run the simulation to its end; a failure (a host's error or panic) panics with the seed.
pub fn run(sim: &mut turmoil::Sim<'_>, scenario: &'static str, seed: u64) {
    if let Err(e) = sim.run() {
        panic!("simulation {scenario} with seed {seed} failed: {e}");
    }
}
