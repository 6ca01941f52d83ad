//! The data folder on disk: the one place that reads and writes the server's files.
//!
//! The server core says *what* must be durable ([`Persist`] records); this module says *how*:
//! - an append opens the file with `O_APPEND`, writes, and fsyncs it;
//! - a replace writes `name.tmp`, fsyncs it, renames it over `name`, then fsyncs the folder,
//!   so a reader (or a restart after `kill -9`) sees either the old file or the new one,
//!   never half of either;
//! - a whole batch is applied with **one** fsync per touched file (group commit): records for
//!   the same file are folded together first, so ten posts in one batch cost one fsync.
//!
//! Kept free of anything thread- or executor-specific so the smol runtime can share it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use huddle_core::server::DataFiles;
use huddle_core::store::{DataFile, Persist};

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
}

/// The server's data folder.
///
/// Cheap to hold: it keeps only the path and opens files per batch, so a replaced file (new
/// inode) is never written through a stale handle.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

/// What one batch does to one file after folding its records together.
enum Plan {
    /// Only appends: write this text at the end.
    Append(String),
    /// At least one replace: the file's whole new content (the last replace plus any later
    /// appends).
    Replace(String),
}

impl DataDir {
    /// Use `path` as the data folder, creating it (and its parents) if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let path = path.into();
        fs::create_dir_all(&path).map_err(|source| DataDirError::CreateFolder {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `file` lives.
    pub fn file_path(&self, file: DataFile) -> PathBuf {
        self.path.join(file.file_name())
    }

    fn temp_path(&self, file: DataFile) -> PathBuf {
        self.path.join(format!("{}.tmp", file.file_name()))
    }

    /// Read every data file for [`huddle_core::server::Server::new`].
    ///
    /// A missing file is left out (a fresh folder); bytes that are not UTF-8 are replaced with
    /// U+FFFD so the core can report the damaged lines instead of the server refusing to start.
    /// A leftover `name.tmp` from a crash mid-replace is ignored: the rename never happened, so
    /// `name` still holds the last durable content.
    pub fn load(&self) -> Result<DataFiles, DataDirError> {
        let mut files = DataFiles::new();
        for file in DataFile::ALL {
            let path = self.file_path(file);
            match fs::read(&path) {
                Ok(bytes) => {
                    files.insert(file, String::from_utf8_lossy(&bytes).into_owned());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(DataDirError::Read { path, source }),
            }
        }
        Ok(files)
    }

    /// Make a batch of records durable: when this returns `Ok`, every record survives a crash.
    ///
    /// Records are applied in order per file; files are independent. One fsync per touched
    /// file, plus one of the folder if a file was created or replaced.
    pub fn apply<'a>(
        &self,
        batch: impl IntoIterator<Item = &'a Persist>,
    ) -> Result<(), DataDirError> {
        let mut plans: BTreeMap<DataFile, Plan> = BTreeMap::new();
        for record in batch {
            match record {
                Persist::Append { file, text } => match plans.get_mut(file) {
                    Some(Plan::Append(s) | Plan::Replace(s)) => s.push_str(text),
                    None => {
                        plans.insert(*file, Plan::Append(text.clone()));
                    }
                },
                Persist::Replace { file, text } => {
                    plans.insert(*file, Plan::Replace(text.clone()));
                }
            }
        }
        let mut sync_folder = false;
        for (file, plan) in &plans {
            sync_folder |= match plan {
                Plan::Append(text) => self.append(*file, text)?,
                Plan::Replace(text) => {
                    self.replace(*file, text)?;
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
    fn append(&self, file: DataFile, text: &str) -> Result<bool, DataDirError> {
        let path = self.file_path(file);
        let err = |source| DataDirError::Append {
            path: path.clone(),
            source,
        };
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_data().map_err(|source| DataDirError::Sync {
            path: path.clone(),
            source,
        })?;
        Ok(created)
    }

    /// Write `name.tmp`, fsync it, rename it over `name` (the folder is synced by the caller).
    fn replace(&self, file: DataFile, text: &str) -> Result<(), DataDirError> {
        let tmp = self.temp_path(file);
        let to = self.file_path(file);
        let err = |source| DataDirError::WriteTemp {
            path: tmp.clone(),
            source,
        };
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(|source| DataDirError::Sync {
            path: tmp.clone(),
            source,
        })?;
        drop(f);
        fs::rename(&tmp, &to).map_err(|source| DataDirError::Rename {
            from: tmp.clone(),
            to: to.clone(),
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
            text: text.to_string(),
        }
    }

    fn replace(file: DataFile, text: &str) -> Persist {
        Persist::Replace {
            file,
            text: text.to_string(),
        }
    }

    #[test]
    fn a_missing_folder_is_created_and_loads_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("a/b")).unwrap();
        assert!(dir.path().is_dir());
        let files = dir.load().unwrap();
        for file in DataFile::ALL {
            assert_eq!(files.get(file), "");
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
        assert_eq!(again.get(DataFile::MessageLog), "1; a\n2; b\n3; c\n");
        assert_eq!(again.get(DataFile::UserLog), "");
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
        assert_eq!(files.get(DataFile::Inbox), "new\nkept\n");
        assert_eq!(files.get(DataFile::Blocks), "a; b\n");
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_then_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.apply(&[replace(DataFile::Logins, "yoda; x; -\n")])
            .unwrap();
        // A crash between writing the temporary copy and renaming it leaves this behind.
        fs::write(dir.temp_path(DataFile::Logins), "half a fi").unwrap();
        assert_eq!(dir.load().unwrap().get(DataFile::Logins), "yoda; x; -\n");
        dir.apply(&[replace(DataFile::Logins, "luke; y; -\n")])
            .unwrap();
        assert_eq!(dir.load().unwrap().get(DataFile::Logins), "luke; y; -\n");
        assert!(!dir.temp_path(DataFile::Logins).exists());
    }

    #[test]
    fn invalid_utf8_is_loaded_lossily() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        fs::write(dir.file_path(DataFile::Credentials), b"yoda \xffjedi\n").unwrap();
        assert_eq!(
            dir.load().unwrap().get(DataFile::Credentials),
            "yoda \u{fffd}jedi\n"
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
