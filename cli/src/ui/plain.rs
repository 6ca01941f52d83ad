//! Plain text for pipes and scripts: no colours, every prompt on its own line.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use huddle_core::client::{Display, Prompt};
use huddle_runtime_std::client::Ui;

/// Reads standard input line by line and prints plain lines to standard output.
pub struct PlainUi {
    out: Mutex<()>,
}

impl PlainUi {
    /// A plain interface on stdin/stdout.
    pub fn new() -> Self {
        Self {
            out: Mutex::new(()),
        }
    }

    fn print(&self, text: &str) {
        let _guard = self.out.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }
}

impl Ui for PlainUi {
    fn show(&self, display: &Display) {
        self.print(&display.text);
    }

    fn read_line(&self, prompt: &Prompt) -> Option<String> {
        self.print(prompt.text().trim_end());
        // A person typing at a terminal whose output goes elsewhere (`huddle client > log`):
        // still no echo of a password.
        if prompt.is_secret() && std::io::stdin().is_terminal() {
            return rpassword::read_password().ok();
        }
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                while line.ends_with('\n') || line.ends_with('\r') {
                    line.pop();
                }
                Some(line)
            }
        }
    }
}
