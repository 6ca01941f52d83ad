//! Command history that survives the client: a file in the config folder, one line per
//! command, bounded in size.
//!
//! The file holds what the user typed (private messages included), so it is created readable
//! by its owner only. It is read with suspicion: it may have been edited, truncated or replaced
//! by anything, and a bad file costs at most a warning, never the session.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where history is kept and how much of it.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// The file, or `None` to keep history for this run only.
    pub path: Option<PathBuf>,
    /// Entries kept (in memory and, after trimming, in the file). A thousand covers weeks of
    /// chat at a few kilobytes' cost.
    pub max_entries: usize,
    /// Longest entry kept, in bytes: a command line is at most 8 KiB on the wire, so anything
    /// longer in the file is not ours.
    pub max_entry_bytes: usize,
    /// Most bytes read from the end of the file at start, whatever its size: bounds the memory
    /// and the time a huge or hostile file can cost.
    pub max_read_bytes: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            path: default_path(),
            max_entries: 1000,
            max_entry_bytes: 8 * 1024,
            max_read_bytes: 1 << 20,
        }
    }
}

/// `$XDG_CONFIG_HOME/huddle/history`, else `~/.config/huddle/history`; `None` without a home.
pub fn default_path() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_CONFIG_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".config")))
        .map(|c| c.join("huddle").join("history"))
}

/// Why history could not be read or written; shown once as a warning, the session goes on.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading the file at start failed.
    #[error("cannot read the history file {path}: {source} (history starts empty)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Appending to or rewriting the file failed.
    #[error("cannot write the history file {path}: {source} (history is kept for this run only)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The history of command lines, oldest first.
#[derive(Debug)]
pub struct History {
    config: HistoryConfig,
    entries: VecDeque<String>,
    /// Lines in the file, counted from what was read and appended: when it reaches twice the
    /// limit the file is rewritten with the last `max_entries`, so it stays bounded while
    /// most additions are a cheap append.
    lines_in_file: usize,
}

impl History {
    /// History as the file has it (empty without one). A file that cannot be read gives an
    /// empty history and the reason.
    pub fn load(config: HistoryConfig) -> (Self, Option<HistoryError>) {
        let mut h = Self {
            config,
            entries: VecDeque::new(),
            lines_in_file: 0,
        };
        let Some(path) = h.config.path.clone() else {
            return (h, None);
        };
        match read_tail(&path, h.config.max_read_bytes) {
            Ok(bytes) => {
                let mut lines = 0;
                for line in bytes.split(|&b| b == b'\n') {
                    lines += 1;
                    // A line that is not UTF-8 was not typed into this client: skip it.
                    match std::str::from_utf8(line) {
                        Ok(line) if h.acceptable(line) => h.push(line.to_string()),
                        _ => {}
                    }
                }
                h.lines_in_file = lines;
                (h, None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (h, None),
            Err(source) => (h, Some(HistoryError::Read { path, source })),
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &VecDeque<String> {
        &self.entries
    }

    /// Remember a submitted command and append it to the file. Blank lines and a repeat of the
    /// last entry are not kept. On a write error the entry is still kept for this run, and
    /// the file is no longer written.
    pub fn add(&mut self, line: &str) -> Result<(), HistoryError> {
        if !self.acceptable(line) || self.entries.back().is_some_and(|l| l == line) {
            return Ok(());
        }
        self.push(line.to_string());
        let Some(path) = self.config.path.clone() else {
            return Ok(());
        };
        let result = if self.lines_in_file + 1 >= 2 * self.config.max_entries {
            self.rewrite(&path)
        } else {
            append(&path, line).map(|()| self.lines_in_file += 1)
        };
        result.map_err(|source| {
            self.config.path = None;
            HistoryError::Write { path, source }
        })
    }

    fn acceptable(&self, line: &str) -> bool {
        !line.trim().is_empty()
            && line.len() <= self.config.max_entry_bytes
            && !line.chars().any(char::is_control)
    }

    fn push(&mut self, line: String) {
        self.entries.push_back(line);
        while self.entries.len() > self.config.max_entries {
            self.entries.pop_front();
        }
    }

    /// Replace the file with the entries held, atomically (write a sibling, then rename).
    fn rewrite(&mut self, path: &Path) -> std::io::Result<()> {
        create_parent(path)?;
        let tmp = path.with_extension("tmp");
        let mut f =
            private_file(OpenOptions::new().write(true).create(true).truncate(true)).open(&tmp)?;
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(e);
            text.push('\n');
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        self.lines_in_file = self.entries.len();
        Ok(())
    }
}

/// The last `max` bytes of the file; when the read starts mid-file its first, partial, line is
/// dropped.
fn read_tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes)?;
    if start > 0 {
        let first = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..first);
    }
    Ok(bytes)
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    create_parent(path)?;
    let mut f = private_file(OpenOptions::new().append(true).create(true)).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir)
        }
        _ => Ok(()),
    }
}

/// Open options that create the file readable and writable by its owner only.
fn private_file(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, 0o600);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path) -> HistoryConfig {
        HistoryConfig {
            path: Some(path.to_path_buf()),
            max_entries: 10,
            ..HistoryConfig::default()
        }
    }

    #[test]
    fn entries_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/history");
        let (mut h, err) = History::load(config(&path));
        assert!(err.is_none());
        h.add("MSG one").unwrap();
        h.add("MSG one").unwrap();
        h.add("   ").unwrap();
        h.add("ATU").unwrap();
        let (h2, err) = History::load(config(&path));
        assert!(err.is_none());
        assert_eq!(h2.entries(), &["MSG one", "ATU"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_file_stays_bounded_over_a_long_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        for run in 0..5 {
            let (mut h, _) = History::load(config(&path));
            for i in 0..100 {
                h.add(&format!("MSG run {run} line {i}")).unwrap();
            }
            assert_eq!(h.entries().len(), 10);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() < 20, "{} lines", text.lines().count());
        let (h, _) = History::load(config(&path));
        assert_eq!(h.entries().back().unwrap(), "MSG run 4 line 99");
        assert_eq!(h.entries().len(), 10);
    }

    #[test]
    fn a_hostile_file_costs_bounded_memory_and_no_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        // 8 MiB: binary junk, a huge line without newline, escape sequences, then good lines.
        let mut junk: Vec<u8> = (0..4 << 20).map(|i| (i * 7 % 256) as u8).collect();
        junk.extend(std::iter::repeat_n(b'x', 4 << 20));
        junk.extend(b"\nMSG \x1b[2Jhostile\nMSG fine\n\xff\xfe\nATU\n");
        std::fs::write(&path, &junk).unwrap();
        let (h, err) = History::load(config(&path));
        assert!(err.is_none());
        assert_eq!(h.entries(), &["MSG fine", "ATU"]);
    }

    #[test]
    fn an_unwritable_file_is_one_warning_then_history_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: cannot be appended to.
        let path = dir.path().join("history");
        std::fs::create_dir(&path).unwrap();
        let (mut h, err) = History::load(config(&path));
        assert!(matches!(err, Some(HistoryError::Read { .. })), "{err:?}");
        let err = h.add("MSG one").unwrap_err();
        assert!(err.to_string().contains("kept for this run only"), "{err}");
        assert!(h.add("MSG two").is_ok());
        assert_eq!(h.entries(), &["MSG one", "MSG two"]);
    }

    #[test]
    fn no_path_keeps_history_for_the_run() {
        let (mut h, err) = History::load(HistoryConfig {
            path: None,
            ..HistoryConfig::default()
        });
        assert!(err.is_none());
        h.add("ATU").unwrap();
        assert_eq!(h.entries(), &["ATU"]);
    }
}
