//! Lockout: after `ATTEMPTS` consecutive failed logins a user name is blocked for a while,
//! from every address, whatever password is given.

use std::collections::HashMap;

use super::config::Attempts;
use crate::time::UnixMillis;
use crate::types::UserName;

#[derive(Debug, Default, Clone, Copy)]
struct Record {
    failures: u8,
    blocked_until: Option<UnixMillis>,
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again; this many attempts remain before the block.
    Remaining(u8),
    /// The name is now blocked until then.
    Blocked(UnixMillis),
}

/// Failure counts and blocks per user name.
#[derive(Debug)]
pub struct Lockout {
    attempts: Attempts,
    block_millis: u64,
    records: HashMap<UserName, Record>,
}

impl Lockout {
    /// A lockout policy.
    pub fn new(attempts: Attempts, block_millis: u64) -> Self {
        Self {
            attempts,
            block_millis,
            records: HashMap::new(),
        }
    }

    /// If `name` is blocked at `now`, until when.
    pub fn blocked_until(&mut self, name: &UserName, now: UnixMillis) -> Option<UnixMillis> {
        let rec = self.records.get_mut(name)?;
        match rec.blocked_until {
            Some(until) if now < until => Some(until),
            Some(_) => {
                self.records.remove(name);
                None
            }
            None => None,
        }
    }

    /// Count a failed attempt at `now`.
    pub fn fail(&mut self, name: &UserName, now: UnixMillis) -> Failure {
        let max = self.attempts.get();
        let rec = self.records.entry(name.clone()).or_default();
        rec.failures = rec.failures.saturating_add(1);
        if rec.failures >= max {
            let until = now.plus_millis(self.block_millis);
            rec.blocked_until = Some(until);
            rec.failures = 0;
            Failure::Blocked(until)
        } else {
            Failure::Remaining(max - rec.failures)
        }
    }

    /// A successful login: the count starts again.
    pub fn succeed(&mut self, name: &UserName) {
        self.records.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yoda() -> UserName {
        UserName::new("yoda").unwrap()
    }

    #[test]
    fn blocks_after_attempts_failures_for_exactly_the_block_time() {
        let mut l = Lockout::new(Attempts::new(3).unwrap(), 10_000);
        let t = UnixMillis(1_000_000);
        assert_eq!(l.fail(&yoda(), t), Failure::Remaining(2));
        assert_eq!(l.fail(&yoda(), t), Failure::Remaining(1));
        assert_eq!(l.fail(&yoda(), t), Failure::Blocked(t.plus_millis(10_000)));
        assert!(l.blocked_until(&yoda(), t.plus_millis(9_999)).is_some());
        assert!(l.blocked_until(&yoda(), t.plus_millis(10_000)).is_none());
        assert_eq!(
            l.fail(&yoda(), t.plus_millis(10_000)),
            Failure::Remaining(2)
        );
    }

    #[test]
    fn success_resets_and_names_are_independent() {
        let mut l = Lockout::new(Attempts::new(2).unwrap(), 10_000);
        let t = UnixMillis(0);
        l.fail(&yoda(), t);
        l.succeed(&yoda());
        assert_eq!(l.fail(&yoda(), t), Failure::Remaining(1));
        let luke = UserName::new("luke").unwrap();
        assert_eq!(l.fail(&luke, t), Failure::Remaining(1));
        assert!(matches!(l.fail(&yoda(), t), Failure::Blocked(_)));
        assert!(l.blocked_until(&luke, t).is_none());
    }
}
