//! The data folder on disk: the one place that reads and writes the server's files.
//!
//! The server core says *what* must be durable ([`Persist`] records); this module says *how*:
//! - an append opens the file with `O_APPEND`, writes, and fsyncs it;
//! - a replace writes `name.tmp`, fsyncs it, renames it over `name`, then fsyncs the folder,
//!   so a reader (or a restart after `kill -9`) sees either the old file or the new one,
//!   never half of either;
//! - a whole batch is applied with **one** fsync per touched file (group commit): records for
//!   the same file are folded together first, so ten posts in one batch cost one fsync;
//! - the loader's side files come first in a batch: a backup copy (`<file>.<time>.bak`,
//!   written like a replace) and rejected lines (`<file>.rejected`, appended), so the lines a
//!   start takes out of a file are on disk elsewhere before the file is replaced.
//!
//! Every content is bytes, written exactly: nothing here decodes or re-encodes text.
//!
//! Kept free of anything thread- or executor-specific so the smol runtime can share it.
//!
//! **Fault injection for tests**: with the environment variable
//! [`FAIL_WRITES_WHILE`] naming a file, every [`DataDir::apply`] fails (as a full disk does,
//! `ENOSPC`) while that file exists, so tests of the real binaries can turn a full disk on
//! and off. Unset (the normal case), nothing changes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use huddle_core::store::rejected::READ_BACK;
use huddle_core::store::{DamagedFiles, DataFile, DataFiles, Persist};

/// What went wrong in the data folder, naming the file and the step, so an operator can fix
/// permissions, free space or a wrong `--dir`.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The folder does not exist and could not be created.
    #[error("cannot create the data folder {path}: {source}")]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A data file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Appending to a data file failed (open or write).
    #[error("cannot append to {path}: {source}")]
    Append {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the temporary copy of a file being replaced failed.
    #[error("cannot write {path}: {source}")]
    WriteTemp {
        /// The temporary file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// fsync of a file failed: the data may not be on disk.
    #[error("cannot flush {path} to disk: {source}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Renaming the temporary copy over the real file failed.
    #[error("cannot rename {from} to {to}: {source}")]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The file it should replace.
        to: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// fsync of the folder failed: a new or replaced file may not survive a crash.
    #[error("cannot flush the data folder {path} to disk: {source}")]
    SyncFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Data files have damaged lines; the message lists them and says how to proceed.
    #[error("the data folder {path} has {damage}")]
    Damaged {
        /// The folder.
        path: PathBuf,
        /// Which lines, and what to do.
        damage: DamagedFiles,
    },
}

/// The server's data folder.
///
/// Cheap to hold: it keeps only the path and opens files per batch, so a replaced file (new
/// inode) is never written through a stale handle.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
    /// While this file exists, writes fail (see [`FAIL_WRITES_WHILE`]).
    fail_while: Option<PathBuf>,
}

/// The environment variable of the test hook: while the file it names exists, every write
/// to the data folder fails with `ENOSPC` ("No space left on device").
pub const FAIL_WRITES_WHILE: &str = "HUDDLE_FAIL_WRITES_WHILE";

/// What one batch does to one file after folding its records together.
enum Plan {
    /// Only appends: write these bytes at the end.
    Append(Vec<u8>),
    /// At least one replace: the file's whole new content (the last replace plus any later
    /// appends).
    Replace(Vec<u8>),
}

impl DataDir {
    /// Use `path` as the data folder, creating it (and its parents) if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let path = path.into();
        fs::create_dir_all(&path).map_err(|source| DataDirError::CreateFolder {
            path: path.clone(),
            source,
        })?;
        let fail_while = std::env::var_os(FAIL_WRITES_WHILE).map(PathBuf::from);
        Ok(Self { path, fail_while })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `file` lives.
    pub fn file_path(&self, file: DataFile) -> PathBuf {
        self.path.join(file.file_name())
    }

    #[cfg(test)]
    fn temp_path(&self, file: DataFile) -> PathBuf {
        self.path.join(format!("{}.tmp", file.file_name()))
    }

    /// Read every data file for [`huddle_core::server::Server::new`], byte for byte, and the
    /// rejected files the loader reads back (`credentials.txt.rejected`, for reserved names).
    ///
    /// A missing file is left out (a fresh folder). A leftover `name.tmp` from a crash
    /// mid-replace is ignored: the rename never happened, so `name` still holds the last
    /// durable content.
    pub fn load(&self) -> Result<DataFiles, DataDirError> {
        let mut files = DataFiles::new();
        for file in DataFile::ALL {
            if let Some(bytes) = self.read(&self.file_path(file))? {
                files.insert(file, bytes);
            }
        }
        for file in READ_BACK {
            if let Some(bytes) = self.read(&self.path.join(file.rejected_name()))? {
                files.insert_rejected(file, bytes);
            }
        }
        Ok(files)
    }

    /// The bytes of `path`, `None` if it does not exist.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, DataDirError> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataDirError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The loader refused the folder: the error that says so, with the folder's path.
    pub fn damaged(&self, damage: DamagedFiles) -> DataDirError {
        DataDirError::Damaged {
            path: self.path.clone(),
            damage,
        }
    }

    /// Make a batch of records durable: when this returns `Ok`, every record survives a crash.
    ///
    /// Backups and rejected lines are written (and synced) first; then data-file records are
    /// applied in order per file; files are independent. One fsync per touched file, plus one
    /// of the folder if a file was created or replaced.
    pub fn apply<'a>(
        &self,
        batch: impl IntoIterator<Item = &'a Persist>,
    ) -> Result<(), DataDirError> {
        if let Some(marker) = &self.fail_while
            && marker.exists()
        {
            return Err(DataDirError::Append {
                path: self.path.clone(),
                source: io::Error::from_raw_os_error(28),
            });
        }
        let mut plans: BTreeMap<DataFile, Plan> = BTreeMap::new();
        let mut rejected: BTreeMap<DataFile, Vec<u8>> = BTreeMap::new();
        let mut backups: Vec<(&str, &[u8])> = Vec::new();
        for record in batch {
            match record {
                Persist::Append { file, text } => match plans.get_mut(file) {
                    Some(Plan::Append(s) | Plan::Replace(s)) => s.extend_from_slice(text),
                    None => {
                        plans.insert(*file, Plan::Append(text.clone()));
                    }
                },
                Persist::Replace { file, text } => {
                    plans.insert(*file, Plan::Replace(text.clone()));
                }
                Persist::Reject { file, text } => {
                    rejected.entry(*file).or_default().extend_from_slice(text);
                }
                Persist::Backup { name, text, .. } => backups.push((name, text)),
            }
        }
        let mut sync_folder = false;
        for (name, text) in backups {
            self.write_atomically(&self.path.join(name), text)?;
            sync_folder = true;
        }
        for (file, text) in &rejected {
            sync_folder |= self.append_to(&self.path.join(file.rejected_name()), text)?;
        }
        if sync_folder && !plans.is_empty() {
            // The side files' names must be durable before a replace can take lines out.
            self.sync_folder()?;
        }
        for (file, plan) in &plans {
            sync_folder |= match plan {
                Plan::Append(text) => self.append_to(&self.file_path(*file), text)?,
                Plan::Replace(text) => {
                    self.write_atomically(&self.file_path(*file), text)?;
                    true
                }
            };
        }
        if sync_folder {
            self.sync_folder()?;
        }
        Ok(())
    }

    /// Append and fsync; returns whether the file was new (its folder entry needs an fsync).
    fn append_to(&self, path: &Path, text: &[u8]) -> Result<bool, DataDirError> {
        let err = |source| DataDirError::Append {
            path: path.to_path_buf(),
            source,
        };
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(err)?;
        f.write_all(text).map_err(err)?;
        f.sync_data().map_err(|source| DataDirError::Sync {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(created)
    }

    /// Write `<path>.tmp`, fsync it, rename it over `path` (the folder is synced by the caller).
    fn write_atomically(&self, to: &Path, text: &[u8]) -> Result<(), DataDirError> {
        let mut tmp = to.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let err = |source| DataDirError::WriteTemp {
            path: tmp.clone(),
            source,
        };
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(text).map_err(err)?;
        f.sync_all().map_err(|source| DataDirError::Sync {
            path: tmp.clone(),
            source,
        })?;
        drop(f);
        fs::rename(&tmp, to).map_err(|source| DataDirError::Rename {
            from: tmp.clone(),
            to: to.to_path_buf(),
            source,
        })
    }

    fn sync_folder(&self) -> Result<(), DataDirError> {
        let err = |source| DataDirError::SyncFolder {
            path: self.path.clone(),
            source,
        };
        File::open(&self.path).map_err(err)?.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(file: DataFile, text: &str) -> Persist {
        Persist::Append {
            file,
            text: text.into(),
        }
    }

    fn replace(file: DataFile, text: &str) -> Persist {
        Persist::Replace {
            file,
            text: text.into(),
        }
    }

    #[test]
    fn a_missing_folder_is_created_and_loads_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("a/b")).unwrap();
        assert!(dir.path().is_dir());
        let files = dir.load().unwrap();
        for file in DataFile::ALL {
            assert_eq!(files.get(file), b"");
        }
    }

    #[test]
    fn appends_and_replaces_are_read_back_after_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.apply(&[
            append(DataFile::MessageLog, "1; a\n"),
            replace(DataFile::UserLog, "1; yoda\n"),
        ])
        .unwrap();
        dir.apply(&[
            append(DataFile::MessageLog, "2; b\n"),
            append(DataFile::MessageLog, "3; c\n"),
            replace(DataFile::UserLog, ""),
        ])
        .unwrap();
        let again = DataDir::open(tmp.path()).unwrap().load().unwrap();
        assert_eq!(again.get(DataFile::MessageLog), b"1; a\n2; b\n3; c\n");
        assert_eq!(again.get(DataFile::UserLog), b"");
        assert!(dir.file_path(DataFile::UserLog).exists());
    }

    #[test]
    fn records_for_one_file_apply_in_order_within_a_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.apply(&[append(DataFile::Inbox, "old\n")]).unwrap();
        dir.apply(&[
            append(DataFile::Inbox, "lost\n"),
            replace(DataFile::Inbox, "new\n"),
            append(DataFile::Inbox, "kept\n"),
            append(DataFile::Blocks, "a; b\n"),
        ])
        .unwrap();
        let files = dir.load().unwrap();
        assert_eq!(files.get(DataFile::Inbox), b"new\nkept\n");
        assert_eq!(files.get(DataFile::Blocks), b"a; b\n");
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_then_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.apply(&[replace(DataFile::Logins, "yoda; x; -\n")])
            .unwrap();
        // A crash between writing the temporary copy and renaming it leaves this behind.
        fs::write(dir.temp_path(DataFile::Logins), "half a fi").unwrap();
        assert_eq!(dir.load().unwrap().get(DataFile::Logins), b"yoda; x; -\n");
        dir.apply(&[replace(DataFile::Logins, "luke; y; -\n")])
            .unwrap();
        assert_eq!(dir.load().unwrap().get(DataFile::Logins), b"luke; y; -\n");
        assert!(!dir.temp_path(DataFile::Logins).exists());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_loaded_and_written_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        fs::write(dir.file_path(DataFile::Credentials), b"yoda \xffjedi\n").unwrap();
        assert_eq!(
            dir.load().unwrap().get(DataFile::Credentials),
            b"yoda \xffjedi\n"
        );
        dir.apply(&[Persist::Replace {
            file: DataFile::MessageLog,
            text: b"1; x; y; caf\xe9; no\n".to_vec(),
        }])
        .unwrap();
        assert_eq!(
            fs::read(dir.file_path(DataFile::MessageLog)).unwrap(),
            b"1; x; y; caf\xe9; no\n"
        );
    }

    #[test]
    fn backups_and_rejected_lines_are_written_beside_the_file_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let entry = b"# t; credentials.txt line 2; damaged; why\nluke\tr2d2\n".to_vec();
        dir.apply(&[
            Persist::Backup {
                file: DataFile::Credentials,
                name: "credentials.txt.x.bak".into(),
                text: b"yoda jedi\nluke\tr2d2\n".to_vec(),
            },
            Persist::Reject {
                file: DataFile::Credentials,
                text: entry.clone(),
            },
            replace(DataFile::Credentials, "yoda jedi\n"),
        ])
        .unwrap();
        assert_eq!(
            fs::read(tmp.path().join("credentials.txt.x.bak")).unwrap(),
            b"yoda jedi\nluke\tr2d2\n"
        );
        let files = dir.load().unwrap();
        assert_eq!(files.get(DataFile::Credentials), b"yoda jedi\n");
        assert_eq!(files.rejected(DataFile::Credentials), entry.as_slice());
        // A second repair appends to the rejected file.
        dir.apply(&[Persist::Reject {
            file: DataFile::Credentials,
            text: entry.clone(),
        }])
        .unwrap();
        assert_eq!(
            dir.load().unwrap().rejected(DataFile::Credentials).len(),
            2 * entry.len()
        );
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        // A folder where the file should be makes every write fail.
        fs::create_dir(dir.file_path(DataFile::MessageLog)).unwrap();
        let e = dir
            .apply(&[append(DataFile::MessageLog, "1; a\n")])
            .unwrap_err();
        assert!(e.to_string().contains("messagelog.txt"), "{e}");
    }
}
