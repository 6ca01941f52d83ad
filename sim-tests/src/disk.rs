//! An in-memory data folder that behaves like a disk across crashes.
//!
//! The server core's contract is "durable before visible": a [`Persist`] record must be on
//! disk before any reply that follows it is sent. To make a simulated crash test that, the
//! disk keeps two layers, like a page cache in front of a platter:
//! - [`Disk::write`] puts a record in the *pending* layer (written, not yet synced);
//! - [`Disk::fsync`] makes every pending record *durable*;
//! - [`Disk::boot`], called when the server host (re)starts, throws the pending layer away —
//!   optionally keeping a random prefix of it, the last kept `Append` possibly torn mid-line,
//!   as a real crash may — and hands the durable files to `Server::new`.
//!
//! The disk lives outside the host closure, so it survives `sim.crash` / `sim.bounce`, and
//! only through what was synced. It holds the side files the loader writes too
//! (`<file>.rejected`, backups), and [`Disk::damage`] lets a test spoil a file between a crash
//! and a restart, as a bad disk or a careless editor would.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use huddle_core::store::rejected::READ_BACK;
use huddle_core::store::{DataFile, DataFiles, Persist};

use crate::rng::Rng;

/// What a crash leaves of the writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashLoss {
    /// Every unsynced write is lost.
    All,
    /// A random prefix of the unsynced writes survives, the last surviving append possibly cut
    /// short mid-line (a torn write), as a power cut may leave it.
    TornTail,
}

#[derive(Debug)]
struct State {
    durable: BTreeMap<DataFile, Vec<u8>>,
    /// `<file>.rejected`, by the data file.
    rejected: BTreeMap<DataFile, Vec<u8>>,
    /// Backup copies, by file name.
    backups: BTreeMap<String, Vec<u8>>,
    pending: Vec<Persist>,
    loss: CrashLoss,
    rng: Rng,
    fsyncs: u64,
    boots: u64,
    /// Whether writes fail (a full disk): nothing is written while it is.
    full: bool,
}

/// The server's data folder; cheap to clone (all clones share one folder).
#[derive(Debug, Clone)]
pub struct Disk(Rc<RefCell<State>>);

fn apply(s: &mut State, p: &Persist) {
    match p {
        Persist::Append { file, text } => s.durable.entry(*file).or_default().extend(text),
        Persist::Replace { file, text } => {
            s.durable.insert(*file, text.clone());
        }
        Persist::Reject { file, text } => s.rejected.entry(*file).or_default().extend(text),
        Persist::Backup { name, text, .. } => {
            s.backups.insert(name.clone(), text.clone());
        }
    }
}

impl Disk {
    /// A fresh data folder; `seed` drives what a [`CrashLoss::TornTail`] crash keeps.
    pub fn new(loss: CrashLoss, seed: u64) -> Self {
        Disk(Rc::new(RefCell::new(State {
            durable: BTreeMap::new(),
            rejected: BTreeMap::new(),
            backups: BTreeMap::new(),
            pending: Vec::new(),
            loss,
            rng: Rng::new(seed, 0xD15C),
            fsyncs: 0,
            boots: 0,
            full: false,
        })))
    }

    /// Put `text` in `file` before the server first starts (credentials, say).
    pub fn preload(&self, file: DataFile, text: &str) {
        self.0.borrow_mut().durable.insert(file, text.into());
    }

    /// Put `line` (and a `\n`) first in the durable content of `file`, behind the server's
    /// back: a damaged line, say, as a bad disk or a careless editor leaves it. Takes effect at
    /// the next boot; put first so it cannot merge with a torn last line.
    pub fn damage(&self, file: DataFile, line: &[u8]) {
        let mut s = self.0.borrow_mut();
        let text = s.durable.entry(file).or_default();
        let mut damaged = line.to_vec();
        damaged.push(b'\n');
        damaged.extend_from_slice(text);
        *text = damaged;
    }

    /// Write a record; it is not durable until the next [`Disk::fsync`].
    pub fn write(&self, p: Persist) {
        self.0.borrow_mut().pending.push(p);
    }

    /// Make every written record durable.
    pub fn fsync(&self) {
        let mut s = self.0.borrow_mut();
        let pending = std::mem::take(&mut s.pending);
        for p in &pending {
            apply(&mut s, p);
        }
        s.fsyncs += 1;
    }

    /// The server host starts: whatever was not synced is lost (or partly kept, see
    /// [`CrashLoss`]); returns the files as `Server::new` reads them.
    pub fn boot(&self) -> DataFiles {
        let mut s = self.0.borrow_mut();
        let pending = std::mem::take(&mut s.pending);
        if s.loss == CrashLoss::TornTail && !pending.is_empty() {
            let keep = s.rng.index(pending.len() + 1);
            for p in &pending[..keep] {
                apply(&mut s, p);
            }
            if let Some(Persist::Append { file, text }) = pending.get(keep) {
                // Cut anywhere, even inside a character: a disk tears bytes, not text.
                let cut = s.rng.index(text.len() + 1);
                let torn = Persist::Append {
                    file: *file,
                    text: text[..cut].to_vec(),
                };
                apply(&mut s, &torn);
            }
        }
        s.boots += 1;
        drop(s);
        self.files()
    }

    /// The durable files as `Server::new` reads them (what a driver re-reads after a failed
    /// write), with no crash.
    pub fn files(&self) -> DataFiles {
        let s = self.0.borrow();
        let mut files = DataFiles::new();
        for (f, t) in &s.durable {
            files.insert(*f, t.clone());
        }
        for f in READ_BACK {
            if let Some(t) = s.rejected.get(&f) {
                files.insert_rejected(f, t.clone());
            }
        }
        files
    }

    /// Make the disk full (every write fails, nothing is written) or free it again.
    pub fn set_full(&self, full: bool) {
        self.0.borrow_mut().full = full;
    }

    /// Whether writes fail now.
    pub fn is_full(&self) -> bool {
        self.0.borrow().full
    }

    /// The durable content of `file` as text (empty if it was never written; bytes that are
    /// not UTF-8 show as U+FFFD: see [`Disk::durable_bytes`]).
    pub fn durable(&self, file: DataFile) -> String {
        String::from_utf8_lossy(&self.durable_bytes(file)).into_owned()
    }

    /// The durable content of `file`, byte for byte.
    pub fn durable_bytes(&self, file: DataFile) -> Vec<u8> {
        self.0
            .borrow()
            .durable
            .get(&file)
            .cloned()
            .unwrap_or_default()
    }

    /// The durable content of `<file>.rejected`.
    pub fn rejected(&self, file: DataFile) -> Vec<u8> {
        self.0
            .borrow()
            .rejected
            .get(&file)
            .cloned()
            .unwrap_or_default()
    }

    /// The backup copies written so far, by file name.
    pub fn backups(&self) -> BTreeMap<String, Vec<u8>> {
        self.0.borrow().backups.clone()
    }

    /// Whether some written records still wait for an fsync.
    pub fn has_pending(&self) -> bool {
        !self.0.borrow().pending.is_empty()
    }

    /// How many fsyncs so far (group commit makes this far fewer than the records).
    pub fn fsyncs(&self) -> u64 {
        self.0.borrow().fsyncs
    }

    /// How many times the server booted from this disk.
    pub fn boots(&self) -> u64 {
        self.0.borrow().boots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(text: &str) -> Persist {
        Persist::Append {
            file: DataFile::MessageLog,
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_synced_records_survive_a_crash() {
        let d = Disk::new(CrashLoss::All, 1);
        d.write(append("a\n"));
        d.fsync();
        d.write(append("b\n"));
        d.boot();
        assert_eq!(d.durable(DataFile::MessageLog), "a\n");
    }

    #[test]
    fn a_torn_tail_keeps_a_prefix_of_the_unsynced_writes() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = Disk::new(CrashLoss::TornTail, seed);
            d.write(append("a\n"));
            d.fsync();
            d.write(append("bb\n"));
            d.write(append("cc\n"));
            d.boot();
            let text = d.durable(DataFile::MessageLog);
            assert!("a\nbb\ncc\n".starts_with(&text) && text.starts_with("a\n"));
            seen.insert(text);
        }
        assert!(seen.len() > 3, "torn crashes should vary: {seen:?}");
    }
}
