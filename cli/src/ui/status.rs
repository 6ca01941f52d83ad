//! The status area: one line per running transfer, redrawn in place below the output.
//!
//! # Driving it
//! Feed [`StatusBoard::handle_progress`] every progress report of the core, and ask
//! [`StatusBoard::lines`] for what to draw, as often as the screen is drawn (at least every
//! [`StatusConfig::redraw_every`] while [`StatusBoard::is_empty`] is false, or a stall is never
//! seen). Both take `now`, so tests run on virtual time.
//!
//! The board keeps no final line: when a transfer ends its line goes, and the core's own
//! outcome line (`clip.mp4 has been uploaded to luke …`, `Received clip.mp4 from yoda …`, or
//! the failure) is what stays in the scrollback, once per side.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use huddle_core::client::{Progress, human_bytes};
use huddle_core::transfer::TransferId;

use super::wrap::{truncate, width};

/// How the status area decides what to say.
///
/// These are presentation settings of the terminal: until the core reports a stall itself (see
/// the report of issue 12), "stalled" is judged here, from the reports' own progress.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// A transfer whose byte count has not moved for this long reads "stalled" instead of a rate
    /// and an ETA that would only grow. Three seconds: well above the core's 200 ms report
    /// interval and a few round trips, well below its 10 s idle timeout, so a person sees the
    /// stall before the transfer gives up.
    pub stall_after: Duration,
    /// The rate (and so the ETA) is measured over this last stretch of the transfer: short
    /// enough to follow a change of speed, long enough not to jump with every report.
    pub rate_window: Duration,
    /// At most this many transfers get a line; the rest are summed up in one more line, so a
    /// burst of uploads never pushes the line being typed off the screen.
    pub max_lines: usize,
    /// How often the area is redrawn while transfers run, even without a report (so that a
    /// stall shows): half a second keeps the elapsed seconds of a stall current.
    pub redraw_every: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            stall_after: Duration::from_secs(3),
            rate_window: Duration::from_secs(5),
            max_lines: 4,
            redraw_every: Duration::from_millis(500),
        }
    }
}

/// Samples kept per transfer for its rate: bounded whatever the report rate.
const MAX_SAMPLES: usize = 64;

/// The narrowest progress bar worth drawing, and the widest.
const BAR_MIN: usize = 10;
const BAR_MAX: usize = 30;

/// The fewest columns a label is cut to before less important fields go instead.
const LABEL_MIN: usize = 12;

#[derive(Debug)]
struct Entry {
    id: TransferId,
    label: String,
    done: u64,
    total: u64,
    /// When the byte count last moved (or the transfer was first seen).
    moved: Instant,
    /// `(when, bytes done)`, oldest first, the first at most `rate_window` old or the last one
    /// before it.
    samples: VecDeque<(Instant, u64)>,
}

/// One line of the status area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The text, at most the width asked for.
    pub text: String,
    /// Whether it reports a stall (drawn in another colour).
    pub stalled: bool,
}

/// The running transfers, as the status area shows them.
#[derive(Debug)]
pub struct StatusBoard {
    config: StatusConfig,
    entries: Vec<Entry>,
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
    pub fn handle_progress(&mut self, p: &Progress, now: Instant) {
        let pos = self.entries.iter().position(|e| e.id == p.id);
        if p.finished {
            if let Some(i) = pos {
                self.entries.remove(i);
            }
            return;
        }
        let i = match pos {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    id: p.id,
                    label: p.label.clone(),
                    done: p.done,
                    total: p.total,
                    moved: now,
                    samples: VecDeque::from([(now, p.done)]),
                });
                return;
            }
        };
        let e = &mut self.entries[i];
        if p.done != e.done {
            e.moved = now;
        }
        e.done = p.done;
        e.total = p.total;
        e.samples.push_back((now, p.done));
        // Keep one sample at or before the window's start as the baseline.
        let start = now.checked_sub(self.config.rate_window).unwrap_or(now);
        while e.samples.len() > 2 && e.samples[1].0 <= start {
            e.samples.pop_front();
        }
        while e.samples.len() > MAX_SAMPLES {
            e.samples.pop_front();
        }
    }

    /// The lines to draw now, each at most `columns` wide.
    pub fn lines(&self, columns: usize, now: Instant) -> Vec<StatusLine> {
        let max = self.config.max_lines.max(1);
        let shown = if self.entries.len() > max {
            max - 1
        } else {
            self.entries.len()
        };
        let mut lines: Vec<StatusLine> = self.entries[..shown]
            .iter()
            .map(|e| self.line(e, columns, now))
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

    fn line(&self, e: &Entry, columns: usize, now: Instant) -> StatusLine {
        let done = e.done.min(e.total);
        let percent = (u128::from(done) * 100)
            .checked_div(u128::from(e.total))
            .unwrap_or(100);
        let stalled_for = now.saturating_duration_since(e.moved);
        let stalled = done < e.total && stalled_for >= self.config.stall_after;
        let mut bytes = Some(bytes_field(done, e.total));
        let (speed, mut eta) = if stalled {
            (format!("stalled {}", duration(stalled_for)), None)
        } else {
            match self.rate(e, now) {
                Some(rate) if rate >= 1.0 => {
                    let left = e.total.saturating_sub(done) as f64 / rate;
                    (
                        format!("{}/s", human_bytes(rate as u64)),
                        Some(format!("ETA {}", duration(Duration::from_secs_f64(left)))),
                    )
                }
                _ => ("starting…".to_string(), None),
            }
        };
        let pct = format!("{percent:>3}%");
        // Drop fields from the least to the most important until the rest fits beside a label
        // of useful length: the byte counts, then the ETA (the bar goes first, below).
        let tail = loop {
            let tail = [Some(&pct), bytes.as_ref(), Some(&speed), eta.as_ref()]
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

    /// Bytes per second over the rate window, if it can be told yet.
    fn rate(&self, e: &Entry, now: Instant) -> Option<f64> {
        let &(t0, d0) = e.samples.front()?;
        let span = now.saturating_duration_since(t0).as_secs_f64();
        if span < 0.2 {
            return None;
        }
        Some(e.done.saturating_sub(d0) as f64 / span)
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
mod tests {
    use super::*;
    use huddle_core::client::Direction;

    const MIB: u64 = 1 << 20;

    fn report(id: u64, done: u64, total: u64) -> Progress {
        Progress {
            id: TransferId(id),
            direction: Direction::Upload,
            label: "clip.mp4 → luke".into(),
            done,
            total,
            finished: false,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_running_transfer_shows_percent_bytes_rate_and_eta() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, 0, 10 * MIB), t0);
        for i in 1..=10 {
            b.handle_progress(&report(1, i * MIB / 2, 10 * MIB), ms(t0, i * 500));
        }
        let lines = b.lines(100, ms(t0, 5000));
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
    fn every_width_from_60_to_100_fits_without_wrapping() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        let long = Progress {
            label: "a very long file name of a holiday video.mp4 → somebody".into(),
            ..report(1, 0, 300 * MIB)
        };
        b.handle_progress(&long, t0);
        b.handle_progress(
            &Progress {
                done: 123 * MIB,
                ..long.clone()
            },
            ms(t0, 2000),
        );
        for columns in 20..=140 {
            for now in [ms(t0, 2000), ms(t0, 60_000)] {
                for l in b.lines(columns, now) {
                    assert!(width(&l.text) <= columns, "{columns}: {}", l.text);
                }
            }
        }
        let at60 = &b.lines(60, ms(t0, 2000))[0].text;
        assert!(at60.contains("41%") && at60.contains("ETA"), "{at60}");
    }

    #[test]
    fn no_progress_for_a_while_reads_stalled_not_an_eta() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, 0, 10 * MIB), t0);
        b.handle_progress(&report(1, MIB, 10 * MIB), ms(t0, 1000));
        // Reports keep coming, the count does not move.
        for i in 0..20 {
            b.handle_progress(&report(1, MIB, 10 * MIB), ms(t0, 1200 + i * 200));
        }
        let l = &b.lines(80, ms(t0, 5200))[0];
        assert!(l.stalled, "{}", l.text);
        assert!(l.text.contains("stalled 4s"), "{}", l.text);
        assert!(!l.text.contains("ETA"), "{}", l.text);
        // It moves again: the stall is over.
        b.handle_progress(&report(1, 2 * MIB, 10 * MIB), ms(t0, 5400));
        assert!(!b.lines(80, ms(t0, 5400))[0].stalled);
    }

    #[test]
    fn a_transfer_that_never_starts_is_stalled_too() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, 0, MIB), t0);
        assert!(b.lines(80, ms(t0, 100))[0].text.contains("starting…"));
        assert!(b.lines(80, ms(t0, 3000))[0].stalled);
    }

    #[test]
    fn a_finished_transfer_leaves_no_line() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, 0, MIB), t0);
        b.handle_progress(&report(2, 0, MIB), t0);
        b.handle_progress(
            &Progress {
                finished: true,
                ..report(1, MIB, MIB)
            },
            ms(t0, 10),
        );
        assert_eq!(b.lines(80, ms(t0, 10)).len(), 1);
        assert!(!b.is_empty());
        b.handle_progress(
            &Progress {
                finished: true,
                ..report(2, MIB, MIB)
            },
            ms(t0, 10),
        );
        assert!(b.is_empty());
        assert!(b.lines(80, ms(t0, 10)).is_empty());
    }

    #[test]
    fn many_transfers_are_summed_up_in_a_bounded_area() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        for id in 0..1000 {
            b.handle_progress(&report(id, MIB, 2 * MIB), t0);
        }
        let lines = b.lines(80, t0);
        assert_eq!(lines.len(), StatusConfig::default().max_lines);
        assert!(
            lines[3].text.contains("997 more transfers"),
            "{}",
            lines[3].text
        );
    }

    #[test]
    fn a_long_session_keeps_bounded_samples() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        for i in 0..100_000u64 {
            b.handle_progress(&report(1, i, u64::MAX), ms(t0, i));
        }
        assert!(b.entries[0].samples.len() <= MAX_SAMPLES);
    }

    #[test]
    fn hostile_sizes_do_not_panic() {
        let t0 = Instant::now();
        let mut b = StatusBoard::new(StatusConfig::default());
        b.handle_progress(&report(1, u64::MAX, 0), t0);
        b.handle_progress(&report(2, 0, u64::MAX), t0);
        b.handle_progress(&report(2, u64::MAX - 1, u64::MAX), ms(t0, 1000));
        for columns in 0..120 {
            for l in b.lines(columns, ms(t0, 1000)) {
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
