//! Where the server's narration goes: one line per interaction, flushed as it happens.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use huddle_core::time::Zone;

/// A destination for log lines.
///
/// Standard output by default, because the operator watches the server's console and scripts
/// read it (the startup line names the port). Tests plug in a closure to wait for a line
/// instead of sleeping.
#[derive(Clone)]
pub struct LogSink(Arc<dyn Fn(&str) + Send + Sync>);

impl LogSink {
    /// Print each line to standard output and flush it at once, ignoring a closed stdout
    /// (`huddle server | head` must not crash the server).
    pub fn stdout() -> Self {
        Self(Arc::new(|line: &str| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }))
    }

    /// Hand each line to `f`.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Emit one line as it is.
    pub fn line(&self, line: &str) {
        (self.0)(line)
    }
}

impl Default for LogSink {
    fn default() -> Self {
        Self::stdout()
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}

/// The runtime's own voice (I/O failures, resource limits), timestamped like the core's
/// lines so the console reads as one story. Shared by both server runtimes so their notes
/// read the same.
#[derive(Clone, Debug)]
pub struct Console {
    /// Where the lines go.
    pub sink: LogSink,
    /// The server's UTC offset, for the timestamps of the runtime's own notes.
    pub zone: Zone,
}

impl Console {
    /// A runtime note, prefixed with the server's local time.
    pub fn note(&self, text: &str) {
        let now = crate::clock::now();
        self.sink
            .line(&format!("{}  {text}", self.zone.render(now.timestamp())));
    }

    /// A line the core produced (already timestamped).
    pub fn core(&self, line: &str) {
        self.sink.line(line);
    }
}
