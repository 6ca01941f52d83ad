//! The file side of uploads and downloads: carries out the client core's [`FileOp`]s.
//!
//! Shared by both runtimes (file I/O is blocking either way and fast next to the network).
//! Sources are read with positioned reads; downloads are written to `<name>.part` and linked
//! to their final name only after the core verified the whole-file hash, with a hard link so
//! that an existing file is never overwritten, not even one created a moment before.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use huddle_core::client::{FileOp, FileProblem, FileResult};
use huddle_core::transfer::{TransferId, unique_name};

/// Open sources and part files, by transfer.
#[derive(Debug)]
pub struct TransferFiles {
    downloads: PathBuf,
    sources: HashMap<TransferId, File>,
    parts: HashMap<TransferId, (File, PathBuf)>,
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
            FileOp::OpenSource { id, path } => match File::open(&path) {
                Ok(f) => {
                    self.sources.insert(id, f);
                    None
                }
                Err(e) => Some((id, FileResult::Failed(problem(&e)))),
            },
            FileOp::Read { id, offset, len } => {
                let Some(f) = self.sources.get(&id) else {
                    return Some((
                        id,
                        FileResult::Failed(FileProblem::Other("the source is not open".into())),
                    ));
                };
                let mut buf = vec![0u8; len];
                Some(match f.read_exact_at(&mut buf, offset) {
                    Ok(()) => (
                        id,
                        FileResult::Data {
                            offset,
                            data: Bytes::from(buf),
                        },
                    ),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => (
                        id,
                        FileResult::Failed(FileProblem::Other(
                            "the file shrank during the upload".into(),
                        )),
                    ),
                    Err(e) => (id, FileResult::Failed(problem(&e))),
                })
            }
            FileOp::CloseSource { id } => {
                self.sources.remove(&id);
                None
            }
            FileOp::CreatePart { id, name } => match self.create_part(&name) {
                Ok((f, path)) => {
                    self.parts.insert(id, (f, path));
                    None
                }
                Err(e) => Some((id, FileResult::Failed(problem(&e)))),
            },
            FileOp::Write { id, offset, data } => {
                let (f, _) = self.parts.get(&id)?;
                f.write_all_at(&data, offset)
                    .err()
                    .map(|e| (id, FileResult::Failed(problem(&e))))
            }
            FileOp::Finish { id, name } => {
                let Some((f, part)) = self.parts.remove(&id) else {
                    return Some((
                        id,
                        FileResult::Failed(FileProblem::Other("the part file is gone".into())),
                    ));
                };
                Some(match self.finish(f, &part, &name) {
                    Ok(saved) => (id, FileResult::Saved { name: saved }),
                    Err(e) => {
                        let _ = fs::remove_file(&part);
                        (id, FileResult::Failed(problem(&e)))
                    }
                })
            }
            FileOp::Discard { id } => {
                if let Some((_, part)) = self.parts.remove(&id) {
                    let _ = fs::remove_file(part);
                }
                None
            }
        }
    }

    fn create_part(&self, name: &str) -> io::Result<(File, PathBuf)> {
        fs::create_dir_all(&self.downloads)?;
        let wanted = format!("{name}.part");
        let part_name = unique_name(&wanted, |n| self.downloads.join(n).exists())
            .map_err(|e| io::Error::new(io::ErrorKind::AlreadyExists, e.to_string()))?;
        let path = self.downloads.join(part_name);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((f, path))
    }

    fn finish(&self, f: File, part: &Path, name: &str) -> io::Result<String> {
        f.sync_all()?;
        drop(f);
        loop {
            let chosen = unique_name(name, |n| self.downloads.join(n).exists())
                .map_err(|e| io::Error::new(io::ErrorKind::AlreadyExists, e.to_string()))?;
            match fs::hard_link(part, self.downloads.join(&chosen)) {
                Ok(()) => {
                    fs::remove_file(part)?;
                    if let Ok(dir) = File::open(&self.downloads) {
                        let _ = dir.sync_all();
                    }
                    return Ok(chosen);
                }
                // Someone created that name between the check and the link: pick again.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(dir.path().join("yoda_a.mp4.part").exists());
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
        assert!(!dir.path().join("yoda_a.mp4.part").exists());
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
