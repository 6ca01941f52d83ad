//! The real `huddle` binary in a pseudo-terminal, its output read back through a terminal
//! emulator (vt100), so tests assert on the screen a person would see.
//!
//! Waits poll the screen until a condition holds or [`PATIENCE`] runs out; nothing here
//! measures time, so a loaded machine is slower, never wrong.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// How long a wait may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Rows of the emulator that keeps everything: taller than any test's output, so nothing
/// scrolls off and every line ever left on screen can be counted.
const TALL_ROWS: u16 = 2000;

/// Keys, as a terminal sends them.
pub const CTRL_C: &[u8] = b"\x03";
pub const CTRL_D: &[u8] = b"\x04";
pub const CTRL_U: &[u8] = b"\x15";
pub const TAB: &[u8] = b"\t";
pub const ENTER: &[u8] = b"\r";
pub const UP: &[u8] = b"\x1b[A";

/// What the program wrote, as two terminals show it: one of the real size, one so tall that
/// nothing scrolls off.
struct Seen {
    screen: vt100::Parser,
    tall: vt100::Parser,
    raw: Vec<u8>,
}

/// A `huddle` process on a pseudo-terminal.
pub struct Pty {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    seen: Arc<Mutex<Seen>>,
    size: (u16, u16),
}

impl Pty {
    /// Start `huddle args…` on a terminal of `cols`×`rows`, with `config` as its config
    /// folder (history goes there, never to the real home) and these extra variables.
    pub fn spawn(args: &[&str], cols: u16, rows: u16, config: &Path, env: &[(&str, &str)]) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_huddle"));
        cmd.args(args);
        cmd.env("XDG_CONFIG_HOME", config);
        cmd.env("HOME", config);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).expect("start huddle");
        drop(pty.slave);
        let seen = Arc::new(Mutex::new(Seen {
            screen: vt100::Parser::new(rows, cols, 0),
            tall: vt100::Parser::new(TALL_ROWS, cols, 0),
            raw: Vec::new(),
        }));
        let mut reader = pty.master.try_clone_reader().expect("read the pty");
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let mut s = sink.lock().unwrap();
                        s.screen.process(&buf[..n]);
                        s.tall.process(&buf[..n]);
                        s.raw.extend_from_slice(&buf[..n]);
                    }
                }
            }
        });
        let writer = pty.master.take_writer().expect("write the pty");
        Pty {
            master: pty.master,
            writer,
            child,
            seen,
            size: (cols, rows),
        }
    }

    /// The process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.process_id().expect("a running child")
    }

    /// Send keys.
    pub fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// Type text, without Enter.
    pub fn type_text(&mut self, text: &str) {
        self.keys(text.as_bytes());
    }

    /// Type a line and press Enter.
    pub fn line(&mut self, text: &str) {
        self.type_text(text);
        self.keys(ENTER);
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        self.seen.lock().unwrap().screen.screen().contents()
    }

    /// Everything left on screen since the start (nothing scrolls off the tall terminal).
    pub fn transcript(&self) -> String {
        self.seen.lock().unwrap().tall.screen().contents()
    }

    /// Bytes the program wrote, escape sequences and all.
    pub fn raw(&self) -> Vec<u8> {
        self.seen.lock().unwrap().raw.clone()
    }

    /// Run `f` on the visible screen.
    pub fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(self.seen.lock().unwrap().screen.screen())
    }

    /// Run `f` on the tall screen that keeps everything.
    pub fn with_transcript<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(self.seen.lock().unwrap().tall.screen())
    }

    /// The row the cursor is on: the line being typed, when a prompt is open.
    pub fn cursor_row(&self) -> String {
        self.with_screen(|s| {
            let (row, _) = s.cursor_position();
            s.contents_between(row, 0, row, s.size().1)
        })
    }

    /// The row above the cursor's.
    pub fn row_above_cursor(&self, n: u16) -> String {
        self.with_screen(|s| {
            let (row, _) = s.cursor_position();
            let r = row.saturating_sub(n);
            s.contents_between(r, 0, r, s.size().1)
        })
    }

    /// Wait until `cond` holds for the visible screen; `what` names it for the failure.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&Pty) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the screen:\n{}\n--- all output:\n{}",
                    self.screen(),
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the screen shows `needle`.
    pub fn wait_for(&self, needle: &str) {
        self.wait_until(&format!("{needle:?} on screen"), |p| {
            p.screen().contains(needle)
        });
    }

    /// Wait until the transcript shows `needle` `times` times.
    pub fn wait_count(&self, needle: &str, times: usize) {
        self.wait_until(&format!("{needle:?} {times} times"), |p| {
            p.transcript().matches(needle).count() >= times
        });
    }

    /// Wait until the line being typed reads `text` (prompt included).
    pub fn wait_cursor_row(&self, text: &str) {
        self.wait_until(&format!("the cursor row to read {text:?}"), |p| {
            p.cursor_row() == text
        });
    }

    /// Log in from the `Username:` prompt.
    pub fn login(&mut self, user: &str, password: &str) {
        self.wait_for("Username: ");
        self.line(user);
        self.wait_for("Password: ");
        self.line(password);
        self.wait_for(&format!("Welcome to huddle, {user}!"));
        self.wait_cursor_row(&format!("{user}> "));
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.exit_code();
            }
            if Instant::now() > deadline {
                panic!("huddle did not exit; the screen:\n{}", self.screen());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The terminal's size.
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// Resize the terminal, as a person dragging the window's edge.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut s = self.seen.lock().unwrap();
        s.screen.screen_mut().set_size(rows, cols);
        s.tall.screen_mut().set_size(TALL_ROWS, cols);
        self.size = (cols, rows);
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
