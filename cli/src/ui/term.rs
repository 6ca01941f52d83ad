//! The interactive terminal: a thin driver of [`Session`] on the real terminal — raw mode, key
//! events, the clock, the terminal's size — behind the runtimes' [`Ui`] trait.
//!
//! # Why our own line editor
//! The client must keep transfer status lines redrawn in place between the output and the line
//! being typed, print pushed events above both, and treat Ctrl-C alike at every prompt, the
//! password prompts included. rustyline owns the whole input line and offers only an external
//! printer that adds lines above it: a status line redrawn in place fights it, and its
//! passwords go through a separate reader where Ctrl-C kills the process. reedline has the same
//! external printer, nothing that redraws rows in place without printing, no hidden input, and
//! pulls in far more than we use. What we need of an editor is small (emacs keys, history,
//! Tab), so the editor is ours ([`super::editor`]) and crossterm gives us raw mode, key events
//! with modifiers, bracketed paste and resize.
//!
//! # Threads
//! [`Ui::show`] and [`Ui::progress`] come from the core's thread (the core reports running
//! transfers every 200 ms, moving or not, so no ticker is needed to show a stall),
//! [`Ui::read_line`] blocks on the input thread, and a key reader reads the terminal all the
//! time. All of them draw through one mutex around the [`Session`], so
//! output never interleaves; no lock is held while waiting for a key.
//!
//! The key reader hands keys to the open prompt, or keeps them for the next one (type-ahead).
//! Ctrl-C and Ctrl-Z cannot wait: while no prompt is open (a reply or a transfer pending) the
//! session answers them at once — a hint, then, on a second Ctrl-C, quitting — because raw mode
//! turned off the signals that would otherwise have done it. Quitting goes through the core
//! ([`Ui::set_interrupt`]): it cancels the running transfers, telling their peers, and exits;
//! only if it has not done so within [`QUIT_GRACE`] does the terminal end the process itself.

use std::io::{Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossterm::event::{self, Event};
use crossterm::terminal;
use huddle_core::client::{Display, KnownUser, Progress, Prompt};
use huddle_runtime_std::client::Ui;

use super::screen::Size;
use super::session::{BusyOutcome, KeyOutcome, Session, TermConfig};

/// Bracketed paste on and off: a paste arrives as one event, so its line breaks cannot send
/// commands.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// Events typed ahead of the next prompt kept at most; more are refused with a bell. A paste
/// is one event, so this is a thousand keys or pastes.
const TYPE_AHEAD: usize = 1024;

/// The exit code of a client quit by Ctrl-C, as shells report a process ended by SIGINT.
const INTERRUPTED: i32 = 130;

/// Errors in a row from the terminal after which it counts as gone (hung up), and the pause
/// before each new attempt.
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// How long the core has to cancel its transfers and exit after the quitting Ctrl-C before
/// the terminal ends the process anyway.
const QUIT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The client's terminal.
pub struct TermUi {
    shared: Arc<Shared>,
    /// Keys for the open prompt, from the key reader.
    keys: Mutex<Receiver<Event>>,
}

/// What the threads of the terminal share.
struct Shared {
    session: Mutex<Session<Stdout>>,
    /// Set once the terminal is given back; nothing draws after that.
    closed: AtomicBool,
    /// How to ask the core to stop now (see [`Ui::set_interrupt`]).
    interrupt: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl TermUi {
    /// Take over the terminal: raw mode (so Ctrl-C and Ctrl-Z are keys, not signals),
    /// bracketed paste, and a panic hook that gives the terminal back first.
    pub fn new(config: TermConfig) -> anyhow::Result<Self> {
        let session = Session::new(config, std::io::stdout());
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        let _ = out.write_all(PASTE_ON);
        let _ = out.flush();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        let shared = Arc::new(Shared {
            session: Mutex::new(session),
            closed: AtomicBool::new(false),
            interrupt: Mutex::new(None),
        });
        let (tx, rx) = mpsc::sync_channel(TYPE_AHEAD);
        let reader = Arc::clone(&shared);
        std::thread::spawn(move || read_keys(&reader, &tx));
        Ok(Self {
            shared,
            keys: Mutex::new(rx),
        })
    }

    /// Give the terminal back as it was: the live area erased, raw mode and bracketed paste
    /// off. Call once the client has stopped (the process may exit right after).
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Shared {
    /// The session, unless the terminal was given back or a panic poisoned it.
    fn lock(&self) -> Option<MutexGuard<'_, Session<Stdout>>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.session.lock().ok()
    }

    /// Give the terminal back (once).
    fn close(&self) {
        if let Some(mut s) = self.lock() {
            s.leave();
        }
        if !self.closed.swap(true, Ordering::AcqRel) {
            restore_terminal();
        }
    }

    /// Ctrl-Z: give the terminal back, stop as a shell job does, take it again once resumed.
    fn suspend(&self) {
        // The shell prints below where we stop: erase the live area, so that the redraw after
        // the resume starts from a clean row.
        if let Some(mut s) = self.lock() {
            s.hide();
        }
        restore_terminal();
        // SAFETY: raise only sends a signal to this process; SIGTSTP's default action stops
        // it, and raise returns once it is continued.
        unsafe {
            libc::raise(libc::SIGTSTP);
        }
        let _ = terminal::enable_raw_mode();
        let mut out = std::io::stdout();
        let _ = out.write_all(PASTE_ON);
        let _ = out.flush();
        if let Some(mut s) = self.lock() {
            s.redraw(size(), Instant::now());
        }
    }
}

/// Read the terminal for as long as it can be read: keys go to `tx` for the prompt, except
/// Ctrl-C and Ctrl-Z while no prompt is open, which the session answers at once. Ends (and so
/// ends input) when the terminal cannot be read any more: [`READ_ATTEMPTS`] errors in a row.
/// One error alone does not end it (a resize whose new size cannot be read is one), or every
/// key typed after it would be lost.
fn read_keys(shared: &Shared, tx: &SyncSender<Event>) {
    let mut failures = 0;
    loop {
        let ev = match event::read() {
            Ok(ev) => {
                failures = 0;
                ev
            }
            Err(_) if failures + 1 < READ_ATTEMPTS => {
                failures += 1;
                std::thread::sleep(READ_RETRY);
                continue;
            }
            Err(_) => return,
        };
        let busy = match shared.lock() {
            Some(mut s) => s.handle_busy_event(&ev, size(), Instant::now()),
            None => return,
        };
        match busy {
            BusyOutcome::ForPrompt => match tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    if let Some(mut s) = shared.lock() {
                        s.refuse_type_ahead();
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            },
            BusyOutcome::Handled => {}
            BusyOutcome::Suspend => shared.suspend(),
            BusyOutcome::Quit => {
                let asked = match shared.interrupt.lock() {
                    Ok(i) => i.as_ref().map(|f| f()).is_some(),
                    Err(_) => false,
                };
                if asked {
                    // The core cancels, tells the peers and exits; if it cannot, we do.
                    std::thread::sleep(QUIT_GRACE);
                }
                shared.close();
                println!("Interrupted.");
                std::process::exit(INTERRUPTED);
            }
        }
    }
}

/// The terminal's size now (asked every time: a resize shows at the next draw).
fn size() -> Size {
    let (cols, rows) = terminal::size().unwrap_or((0, 0));
    Size { cols, rows }
}

/// Raw mode and bracketed paste off, cursor shown: the terminal as a shell expects it.
fn restore_terminal() {
    let mut out = std::io::stdout();
    let _ = out.write_all(PASTE_OFF);
    let _ = out.write_all(b"\x1b[0m\x1b[?25h");
    let _ = out.flush();
    let _ = terminal::disable_raw_mode();
}

impl Ui for TermUi {
    fn set_interrupt(&self, interrupt: Box<dyn Fn() + Send + Sync>) {
        if let Ok(mut i) = self.shared.interrupt.lock() {
            *i = Some(interrupt);
        }
    }

    fn show(&self, display: &Display) {
        if let Some(mut s) = self.shared.lock() {
            s.handle_display(display, size(), Instant::now());
        }
    }

    fn progress(&self, progress: &Progress) {
        if let Some(mut s) = self.shared.lock() {
            s.handle_progress(progress, size(), Instant::now());
        }
    }

    fn users(&self, users: &[KnownUser]) {
        if let Some(mut s) = self.shared.lock() {
            s.set_users(users.to_vec());
        }
    }

    fn read_line(&self, prompt: &Prompt) -> Option<String> {
        self.shared
            .lock()?
            .open_prompt(prompt, size(), Instant::now());
        let keys = self.keys.lock().ok()?;
        loop {
            // The key reader has stopped: the terminal cannot be read any more (hung up).
            let ev = keys.recv().ok()?;
            let outcome = self.shared.lock()?.handle_event(ev, size(), Instant::now());
            match outcome {
                KeyOutcome::Pending => {}
                KeyOutcome::Line(line) => return Some(line),
                KeyOutcome::EndOfInput => return None,
                KeyOutcome::Suspend => self.shared.suspend(),
            }
        }
    }
}
