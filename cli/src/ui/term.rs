//! The interactive terminal: line editing with history, hidden passwords, colours, and pushed
//! events printed above the line being typed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use huddle_core::client::{Direction, Display, Progress, Prompt, Tone};
use huddle_core::transfer::TransferId;
use huddle_runtime_std::client::Ui;
use indicatif::{HumanBytes, HumanDuration};
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

/// A terminal driven by rustyline.
pub struct TermUi {
    editor: Mutex<DefaultEditor>,
    printer: Mutex<Box<dyn ExternalPrinter + Send>>,
    colour: bool,
    bars: Mutex<HashMap<TransferId, Bar>>,
}

/// When a transfer started and when its bar was last printed.
struct Bar {
    started: Instant,
    printed: Option<Instant>,
}

/// How often a transfer's progress line is printed.
const BAR_EVERY: Duration = Duration::from_secs(1);

/// `[#####-----]  45%  2.7 MiB / 6.0 MiB  12.3 MiB/s  ETA 3 seconds  clip.mp4 → luke`
fn bar_line(p: &Progress, elapsed: Duration) -> String {
    const WIDTH: u64 = 24;
    let total = p.total.max(1);
    let filled = (p.done.min(total) * WIDTH / total) as usize;
    let percent = p.done.min(total) * 100 / total;
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = p.done as f64 / secs;
    let eta = if rate > 0.0 {
        HumanDuration(Duration::from_secs_f64(
            (p.total.saturating_sub(p.done)) as f64 / rate,
        ))
        .to_string()
    } else {
        "unknown".to_string()
    };
    let verb = match p.direction {
        Direction::Upload => "up",
        Direction::Download => "down",
    };
    format!(
        "[{}{}] {percent:>3}%  {} / {}  {}/s  ETA {eta}  {verb} {}",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
        HumanBytes(p.done),
        HumanBytes(p.total),
        HumanBytes(rate as u64),
        p.label
    )
}

impl TermUi {
    /// Take over the terminal. Colours are off when `NO_COLOR` is set or stdout is not a
    /// terminal.
    pub fn new() -> anyhow::Result<Self> {
        use std::io::IsTerminal;
        let mut editor = DefaultEditor::new()?;
        let printer = editor.create_external_printer()?;
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal();
        Ok(Self {
            editor: Mutex::new(editor),
            printer: Mutex::new(Box::new(printer)),
            colour,
            bars: Mutex::new(HashMap::new()),
        })
    }

    fn style(&self, tone: Tone) -> Style {
        if !self.colour {
            return Style::new();
        }
        let colour = match tone {
            Tone::Info => return Style::new(),
            Tone::Success => AnsiColor::Green,
            Tone::Error => AnsiColor::Red,
            Tone::Post => AnsiColor::Cyan,
            Tone::Private => AnsiColor::Magenta,
            Tone::Notice => AnsiColor::Yellow,
        };
        Style::new().fg_color(Some(colour.into()))
    }
}

impl TermUi {
    /// Print whole lines: above the line being edited while a prompt is open, plainly
    /// otherwise. (The printer writes the text as is when no prompt is open, so the line must
    /// carry its own newline or the next prompt overwrites it.)
    fn print(&self, mut text: String) {
        text.push('\n');
        let printed = match self.printer.lock() {
            Ok(mut p) => p.print(text.clone()).is_ok(),
            Err(_) => false,
        };
        if !printed {
            print!("{text}");
        }
    }
}

impl Ui for TermUi {
    /// A progress line above the prompt about once a second: the line editor owns the line
    /// being typed, so a bar redrawn in place would fight it; printed lines never do.
    fn progress(&self, p: &Progress) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let now = Instant::now();
        if p.finished {
            bars.remove(&p.id);
            return;
        }
        let bar = bars.entry(p.id).or_insert(Bar {
            started: now,
            printed: None,
        });
        if bar
            .printed
            .is_some_and(|t| now.duration_since(t) < BAR_EVERY)
            || (bar.printed.is_none() && now.duration_since(bar.started) < BAR_EVERY)
        {
            return;
        }
        bar.printed = Some(now);
        let line = bar_line(p, now.duration_since(bar.started));
        drop(bars);
        let style = self.style(Tone::Notice);
        self.print(format!("{style}{line}{style:#}"));
    }

    fn show(&self, display: &Display) {
        let style = self.style(display.tone);
        self.print(format!("{style}{}{style:#}", display.text));
    }

    fn read_line(&self, prompt: &Prompt) -> Option<String> {
        if prompt.is_secret() {
            return rpassword::prompt_password(prompt.text()).ok();
        }
        let Ok(mut editor) = self.editor.lock() else {
            return None;
        };
        loop {
            match editor.readline(&prompt.text()) {
                Ok(line) => {
                    if !line.trim().is_empty() && matches!(prompt, Prompt::Command(_)) {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    return Some(line);
                }
                // Ctrl-C abandons the line being typed, as in a shell.
                Err(ReadlineError::Interrupted) => continue,
                Err(_) => return None,
            }
        }
    }
}
