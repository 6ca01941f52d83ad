//! `DD Mon YYYY HH:MM:SS`, the one way huddle writes a time.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while_m_n},
    character::complete::char,
    combinator::{map_res, opt},
};

use crate::time::{CivilTime, MONTHS};

fn digits(min: usize, max: usize) -> impl FnMut(&str) -> IResult<&str, u32> {
    move |i| {
        map_res(
            take_while_m_n(min, max, |c: char| c.is_ascii_digit()),
            |s: &str| s.parse::<u32>(),
        )
        .parse(i)
    }
}

fn month(i: &str) -> IResult<&str, u8> {
    let (rest, word) = take_while_m_n(3, 3, |c: char| c.is_ascii_alphabetic()).parse(i)?;
    match MONTHS.iter().position(|m| m.eq_ignore_ascii_case(word)) {
        Some(idx) => Ok((rest, idx as u8 + 1)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// Parse a civil time at the start of `i`: day (one or two digits), English month
/// abbreviation (any case), four-digit year, `HH:MM:SS` (two digits each; the hour may have one).
///
/// Ranges are checked here for the fields that have fixed ranges; whether the day exists in
/// that month is checked when the zone turns it into an instant.
pub fn civil_time(i: &str) -> IResult<&str, CivilTime> {
    let (i, (day, _, month, _, year, _, hour, _, minute, _, second)) = (
        digits(1, 2),
        char(' '),
        month,
        char(' '),
        digits(4, 4),
        char(' '),
        digits(1, 2),
        char(':'),
        digits(2, 2),
        char(':'),
        digits(2, 2),
    )
        .parse(i)?;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((
        i,
        CivilTime {
            day: day as u8,
            month,
            year: year as i32,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
        },
    ))
}

/// Parse `s` as exactly one civil time, nothing before or after.
pub fn parse_civil_time(s: &str) -> Option<CivilTime> {
    let (rest, t) = civil_time(s).ok()?;
    rest.is_empty().then_some(t)
}

/// Parse an optional `#` followed by a message number (used by `DLT` and `EDT`).
pub fn hash_number(i: &str) -> IResult<&str, u32> {
    let (i, _) = opt(tag("#")).parse(i)?;
    digits(1, 9).parse(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_canonical_form() {
        let t = parse_civil_time("01 Dec 2026 09:05:01").unwrap();
        assert_eq!(t.to_string(), "01 Dec 2026 09:05:01");
    }

    #[test]
    fn accepts_a_day_without_the_zero_and_any_case_month() {
        let t = parse_civil_time("1 dec 2026 09:05:01").unwrap();
        assert_eq!(t.to_string(), "01 Dec 2026 09:05:01");
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "01 Dek 2026 09:05:01",
            "01 Dec 26 09:05:01",
            "01 Dec 2026 9:5:1",
            "32 Dec 2026 09:05:01",
            "01 Dec 2026 24:00:00",
            "01 Dec 2026 09:05:01 extra",
            "01  Dec 2026 09:05:01",
        ] {
            assert!(parse_civil_time(bad).is_none(), "{bad:?} should not parse");
        }
    }
}
