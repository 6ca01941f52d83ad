//! Time as the core sees it: one wall-clock value handed in by the driver.
//!
//! The core never reads a clock. Every `handle_*` call carries a [`UnixMillis`]; the core turns
//! it into the [`Timestamp`]s it writes (whole seconds, shown in the server's local time) and
//! into its timers. [`Clock`] makes sure time never runs backwards inside a state machine even
//! if the driver's wall clock steps back.

use std::fmt;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Milliseconds since the Unix epoch: the single clock value every input carries.
///
/// Milliseconds, not `Instant`, because the same value must produce both the timestamps users
/// see and the timers the core arms, and because a simulator or a test can hand in any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// This instant plus `ms` milliseconds, saturating instead of overflowing.
    pub fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The whole second this instant falls in.
    pub fn timestamp(self) -> Timestamp {
        Timestamp((self.0 / 1000) as i64)
    }
}

/// A point in time to the second: what messages, logins and the data files carry.
///
/// Second resolution is part of the specification: `DLT`/`EDT` compare timestamps as the
/// message's version and `RDM` compares "strictly later, to the second".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `secs` seconds after the Unix epoch.
    pub fn from_unix_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_secs(self) -> i64 {
        self.0
    }

    /// The first millisecond of this second.
    pub fn start_millis(self) -> UnixMillis {
        UnixMillis(u64::try_from(self.0).unwrap_or(0).saturating_mul(1000))
    }
}

/// A wall-clock reading as people write it: `DD Mon YYYY HH:MM:SS`, no zone.
///
/// Produced by the timestamp parser; turned into a [`Timestamp`] by a [`Zone`], because only the
/// server knows which local time its users mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Day of the month, 1..=31 (checked against the month by [`Zone::timestamp_of`]).
    pub day: u8,
    /// Month, 1..=12.
    pub month: u8,
    /// Four-digit year.
    pub year: i32,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
}

/// English month abbreviations, as the timestamp format writes them.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl fmt::Display for CivilTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let month = MONTHS
            .get(usize::from(self.month).wrapping_sub(1))
            .copied()
            .unwrap_or("???");
        write!(
            f,
            "{:02} {} {:04} {:02}:{:02}:{:02}",
            self.day, month, self.year, self.hour, self.minute, self.second
        )
    }
}

/// Why a civil time names no instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Day 31 of a 30-day month, 29 Feb of a common year, hour 24, and the like.
    #[error("{0} is not a valid date and time")]
    NoSuchTime(CivilTime),
}

/// The server's time zone: a fixed offset from UTC, read once at start by the driver.
///
/// Timestamps are written and read in the server's local time (DESIGN.md §2); keeping the
/// offset in configuration instead of asking the OS keeps the core free of I/O and makes
/// simulations independent of the machine they run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(UtcOffset);

impl Default for Zone {
    fn default() -> Self {
        Self::UTC
    }
}

impl Zone {
    /// Coordinated Universal Time.
    pub const UTC: Zone = Zone(UtcOffset::UTC);

    /// A zone `seconds` east of UTC; offsets beyond ±25 h are clamped to UTC.
    pub fn from_offset_seconds(seconds: i32) -> Self {
        Self(UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC))
    }

    /// Seconds east of UTC.
    pub fn offset_seconds(self) -> i32 {
        self.0.whole_seconds()
    }

    /// The civil (wall-clock) time of `ts` in this zone.
    pub fn civil(self, ts: Timestamp) -> CivilTime {
        let dt = OffsetDateTime::from_unix_timestamp(ts.0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.0);
        CivilTime {
            day: dt.day(),
            month: u8::from(dt.month()),
            year: dt.year(),
            hour: dt.hour(),
            minute: dt.minute(),
            second: dt.second(),
        }
    }

    /// `ts` written as `DD Mon YYYY HH:MM:SS` in this zone.
    pub fn render(self, ts: Timestamp) -> String {
        self.civil(ts).to_string()
    }

    /// The instant a civil time names in this zone.
    pub fn timestamp_of(self, c: CivilTime) -> Result<Timestamp, TimeError> {
        let month = Month::try_from(c.month).map_err(|_| TimeError::NoSuchTime(c))?;
        let date =
            Date::from_calendar_date(c.year, month, c.day).map_err(|_| TimeError::NoSuchTime(c))?;
        let time =
            Time::from_hms(c.hour, c.minute, c.second).map_err(|_| TimeError::NoSuchTime(c))?;
        let odt = PrimitiveDateTime::new(date, time).assume_offset(self.0);
        Ok(Timestamp(odt.unix_timestamp()))
    }
}

/// A monotonic view of the wall clock handed in by the driver.
///
/// If the driver's clock steps back (NTP, a manual change), the core keeps using the latest time
/// it has seen, so timers never fire early twice and message timestamps never decrease.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    latest: UnixMillis,
}

impl Clock {
    /// A clock that has seen `now`.
    pub fn new(now: UnixMillis) -> Self {
        Self { latest: now }
    }

    /// Feed the driver's `now`; returns the time the core should use.
    pub fn advance(&mut self, now: UnixMillis) -> UnixMillis {
        if now > self.latest {
            self.latest = now;
        }
        self.latest
    }

    /// The latest time seen.
    pub fn now(&self) -> UnixMillis {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_day_zero_padded_with_english_month() {
        let z = Zone::UTC;
        let ts = z
            .timestamp_of(CivilTime {
                day: 1,
                month: 12,
                year: 2026,
                hour: 9,
                minute: 5,
                second: 1,
            })
            .unwrap();
        assert_eq!(z.render(ts), "01 Dec 2026 09:05:01");
    }

    #[test]
    fn offset_shifts_rendering_not_instant() {
        let ts = Timestamp::from_unix_secs(0);
        assert_eq!(
            Zone::from_offset_seconds(3600).render(ts),
            "01 Jan 1970 01:00:00"
        );
        let back = Zone::from_offset_seconds(3600)
            .timestamp_of(CivilTime {
                day: 1,
                month: 1,
                year: 1970,
                hour: 1,
                minute: 0,
                second: 0,
            })
            .unwrap();
        assert_eq!(back, ts);
    }

    #[test]
    fn rejects_impossible_dates() {
        let bad = CivilTime {
            day: 30,
            month: 2,
            year: 2026,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert!(Zone::UTC.timestamp_of(bad).is_err());
    }

    #[test]
    fn clock_never_runs_backwards() {
        let mut c = Clock::new(UnixMillis(5000));
        assert_eq!(c.advance(UnixMillis(4000)), UnixMillis(5000));
        assert_eq!(c.advance(UnixMillis(6000)), UnixMillis(6000));
    }
}
