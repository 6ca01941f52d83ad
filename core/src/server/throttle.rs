//! Fair shares: token buckets, as ergo's fakelag does it.
//!
//! Each user has a bucket for the commands that cost others something (posts, private
//! messages, edits, deletes, uploads): a burst goes through at once, then the user is slowed
//! to a steady rate — the excess is *delayed*, not refused. Only a user who keeps sending
//! faster than the rate for a long while (abuse, not enthusiasm) has further commands refused,
//! until they slow down enough for the bucket to fill again. Each address has a bucket for
//! sign-ups the same way, without the delay.

use std::collections::HashMap;
use std::hash::Hash;

use crate::time::UnixMillis;

/// A bucket's shape: how many at once, how many a second after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens the bucket holds when full.
    pub burst: u32,
    /// Tokens added per minute (a minute, so slow rates such as sign-ups stay whole numbers).
    pub per_minute: u32,
}

/// One token, in the units a bucket counts: a bucket of `per_minute` gains `per_minute` units
/// a millisecond, so a refill is exact integer arithmetic and no remainder is lost however
/// often it is looked at (at 5 a minute, a bucket checked every few milliseconds still fills).
const TOKEN: u64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// In [`TOKEN`]ths of a token.
    units: u64,
    updated: UnixMillis,
    /// Since when the owner has been sending faster than the rate without a break.
    throttled_since: Option<UnixMillis>,
}

impl Bucket {
    fn full(rate: Rate, now: UnixMillis) -> Self {
        Self {
            units: u64::from(rate.burst) * TOKEN,
            updated: now,
            throttled_since: None,
        }
    }

    fn refill(&mut self, rate: Rate, now: UnixMillis) {
        let elapsed = now.millis_since(self.updated);
        let add = elapsed.saturating_mul(u64::from(rate.per_minute));
        let cap = u64::from(rate.burst) * TOKEN;
        self.units = self.units.saturating_add(add).min(cap);
        self.updated = now;
        if self.units >= cap {
            self.throttled_since = None;
        }
    }

    /// Milliseconds until one whole token is there.
    fn wait_millis(&self, rate: Rate) -> u64 {
        let missing = TOKEN.saturating_sub(self.units);
        if rate.per_minute == 0 {
            return u64::MAX;
        }
        missing.div_ceil(u64::from(rate.per_minute)).max(1)
    }
}

/// What a bucket says about one more command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (a token was taken).
    Go,
    /// Wait this many milliseconds, then ask again.
    Wait(u64),
    /// Refused: the owner has exceeded the rate for longer than allowed; retry in about this
    /// many milliseconds, once the bucket is full again.
    Refuse(u64),
}

/// Buckets for many owners (users, addresses) of one rate. Full buckets are forgotten, so
/// memory holds only owners who were active lately.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    /// How long an owner may stay over the rate before commands are refused (`None`: never
    /// refuse, only delay).
    refuse_after_millis: Option<u64>,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Buckets of `rate`.
    pub fn new(rate: Rate, refuse_after_millis: Option<u64>) -> Self {
        Self {
            rate,
            refuse_after_millis,
            buckets: HashMap::new(),
        }
    }

    /// May `owner` do one more now? Takes a token if so.
    pub fn take(&mut self, owner: &K, now: UnixMillis) -> Verdict {
        let rate = self.rate;
        let bucket = self
            .buckets
            .entry(owner.clone())
            .or_insert_with(|| Bucket::full(rate, now));
        bucket.refill(rate, now);
        if let (Some(limit), Some(since)) = (self.refuse_after_millis, bucket.throttled_since)
            && now.millis_since(since) >= limit
        {
            let cap = u64::from(rate.burst) * TOKEN;
            let to_full = cap
                .saturating_sub(bucket.units)
                .div_ceil(u64::from(rate.per_minute.max(1)));
            return Verdict::Refuse(to_full.max(1));
        }
        if bucket.units >= TOKEN {
            bucket.units -= TOKEN;
            return Verdict::Go;
        }
        bucket.throttled_since.get_or_insert(now);
        Verdict::Wait(bucket.wait_millis(rate))
    }

    /// Whether `owner` could do one more now, without taking a token.
    pub fn allows(&mut self, owner: &K, now: UnixMillis) -> Result<(), u64> {
        let rate = self.rate;
        match self.buckets.get_mut(owner) {
            None => Ok(()),
            Some(b) => {
                b.refill(rate, now);
                if b.units >= TOKEN {
                    Ok(())
                } else {
                    Err(b.wait_millis(rate))
                }
            }
        }
    }

    /// Forget the buckets that are full again at `now`.
    pub fn forget_full(&mut self, now: UnixMillis) {
        let rate = self.rate;
        let cap = u64::from(rate.burst) * TOKEN;
        self.buckets.retain(|_, b| {
            b.refill(rate, now);
            b.units < cap
        });
    }

    /// How many owners have a bucket now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        per_minute: 600, // 10 a second
    };

    #[test]
    fn a_burst_goes_through_then_the_excess_waits_for_the_rate() {
        let mut b = Buckets::new(RATE, None);
        let t = UnixMillis(1_000);
        for _ in 0..3 {
            assert_eq!(b.take(&"yoda", t), Verdict::Go);
        }
        assert_eq!(b.take(&"yoda", t), Verdict::Wait(100));
        assert_eq!(b.take(&"yoda", t.plus_millis(60)), Verdict::Wait(40));
        assert_eq!(b.take(&"yoda", t.plus_millis(100)), Verdict::Go);
        // Others have their own share.
        assert_eq!(b.take(&"luke", t), Verdict::Go);
    }

    #[test]
    fn only_a_long_excess_is_refused_until_the_bucket_is_full_again() {
        let mut b = Buckets::new(RATE, Some(1_000));
        let mut t = UnixMillis(0);
        for _ in 0..3 {
            assert_eq!(b.take(&"spam", t), Verdict::Go);
        }
        // Sending as fast as allowed for a second is delay, not refusal.
        let mut waited = 0;
        while t.0 < 1_000 {
            match b.take(&"spam", t) {
                Verdict::Go => {}
                Verdict::Wait(ms) => {
                    waited += 1;
                    t = t.plus_millis(ms);
                }
                Verdict::Refuse(_) => panic!("refused at {t:?}"),
            }
        }
        assert!(waited >= 9);
        let Verdict::Refuse(retry) = b.take(&"spam", t) else {
            panic!("a whole second over the rate is refused")
        };
        // Slowing down until the bucket is full again ends it.
        t = t.plus_millis(retry);
        assert_eq!(b.take(&"spam", t), Verdict::Go);
    }

    #[test]
    fn a_slow_bucket_looked_at_every_few_milliseconds_fills_on_time() {
        // 5 a minute: one token every 12 s, whether or not anyone looks in between.
        let rate = Rate {
            burst: 5,
            per_minute: 5,
        };
        let mut b = Buckets::new(rate, None);
        let t = UnixMillis(0);
        for _ in 0..5 {
            assert_eq!(b.take(&"addr", t), Verdict::Go);
        }
        assert_eq!(b.allows(&"addr", t), Err(12_000));
        let mut now = t;
        while now.0 < 7_000 {
            now = now.plus_millis(7);
            assert!(b.allows(&"addr", now).is_err());
        }
        assert_eq!(b.allows(&"addr", UnixMillis(7_000)), Err(5_000));
        assert_eq!(b.allows(&"addr", UnixMillis(11_999)), Err(1));
        assert_eq!(b.take(&"addr", UnixMillis(12_000)), Verdict::Go);
        assert_eq!(b.take(&"addr", UnixMillis(12_000)), Verdict::Wait(12_000));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut b = Buckets::new(RATE, None);
        b.take(&1u32, UnixMillis(0));
        b.take(&2u32, UnixMillis(0));
        assert_eq!(b.len(), 2);
        b.forget_full(UnixMillis(1_000));
        assert_eq!(b.len(), 0);
    }
}
