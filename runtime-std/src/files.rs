//! The file side of uploads and downloads: carries out the client core's [`FileOp`]s.
//!
//! Shared by both runtimes (file I/O is blocking either way and fast next to the network).
//! The files themselves are [`SourceFile`] and [`PartFile`] of the UDP driver: sources are
//! read as the sender asks, downloads are written to `<name>.part`, fsynced and given their
//! final name with a hard link only after the core verified the whole-file hash, so an existing
//! file is never overwritten, not even one created a moment before.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use huddle_core::client::{FileOp, FileProblem, FileResult};
use huddle_core::transfer::TransferId;

use crate::udp::files::{PartFile, SourceFile};

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
                Err(e) => Some((id, failed(e))),
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
            FileOp::CreatePart { id, name } => {
                let created = fs::create_dir_all(&self.downloads)
                    .map_err(|e| problem(&e))
                    .and_then(|()| {
                        PartFile::create(&self.downloads, &name, true)
                            .map_err(|e| FileProblem::Other(e.to_string()))
                    });
                match created {
                    Ok(part) => {
                        self.parts.insert(id, part);
                        None
                    }
                    Err(p) => Some((id, FileResult::Failed(p))),
                }
            }
            FileOp::Write { id, offset, data } => {
                let part = self.parts.get_mut(&id)?;
                part.write_at(offset, data)
                    .err()
                    .map(|e| (id, FileResult::Failed(problem(&e))))
            }
            FileOp::Finish { id, .. } => {
                let Some(mut part) = self.parts.remove(&id) else {
                    return Some((id, failed("the .part file is gone")));
                };
                Some(match part.finish() {
                    Ok(path) => {
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        (id, FileResult::Saved { name })
                    }
                    Err(e) => (id, failed(e)),
                })
            }
            FileOp::Discard { id } => {
                if let Some(mut part) = self.parts.remove(&id) {
                    part.discard();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_download_is_saved_without_overwriting_and_its_part_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("yoda_a.mp4"), b"old").unwrap();
        let mut files = TransferFiles::new(dir.path().to_path_buf());
        let id = TransferId(1);
        assert_eq!(
            files.apply(FileOp::CreatePart {
                id,
                name: "yoda_a.mp4".into()
            }),
            None
        );
        let parts = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".part")
                })
                .count()
        };
        assert_eq!(parts(), 1);
        files.apply(FileOp::Write {
            id,
            offset: 0,
            data: Bytes::from_static(b"new!"),
        });
        let r = files.apply(FileOp::Finish {
            id,
            name: "yoda_a.mp4".into(),
        });
        assert_eq!(
            r,
            Some((
                id,
                FileResult::Saved {
                    name: "yoda_a (1).mp4".into()
                }
            ))
        );
        assert_eq!(fs::read(dir.path().join("yoda_a.mp4")).unwrap(), b"old");
        assert_eq!(
            fs::read(dir.path().join("yoda_a (1).mp4")).unwrap(),
            b"new!"
        );
        assert_eq!(parts(), 0);
    }

    #[test]
    fn a_discarded_download_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = TransferFiles::new(dir.path().to_path_buf());
        files.apply(FileOp::CreatePart {
            id: TransferId(2),
            name: "x.mp4".into(),
        });
        files.apply(FileOp::Discard { id: TransferId(2) });
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
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
