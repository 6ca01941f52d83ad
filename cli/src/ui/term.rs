//! The interactive terminal: line editing with history, hidden passwords, colours, and pushed
//! events printed above the line being typed.

use std::sync::Mutex;

use anstyle::{AnsiColor, Style};
use huddle_core::client::{Display, Prompt, Tone};
use huddle_runtime_std::client::Ui;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

/// A terminal driven by rustyline.
pub struct TermUi {
    editor: Mutex<DefaultEditor>,
    printer: Mutex<Box<dyn ExternalPrinter + Send>>,
    colour: bool,
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

impl Ui for TermUi {
    fn show(&self, display: &Display) {
        let style = self.style(display.tone);
        let text = format!("{style}{}{style:#}", display.text);
        let printed = match self.printer.lock() {
            Ok(mut p) => p.print(text.clone()).is_ok(),
            Err(_) => false,
        };
        if !printed {
            println!("{text}");
        }
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
