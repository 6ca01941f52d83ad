//! What `RDM` reads since: a timestamp, a relative time, today, or your last logout.
//!
//! `RDM 21 Nov 2026 22:30:01` (DESIGN §2), `RDM 10m` / `RDM 2h` / `RDM 3d` (that long ago),
//! `RDM today` (since midnight), and `RDM` alone (since your last logout: what you missed,
//! including what the catch-up at login left out).
//!
//! The server resolves them, not the client: it alone knows its time zone (a timestamp, and
//! "today", are in the server's local time) and its clock is the one posts are stamped with,
//! so `RDM 10m` means the same ten minutes whatever the client's clock says.

use std::fmt;

use nom::{
    IResult, Parser,
    character::complete::{digit1, one_of},
    combinator::{all_consuming, map_res},
};

use super::timestamp::civil_time;
use crate::time::CivilTime;

/// The longest relative `RDM`: ten years, in minutes (as `RCU`'s window).
pub const MAX_AGO_MINUTES: u32 = 10 * 366 * 24 * 60;

/// Where an `RDM` listing starts (posts strictly later are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// A timestamp, in the server's local time.
    At(CivilTime),
    /// This many minutes before now (`10m`, `2h` = 120, `3d` = 4320).
    Ago {
        /// Minutes, 1..=[`MAX_AGO_MINUTES`].
        minutes: u32,
    },
    /// Since the start of today, in the server's local time.
    Today,
    /// Since the reader's last logout (everything, if they never logged out).
    LastLogout,
}

impl fmt::Display for Since {
    /// The argument as it travels (empty for [`Since::LastLogout`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Since::At(t) => write!(f, "{t}"),
            Since::Ago { minutes } => write!(f, "{minutes}m"),
            Since::Today => f.write_str("today"),
            Since::LastLogout => Ok(()),
        }
    }
}

/// Why an `RDM` argument is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// Neither a timestamp nor a relative time.
    #[error(
        "malformed timestamp (write DD Mon YYYY HH:MM:SS, or 10m, 2h, 3d, today, or nothing for since your last logout)"
    )]
    Malformed,
    /// A relative time of zero or more than ten years.
    #[error("a relative time is from 1 minute to 10 years")]
    OutOfRange,
}

/// Parse the argument of `RDM` (`None`: no argument).
pub fn parse_since(arg: Option<&str>) -> Result<Since, SinceError> {
    let Some(a) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Since::LastLogout);
    };
    if a.eq_ignore_ascii_case("today") {
        return Ok(Since::Today);
    }
    if let Ok((_, t)) = all_consuming(civil_time).parse(a) {
        return Ok(Since::At(t));
    }
    let relative: IResult<&str, (u64, char)> = all_consuming((
        map_res(digit1, |d: &str| d.parse::<u64>()),
        one_of("mhdMHD"),
    ))
    .parse(a);
    let Ok((_, (n, unit))) = relative else {
        return Err(SinceError::Malformed);
    };
    let per = match unit.to_ascii_lowercase() {
        'm' => 1,
        'h' => 60,
        _ => 24 * 60,
    };
    match n.checked_mul(per) {
        Some(m) if (1..=u64::from(MAX_AGO_MINUTES)).contains(&m) => {
            Ok(Since::Ago { minutes: m as u32 })
        }
        _ => Err(SinceError::OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_renders_back() {
        assert_eq!(parse_since(None), Ok(Since::LastLogout));
        assert_eq!(parse_since(Some("")), Ok(Since::LastLogout));
        assert_eq!(parse_since(Some("today")), Ok(Since::Today));
        assert_eq!(parse_since(Some("TODAY")), Ok(Since::Today));
        assert_eq!(parse_since(Some("10m")), Ok(Since::Ago { minutes: 10 }));
        assert_eq!(parse_since(Some("2h")), Ok(Since::Ago { minutes: 120 }));
        assert_eq!(parse_since(Some("3D")), Ok(Since::Ago { minutes: 4320 }));
        let at = parse_since(Some("1 Dec 2026 07:46:05")).unwrap();
        assert_eq!(at.to_string(), "01 Dec 2026 07:46:05");
        for s in [
            Since::Today,
            Since::Ago { minutes: 7 },
            Since::Ago {
                minutes: MAX_AGO_MINUTES,
            },
            at,
        ] {
            assert_eq!(parse_since(Some(&s.to_string())), Ok(s));
        }
    }

    #[test]
    fn hostile_arguments_are_refused_never_wrapped_or_panicking() {
        for bad in [
            "10",
            "m",
            "10 m",
            "-5m",
            "10s",
            "yesterday",
            "01 Dec 2026",
            "1.5h",
        ] {
            assert_eq!(parse_since(Some(bad)), Err(SinceError::Malformed), "{bad}");
        }
        for bad in [
            "0m",
            "99999999999999999999999m",
            "5270401m",
            "3661d",
            "18446744073709551615d",
        ] {
            assert!(parse_since(Some(bad)).is_err(), "{bad}");
        }
    }
}
