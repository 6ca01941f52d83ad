//! Commands the client answers itself, never sent to the server: the decisions about this
//! client's own transfers.
//!
//! | line | does |
//! |---|---|
//! | `y` / `yes`, `n` / `no` | answer the oldest open question about an incoming upload |
//! | `ACCEPT [file\|id]`, `DECLINE [file\|id]` | answer the question about that upload |
//! | `CANCEL [file\|id\|ALL]` | stop a running upload or download (the other side is told at once), or take an upload waiting its turn out of the queue |
//!
//! Without an argument, `ACCEPT`/`DECLINE` mean the oldest open question and `CANCEL` the
//! only running transfer. A file is named as the transfer's lines show it (`clip.mp4`); an id
//! is the transfer id, or at least its first four hex digits.

/// Which transfer a command means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The obvious one: the oldest question, the only transfer.
    Implied,
    /// Every running transfer (`CANCEL ALL`).
    All,
    /// The transfer with this file name or id (prefix).
    Named(String),
}

/// A client-local command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Take an incoming upload.
    Accept(Target),
    /// Refuse an incoming upload.
    Decline(Target),
    /// Stop a running transfer.
    Cancel(Target),
}

/// How the local commands are written, for `HELP`.
pub const USAGE: &[(&str, &str)] = &[
    ("ACCEPT [file]", "take an incoming upload (or answer y)"),
    ("DECLINE [file]", "refuse an incoming upload (or answer n)"),
    (
        "CANCEL [file|ALL]",
        "stop an upload (running or queued) or a download",
    ),
];

/// The local commands' words (`ACCEPT`, …), for the unknown-command error: HELP lists them
/// beside the server's.
pub fn words() -> Vec<&'static str> {
    USAGE
        .iter()
        .map(|(usage, _)| usage.split(' ').next().unwrap_or(usage))
        .collect()
}

/// The local command `line` is, if it is one. `pending` says whether a question is open, the
/// only time a bare `y` or `n` means something.
pub fn parse(line: &str, pending: bool) -> Option<Local> {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let target = || match rest {
        "" => Target::Implied,
        r if r.eq_ignore_ascii_case("all") => Target::All,
        r => Target::Named(r.to_string()),
    };
    let word = word.to_ascii_lowercase();
    match word.as_str() {
        "y" | "yes" if pending && rest.is_empty() => Some(Local::Accept(Target::Implied)),
        "n" | "no" if pending && rest.is_empty() => Some(Local::Decline(Target::Implied)),
        "accept" => Some(Local::Accept(target())),
        "decline" => Some(Local::Decline(target())),
        "cancel" => Some(Local::Cancel(target())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_commands_and_their_targets() {
        assert_eq!(parse("y", true), Some(Local::Accept(Target::Implied)));
        assert_eq!(parse("No", true), Some(Local::Decline(Target::Implied)));
        assert_eq!(parse("y", false), None, "no question, no answer");
        assert_eq!(parse("yes please", true), None);
        assert_eq!(
            parse("cancel  my clip.mp4 ", false),
            Some(Local::Cancel(Target::Named("my clip.mp4".into())))
        );
        assert_eq!(parse("CANCEL all", false), Some(Local::Cancel(Target::All)));
        assert_eq!(parse("accept", false), Some(Local::Accept(Target::Implied)));
        assert_eq!(parse("MSG cancel", false), None);
        assert_eq!(parse("cancellation", false), None);
    }

    proptest! {
        #[test]
        fn any_line_parses_or_not_without_panicking(line in ".{0,200}", pending in any::<bool>()) {
            let _ = parse(&line, pending);
        }
    }
}
