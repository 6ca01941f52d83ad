//! The status area: one line per running transfer, redrawn in place below the output.
//!
//! # Driving it
//! Feed [`StatusBoard::handle_progress`] every progress report of the core and ask
//! [`StatusBoard::lines`] for what to draw. The board judges nothing: rate, ETA, "stalled"
//! and what a transfer waits for all come from the core (`huddle_core::client::Progress`),
//! which reports every running transfer at least every 200 ms, moving or not — so the area
//! needs neither a clock nor a ticker to show a stall.
//!
//! The board keeps no final line: when a transfer ends its line goes, and the core's own
//! outcome line (`clip.mp4 has been uploaded to luke …`, `Received clip.mp4 from yoda …`, or
//! the failure) is what stays in the scrollback, once per side.

use std::time::Duration;

use huddle_core::client::{Phase, Progress, human_bytes};

use super::wrap::{truncate, width};

/// How the status area is laid out.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// At most this many transfers get a line; the rest are summed up in one more line, so a
    /// burst of uploads never pushes the line being typed off the screen.
    pub max_lines: usize,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self { max_lines: 4 }
    }
}

/// The narrowest progress bar worth drawing, and the widest.
const BAR_MIN: usize = 10;
const BAR_MAX: usize = 30;

/// The fewest columns a label is cut to before less important fields go instead.
const LABEL_MIN: usize = 12;

/// One line of the status area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The text, at most the width asked for.
    pub text: String,
    /// Whether it reports a stall (drawn in another colour).
    pub stalled: bool,
}

/// The running transfers, as the status area shows them: the latest report of each.
#[derive(Debug)]
pub struct StatusBoard {
    config: StatusConfig,
    entries: Vec<Progress>,
}

impl StatusBoard {
    /// An empty board.
    pub fn new(config: StatusConfig) -> Self {
        Self {
            config,
            entries: Vec::new(),
        }
    }

    /// Whether no transfer is shown.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many transfers are shown.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A progress report from the core: a new transfer gets a line, a finished one loses it.
    pub fn handle_progress(&mut self, p: &Progress) {
        let pos = self.entries.iter().position(|e| e.id == p.id);
        match (pos, p.is_finished()) {
            (Some(i), true) => {
                self.entries.remove(i);
            }
            (Some(i), false) => self.entries[i] = p.clone(),
            (None, false) => self.entries.push(p.clone()),
            (None, true) => {}
        }
    }

    /// The lines to draw now, each at most `columns` wide.
    pub fn lines(&self, columns: usize) -> Vec<StatusLine> {
        let max = self.config.max_lines.max(1);
        let shown = if self.entries.len() > max {
            max - 1
        } else {
            self.entries.len()
        };
        let mut lines: Vec<StatusLine> = self.entries[..shown]
            .iter()
            .map(|e| line(e, columns))
            .collect();
        if shown < self.entries.len() {
            let rest = &self.entries[shown..];
            let done: u64 = rest.iter().map(|e| e.done).sum();
            let total: u64 = rest.iter().map(|e| e.total).sum();
            lines.push(StatusLine {
                text: truncate(
                    &format!(
                        "… and {} more transfers, {} of {}",
                        rest.len(),
                        human_bytes(done),
                        human_bytes(total)
                    ),
                    columns,
                ),
                stalled: false,
            });
        }
        lines
    }
}

/// One transfer's line: label, bar, then the fields that fit (the byte counts go first, then
/// the ETA, then the bar).
fn line(e: &Progress, columns: usize) -> StatusLine {
    let done = e.done.min(e.total);
    let percent = (u128::from(done) * 100)
        .checked_div(u128::from(e.total))
        .unwrap_or(100);
    let stalled = e.phase == Phase::Moving && e.stalled_for_ms.is_some();
    let mut bytes = Some(bytes_field(done, e.total));
    let (what, mut eta) = match e.phase {
        Phase::Asking => ("asking you: y or n".to_string(), None),
        Phase::Waiting => ("waiting for an answer".to_string(), None),
        Phase::Checking => ("checking what was kept…".to_string(), None),
        Phase::Moving | Phase::Ended(_) => match (e.stalled_for_ms, e.rate) {
            (Some(ms), _) => (
                format!("stalled {}", duration(Duration::from_millis(ms))),
                None,
            ),
            (None, Some(rate)) if rate > 0 => (
                format!("{}/s", human_bytes(rate)),
                e.eta_ms
                    .map(|ms| format!("ETA {}", duration(Duration::from_millis(ms)))),
            ),
            _ => ("starting…".to_string(), None),
        },
    };
    let pct = format!("{percent:>3}%");
    let tail = loop {
        let tail = [Some(&pct), bytes.as_ref(), Some(&what), eta.as_ref()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("  ");
        if width(&tail) + 2 + LABEL_MIN <= columns {
            break tail;
        }
        if bytes.take().is_none() && eta.take().is_none() {
            break tail;
        }
    };
    let room = columns.saturating_sub(width(&tail) + 2);
    let label_w = width(&e.label);
    let text = if room >= label_w + 2 + BAR_MIN {
        let bar_w = (room - label_w - 2).min(BAR_MAX);
        format!("{}  {}  {tail}", e.label, bar(done, e.total, bar_w))
    } else if room > 0 {
        format!("{}  {tail}", truncate(&e.label, room.max(1)))
    } else {
        tail
    };
    StatusLine {
        text: truncate(&text, columns),
        stalled,
    }
}

/// `2.7 MiB / 6.0 MiB`, or `2.7/6.0 MiB` when both have the same unit.
fn bytes_field(done: u64, total: u64) -> String {
    let (d, t) = (human_bytes(done), human_bytes(total));
    match (d.rsplit_once(' '), t.rsplit_once(' ')) {
        (Some((dn, du)), Some((tn, tu))) if du == tu => format!("{dn}/{tn} {tu}"),
        _ => format!("{d} / {t}"),
    }
}

/// `[#######-------]` of `width` columns, brackets included.
fn bar(done: u64, total: u64, width: usize) -> String {
    let inner = width.saturating_sub(2);
    let filled = if total == 0 {
        inner
    } else {
        (u128::from(done) * inner as u128 / u128::from(total)) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(inner - filled))
}

/// `7s`, `1m05s`, `2h03m`, `>99h`: short enough for a status line.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..360_000 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => ">99h".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use huddle_core::client::{Direction, Outcome};
    use huddle_core::transfer::TransferId;

    const MIB: u64 = 1 << 20;

    /// A report as the core makes one, moving with no rate yet.
    pub(crate) fn report(id: u64, done: u64, total: u64) -> Progress {
        Progress {
            id: TransferId(id),
            direction: Direction::Upload,
            label: "clip.mp4 → luke".into(),
            done,
            total,
            rate: None,
            eta_ms: None,
            stalled_for_ms: None,
            phase: Phase::Moving,
        }
    }

    fn moving(id: u64, done: u64, total: u64, rate: u64) -> Progress {
        Progress {
            rate: Some(rate),
            eta_ms: Some((total - done) * 1000 / rate),
            ..report(id, done, total)
        }
    }

    #[test]
    fn a_running_transfer_shows_percent_bytes_rate_and_eta() {
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&moving(1, 5 * MIB, 10 * MIB, MIB));
        let lines = b.lines(100);
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert!(!l.stalled);
        assert!(l.text.contains(" 50%"), "{}", l.text);
        assert!(l.text.contains("5.0/10.0 MiB"), "{}", l.text);
        assert!(l.text.contains("1.0 MiB/s"), "{}", l.text);
        assert!(l.text.contains("ETA 5s"), "{}", l.text);
        assert!(l.text.contains("[#"), "a bar at 100 columns: {}", l.text);
        assert!(l.text.starts_with("clip.mp4 → luke"), "{}", l.text);
    }

    #[test]
    fn every_width_from_20_to_140_fits_without_wrapping() {
        let mut b = StatusBoard::new(StatusConfig::default());
        let long = Progress {
            label: "a very long file name of a holiday video.mp4 → somebody".into(),
            ..moving(1, 123 * MIB, 300 * MIB, 20 * MIB)
        };
        b.handle_progress(&long);
        for columns in 20..=140 {
            for l in b.lines(columns) {
                assert!(width(&l.text) <= columns, "{columns}: {}", l.text);
            }
        }
        let at60 = &b.lines(60)[0].text;
        assert!(at60.contains("41%") && at60.contains("ETA"), "{at60}");
    }

    #[test]
    fn a_stall_the_core_reports_reads_stalled_not_an_eta() {
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&Progress {
            stalled_for_ms: Some(4_200),
            ..report(1, MIB, 10 * MIB)
        });
        let l = &b.lines(80)[0];
        assert!(l.stalled, "{}", l.text);
        assert!(l.text.contains("stalled 4s"), "{}", l.text);
        assert!(!l.text.contains("ETA"), "{}", l.text);
        b.handle_progress(&moving(1, 2 * MIB, 10 * MIB, MIB));
        assert!(!b.lines(80)[0].stalled);
    }

    #[test]
    fn what_a_transfer_waits_for_is_said_in_words() {
        let mut b = StatusBoard::new(StatusConfig::default());
        for (phase, words) in [
            (Phase::Asking, "asking you: y or n"),
            (Phase::Waiting, "waiting for an answer"),
            (Phase::Checking, "checking what was kept"),
        ] {
            b.handle_progress(&Progress {
                phase,
                ..report(1, 0, MIB)
            });
            let l = &b.lines(80)[0];
            assert!(l.text.contains(words), "{}", l.text);
            assert!(!l.stalled);
        }
        b.handle_progress(&report(1, 0, MIB));
        assert!(b.lines(80)[0].text.contains("starting…"));
    }

    #[test]
    fn a_finished_transfer_leaves_no_line_whatever_its_outcome() {
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, 0, MIB));
        b.handle_progress(&report(2, 0, MIB));
        b.handle_progress(&Progress {
            phase: Phase::Ended(Outcome::Cancelled),
            ..report(1, MIB / 3, MIB)
        });
        assert_eq!(b.lines(80).len(), 1);
        assert!(!b.is_empty());
        b.handle_progress(&Progress {
            phase: Phase::Ended(Outcome::Complete),
            ..report(2, MIB, MIB)
        });
        assert!(b.is_empty());
        assert!(b.lines(80).is_empty());
        // A last report for a transfer never shown adds nothing.
        b.handle_progress(&Progress {
            phase: Phase::Ended(Outcome::Failed),
            ..report(3, 0, MIB)
        });
        assert!(b.is_empty());
    }

    #[test]
    fn many_transfers_are_summed_up_in_a_bounded_area() {
        let mut b = StatusBoard::new(StatusConfig::default());
        for id in 0..1000 {
            b.handle_progress(&report(id, MIB, 2 * MIB));
        }
        let lines = b.lines(80);
        assert_eq!(lines.len(), StatusConfig::default().max_lines);
        assert!(
            lines[3].text.contains("997 more transfers"),
            "{}",
            lines[3].text
        );
    }

    #[test]
    fn hostile_sizes_do_not_panic() {
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, u64::MAX, 0));
        b.handle_progress(&Progress {
            rate: Some(u64::MAX),
            eta_ms: Some(u64::MAX),
            stalled_for_ms: None,
            ..report(2, u64::MAX - 1, u64::MAX)
        });
        b.handle_progress(&Progress {
            stalled_for_ms: Some(u64::MAX),
            ..report(3, 0, u64::MAX)
        });
        for columns in 0..120 {
            for l in b.lines(columns) {
                assert!(width(&l.text) <= columns);
            }
        }
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_secs(7)), "7s");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(duration(Duration::from_secs(u64::MAX / 2)), ">99h");
    }
}
