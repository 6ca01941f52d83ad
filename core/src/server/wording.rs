//! How the server words amounts in what people read: `1 second`, `2 seconds`, `0.5 seconds`.

/// `n` and `what`, plural unless `n` is 1: `1 attempt`, `3 attempts`.
pub fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// A span of `millis` milliseconds in seconds, to a tenth: `1 second`, `12 seconds`,
/// `0.5 seconds`, `8.6 seconds`.
pub fn seconds(millis: u64) -> String {
    let tenths = millis.saturating_add(50) / 100;
    match tenths % 10 {
        0 => count(tenths / 10, "second"),
        t => format!("{}.{t} seconds", tenths / 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_singular_only_for_one() {
        assert_eq!(count(1, "attempt"), "1 attempt");
        assert_eq!(count(0, "attempt"), "0 attempts");
        assert_eq!(count(5, "attempt"), "5 attempts");
        assert_eq!(seconds(1_000), "1 second");
        assert_eq!(seconds(10_000), "10 seconds");
        assert_eq!(seconds(500), "0.5 seconds");
        assert_eq!(seconds(60_000 / 7), "8.6 seconds");
        assert_eq!(seconds(1_020), "1 second");
        assert!(seconds(u64::MAX).ends_with(" seconds"));
    }
}
