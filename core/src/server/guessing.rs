//! Guessing, per address: failed logins from one address across every user name, with growing
//! delays, so that one address can neither guess passwords at scale nor keep many accounts
//! locked out cheaply (DESIGN §3's per-name lockout stays exactly as it is beside this).
//!
//! An address may fail [`super::ServerConfig::guess_free_failures`] logins freely. After that,
//! each further failure makes its next password wait longer before it is even checked:
//! [`super::ServerConfig::guess_delay_millis`], doubling with every failure up to
//! [`super::ServerConfig::guess_max_delay_millis`]. Passwords from that address are checked one
//! at a time, that far apart, however many connections it opens. An address whose last failure
//! is [`super::ServerConfig::guess_forget_millis`] old starts afresh. A success does not reset
//! the count (one known account must not buy more guesses at others). Exempt addresses
//! (loopback by default; the connection caps' list) are not counted.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::time::UnixMillis;

/// The rules, from the server's config.
#[derive(Debug, Clone, Copy)]
pub struct GuessRules {
    /// Failures an address may make before its attempts are delayed.
    pub free_failures: u32,
    /// The first delay, in milliseconds; it doubles with each further failure.
    pub delay_millis: u64,
    /// The longest delay.
    pub max_delay_millis: u64,
    /// A record this long after its last failure is forgotten.
    pub forget_millis: u64,
}

impl GuessRules {
    /// How long a password waits after `failures` failures (0 while they are free).
    fn delay(&self, failures: u32) -> u64 {
        let Some(over) = failures.checked_sub(self.free_failures) else {
            return 0;
        };
        if over == 0 {
            return 0;
        }
        let doublings = (over - 1).min(40);
        self.delay_millis
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_millis)
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: UnixMillis,
    /// No password from this address is checked before this.
    next_check: UnixMillis,
}

/// Failed logins per address.
#[derive(Debug)]
pub struct Guessing {
    rules: GuessRules,
    by_ip: HashMap<IpAddr, Record>,
}

impl Guessing {
    /// No failures yet.
    pub fn new(rules: GuessRules) -> Self {
        Self {
            rules,
            by_ip: HashMap::new(),
        }
    }

    fn record(&mut self, ip: IpAddr, now: UnixMillis) -> Option<&mut Record> {
        let ip = ip.to_canonical();
        let forget = self.rules.forget_millis;
        if self
            .by_ip
            .get(&ip)
            .is_some_and(|r| now.millis_since(r.last_failure) >= forget)
        {
            self.by_ip.remove(&ip);
        }
        self.by_ip.get_mut(&ip)
    }

    /// May a password from `ip` be checked now? If not, when. A check that may go ahead while
    /// the address is slowed down takes the next slot: the one after it waits a whole delay.
    pub fn admit(&mut self, ip: IpAddr, now: UnixMillis) -> Result<(), UnixMillis> {
        let rules = self.rules;
        let Some(r) = self.record(ip, now) else {
            return Ok(());
        };
        if now < r.next_check {
            return Err(r.next_check);
        }
        let delay = rules.delay(r.failures);
        if delay > 0 {
            r.next_check = now.plus_millis(delay);
        }
        Ok(())
    }

    /// A password from `ip` was wrong at `now`. Returns the delay the address's next password
    /// now waits, in milliseconds (0 while its failures are free).
    pub fn failed(&mut self, ip: IpAddr, now: UnixMillis) -> u64 {
        let rules = self.rules;
        if self.record(ip, now).is_none() {
            self.by_ip.insert(
                ip.to_canonical(),
                Record {
                    failures: 0,
                    last_failure: now,
                    next_check: now,
                },
            );
        }
        let Some(r) = self.by_ip.get_mut(&ip.to_canonical()) else {
            return 0;
        };
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        let delay = rules.delay(r.failures);
        r.next_check = r.next_check.max(now.plus_millis(delay));
        delay
    }

    /// Forget the records that are old enough, so the table stays as small as the addresses
    /// guessing now.
    pub fn forget_old(&mut self, now: UnixMillis) {
        let forget = self.rules.forget_millis;
        self.by_ip
            .retain(|_, r| now.millis_since(r.last_failure) < forget);
    }

    /// Addresses with a record.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }
}

impl super::Server {
    /// Before a password from `conn` is checked: if its address is slowed down, keep the
    /// line until its turn (the connection takes nothing else meanwhile) and return true.
    pub(super) fn guess_wait(&mut self, conn: super::ConnId, password: &str) -> bool {
        let now = self.now();
        let Some(ip) = self.conns.get(conn).map(|c| c.peer.ip()) else {
            return false;
        };
        if self.admission.is_exempt(ip) {
            return false;
        }
        let Err(at) = self.guessing.admit(ip, now) else {
            return false;
        };
        if let Some(c) = self.conns.get_mut(conn) {
            c.delayed = Some(password.as_bytes().to_vec());
            c.wake_at = Some(at);
            self.timers
                .arm(&mut c.armed, conn, super::TimerKind::Wake, at);
        }
        self.update_reading(conn);
        true
    }

    /// A password from `conn` was wrong: count it against its address. Returns what to add to
    /// the reply when the address's next password will wait.
    pub(super) fn guess_failed(&mut self, conn: super::ConnId) -> String {
        let now = self.now();
        let Some(peer) = self.conns.get(conn).map(|c| c.peer) else {
            return String::new();
        };
        if self.admission.is_exempt(peer.ip()) {
            return String::new();
        }
        let delay = self.guessing.failed(peer.ip(), now);
        if delay == 0 {
            return String::new();
        }
        let secs = delay.div_ceil(1000);
        self.log(format!(
            "{peer}: too many failed logins from {}: its next password waits {secs} s",
            peer.ip()
        ));
        format!(
            " Too many failed logins from your address: your next password will be checked in {secs} s."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GuessRules {
        GuessRules {
            free_failures: 3,
            delay_millis: 1_000,
            max_delay_millis: 8_000,
            forget_millis: 60_000,
        }
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        let r = rules();
        let delays: Vec<u64> = (1..=9).map(|f| r.delay(f)).collect();
        assert_eq!(delays, [0, 0, 0, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    }

    #[test]
    fn a_slowed_address_is_checked_one_password_at_a_time() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let mut g = Guessing::new(rules());
        let t = UnixMillis(1_000_000);
        for _ in 0..3 {
            assert_eq!(g.admit(ip, t), Ok(()));
            assert_eq!(g.failed(ip, t), 0);
        }
        assert_eq!(g.admit(ip, t), Ok(()));
        assert_eq!(g.failed(mapped, t), 1_000, "the same address, mapped");
        assert_eq!(g.admit(ip, t), Err(t.plus_millis(1_000)));
        let t1 = t.plus_millis(1_000);
        assert_eq!(g.admit(ip, t1), Ok(()));
        // A second connection that waited for the same instant waits a whole delay more.
        assert_eq!(g.admit(ip, t1), Err(t1.plus_millis(1_000)));
        assert_eq!(g.failed(ip, t1), 2_000);
        assert_eq!(
            g.admit(ip, t1.plus_millis(1_999)),
            Err(t1.plus_millis(2_000))
        );
        // Other addresses are not concerned.
        assert_eq!(g.admit("127.0.0.3".parse().unwrap(), t1), Ok(()));
    }

    #[test]
    fn an_address_quiet_for_the_forget_time_starts_afresh() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut g = Guessing::new(rules());
        let t = UnixMillis(0);
        for _ in 0..6 {
            g.failed(ip, t);
        }
        assert!(g.admit(ip, t).is_err());
        let later = t.plus_millis(60_000);
        assert_eq!(g.admit(ip, later), Ok(()));
        assert_eq!(g.failed(ip, later), 0);
        g.forget_old(later.plus_millis(60_000));
        assert_eq!(g.len(), 0);
    }
}
