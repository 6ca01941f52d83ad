//! A shared, ordered record of everything observable in one simulation.
//!
//! Two runs with the same seed must produce the same trace (issue 5, scenario 6), and a failing
//! run is easiest to understand from its trace, so every host writes into one.

use std::cell::RefCell;
use std::rc::Rc;

use crate::clock;

/// The trace of a simulation; cheap to clone (all clones share one record).
#[derive(Debug, Clone, Default)]
pub struct Trace(Rc<RefCell<Vec<String>>>);

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `what` happening at `who`, stamped with the simulated time.
    pub fn record(&self, who: &str, what: impl AsRef<str>) {
        self.record_at(clock::elapsed_ms(), who, what);
    }

    /// Record `what` at `ms` simulated milliseconds: for the test body, which runs outside
    /// every host (between `sim.step()` calls) and reads the time from `sim.elapsed()`.
    pub fn record_at(&self, ms: u64, who: &str, what: impl AsRef<str>) {
        let line = format!("{ms:>9} {who}: {}", what.as_ref());
        self.0.borrow_mut().push(line);
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The last `n` lines, to print when a run fails.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.0.borrow();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }
}
