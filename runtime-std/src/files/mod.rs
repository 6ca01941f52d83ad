//! The file side of uploads and downloads: carries out the client core's [`FileOp`]s.
//!
//! Shared by both runtimes (file I/O is blocking either way and fast next to the network).
//! Sources are read as the sender asks ([`SourceFile`]); downloads are written to the part file
//! the core names, fsynced, and given exactly the final name the core offers, never over an
//! existing file ([`PartFile`]). Nothing is decided here: names, retries and clean-up rules come
//! from the core.

mod part;
mod source;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use huddle_core::client::{FileOp, FileProblem, FileResult};
use huddle_core::transfer::TransferId;

pub use part::{Finished, PartFile, remove_stale_parts};
pub use source::SourceFile;

/// Open sources and part files, by transfer.
pub struct TransferFiles {
    downloads: PathBuf,
    sources: HashMap<TransferId, SourceFile>,
    parts: HashMap<TransferId, PartFile>,
}

/// What the user should read for an I/O error.
pub fn problem(e: &io::Error) -> FileProblem {
    match e.kind() {
        io::ErrorKind::NotFound => FileProblem::NotFound,
        io::ErrorKind::PermissionDenied => FileProblem::PermissionDenied,
        io::ErrorKind::IsADirectory => FileProblem::IsDirectory,
        _ => FileProblem::Other(e.to_string()),
    }
}

/// Check a file the user wants to upload: it must exist, be a regular file and be readable.
pub fn inspect(path: &str) -> Result<u64, FileProblem> {
    let meta = fs::metadata(path).map_err(|e| problem(&e))?;
    if meta.is_dir() {
        return Err(FileProblem::IsDirectory);
    }
    if !meta.is_file() {
        return Err(FileProblem::NotRegular);
    }
    File::open(path).map_err(|e| problem(&e))?;
    Ok(meta.len())
}

fn failed(e: impl std::fmt::Display) -> FileResult {
    FileResult::Failed(FileProblem::Other(e.to_string()))
}

impl TransferFiles {
    /// Files for transfers, saving downloads into `downloads`.
    pub fn new(downloads: PathBuf) -> Self {
        Self {
            downloads,
            sources: HashMap::new(),
            parts: HashMap::new(),
        }
    }

    /// Carry out `op`; returns the answer the core expects, if any.
    pub fn apply(&mut self, op: FileOp) -> Option<(TransferId, FileResult)> {
        match op {
            FileOp::OpenSource { id, path } => match SourceFile::open(Path::new(&path)) {
                Ok(f) => {
                    self.sources.insert(id, f);
                    None
                }
                Err(e) => Some((id, FileResult::Failed(problem(&e)))),
            },
            FileOp::Read { id, offset, len } => {
                let Some(f) = self.sources.get_mut(&id) else {
                    return Some((id, failed("the source file is not open")));
                };
                Some(match f.read_at(offset, len) {
                    Ok(data) => (id, FileResult::Data { offset, data }),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        (id, failed("the file shrank during the upload"))
                    }
                    Err(e) => (id, FileResult::Failed(problem(&e))),
                })
            }
            FileOp::CloseSource { id } => {
                self.sources.remove(&id);
                None
            }
            FileOp::CreatePart { id, part } => {
                let created = fs::create_dir_all(&self.downloads)
                    .and_then(|()| PartFile::create(&self.downloads, &part, true));
                match created {
                    Ok(f) => {
                        self.parts.insert(id, f);
                        None
                    }
                    Err(e) => Some((id, FileResult::Failed(problem(&e)))),
                }
            }
            FileOp::Write { id, offset, data } => {
                let part = self.parts.get_mut(&id)?;
                part.write_at(offset, data)
                    .err()
                    .map(|e| (id, FileResult::Failed(problem(&e))))
            }
            FileOp::Finish { id, name } => {
                let Some(part) = self.parts.get_mut(&id) else {
                    return Some((id, failed("the part file is gone")));
                };
                let result = match part.finish(&self.downloads.join(&name)) {
                    Ok(Finished::Saved(_)) => {
                        self.parts.remove(&id);
                        FileResult::Saved { name }
                    }
                    Ok(Finished::NameTaken) => FileResult::NameTaken,
                    Err(e) => FileResult::Failed(problem(&e)),
                };
                Some((id, result))
            }
            FileOp::Discard { id } => {
                if let Some(mut part) = self.parts.remove(&id) {
                    part.discard();
                }
                None
            }
            FileOp::RemoveStaleParts => {
                remove_stale_parts(&self.downloads);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn parts(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                huddle_core::transfer::is_part_name(
                    &e.as_ref().unwrap().file_name().to_string_lossy(),
                )
            })
            .count()
    }

    #[test]
    fn a_download_takes_exactly_the_offered_name_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("yoda_a.mp4"), b"old").unwrap();
        let mut files = TransferFiles::new(dir.path().to_path_buf());
        let id = TransferId(1);
        let part = huddle_core::transfer::part_name("yoda_a.mp4", id);
        assert_eq!(files.apply(FileOp::CreatePart { id, part }), None);
        assert_eq!(parts(dir.path()), 1);
        files.apply(FileOp::Write {
            id,
            offset: 0,
            data: Bytes::from_static(b"new!"),
        });
        let finish = |files: &mut TransferFiles, name: &str| {
            files.apply(FileOp::Finish {
                id,
                name: name.into(),
            })
        };
        assert_eq!(
            finish(&mut files, "yoda_a.mp4"),
            Some((id, FileResult::NameTaken))
        );
        assert_eq!(fs::read(dir.path().join("yoda_a.mp4")).unwrap(), b"old");
        assert_eq!(
            finish(&mut files, "yoda_a (1).mp4"),
            Some((
                id,
                FileResult::Saved {
                    name: "yoda_a (1).mp4".into()
                }
            ))
        );
        assert_eq!(
            fs::read(dir.path().join("yoda_a (1).mp4")).unwrap(),
            b"new!"
        );
        assert_eq!(parts(dir.path()), 0);
    }

    #[test]
    fn a_discarded_download_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = TransferFiles::new(dir.path().to_path_buf());
        let id = TransferId(2);
        let part = huddle_core::transfer::part_name("x.mp4", id);
        files.apply(FileOp::CreatePart { id, part });
        files.apply(FileOp::Discard { id });
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_part_file_nobody_holds_is_removed_at_start_and_a_held_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Left by a crash: nobody holds it.
        let stale = dir.path().join("yoda_a.mp4.0000000000000001.part");
        fs::write(&stale, b"half a file").unwrap();
        // Being written by another client in the same folder.
        let mut other = TransferFiles::new(dir.path().to_path_buf());
        let id = TransferId(2);
        let live = huddle_core::transfer::part_name("yoda_b.mp4", id);
        other.apply(FileOp::CreatePart {
            id,
            part: live.clone(),
        });
        // Not a part file at all.
        fs::write(dir.path().join("notes.txt"), b"keep").unwrap();

        let mut starting = TransferFiles::new(dir.path().to_path_buf());
        assert_eq!(starting.apply(FileOp::RemoveStaleParts), None);
        assert!(!stale.exists(), "the crash's leftover is removed");
        assert!(
            dir.path().join(&live).exists(),
            "a running download is kept"
        );
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn a_part_file_cannot_be_created_where_the_folder_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_folder = dir.path().join("downloads");
        fs::write(&not_a_folder, b"").unwrap();
        let mut files = TransferFiles::new(not_a_folder);
        let id = TransferId(3);
        let part = huddle_core::transfer::part_name("x.mp4", id);
        assert!(matches!(
            files.apply(FileOp::CreatePart { id, part }),
            Some((_, FileResult::Failed(_)))
        ));
    }

    #[test]
    fn inspect_refuses_missing_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            inspect(missing.to_str().unwrap()),
            Err(FileProblem::NotFound)
        );
        assert_eq!(
            inspect(dir.path().to_str().unwrap()),
            Err(FileProblem::IsDirectory)
        );
        let f = dir.path().join("f");
        fs::write(&f, b"12345").unwrap();
        assert_eq!(inspect(f.to_str().unwrap()), Ok(5));
    }
}
