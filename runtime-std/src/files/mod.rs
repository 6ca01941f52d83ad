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

pub use part::{Finished, PartFile, find_kept, remove_stale_parts};
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
            FileOp::RemoveStaleParts { now, max_age_ms } => {
                remove_stale_parts(&self.downloads, now, max_age_ms);
                None
            }
            FileOp::KeepPart { id, held, sidecar } => {
                if let Some(mut part) = self.parts.remove(&id) {
                    // On failure the part is removed (no answer: see `FileOp::KeepPart`).
                    let _ = part.keep(held, &sidecar);
                }
                None
            }
            FileOp::FindResumable { id, saved_as } => Some((
                id,
                FileResult::Resumable(find_kept(&self.downloads, &saved_as)),
            )),
            FileOp::OpenPart { id, part, keep } => Some(
                match PartFile::open_kept(&self.downloads, &part, keep, true) {
                    Ok((f, len)) => {
                        self.parts.insert(id, f);
                        (id, FileResult::Resumed { len })
                    }
                    Err(e) => (id, FileResult::Failed(problem(&e))),
                },
            ),
            FileOp::ReadPart { id, offset, len } => {
                let Some(part) = self.parts.get_mut(&id) else {
                    return Some((id, failed("the part file is not open")));
                };
                Some(match part.read_at(offset, len) {
                    Ok(data) => (id, FileResult::Data { offset, data }),
                    Err(e) => (id, FileResult::Failed(problem(&e))),
                })
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
        let now = huddle_core::UnixMillis(1_800_000_000_000);
        let op = FileOp::RemoveStaleParts {
            now,
            max_age_ms: 1000,
        };
        assert_eq!(starting.apply(op), None);
        assert!(!stale.exists(), "the crash's leftover is removed");
        assert!(
            dir.path().join(&live).exists(),
            "a running download is kept"
        );
        assert!(dir.path().join("notes.txt").exists());
    }

    fn sidecar(held: u64, kept_at: u64) -> bytes::Bytes {
        use huddle_core::UserName;
        use huddle_core::transfer::resume::Sidecar;
        Bytes::from(
            Sidecar {
                from: UserName::new("yoda").unwrap(),
                to: UserName::new("luke").unwrap(),
                name: "a.mp4".into(),
                size: 10 << 20,
                held,
                kept_at: huddle_core::UnixMillis(kept_at),
            }
            .render(),
        )
    }

    #[test]
    fn a_kept_part_is_cut_described_found_reopened_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = TransferFiles::new(dir.path().to_path_buf());
        let id = TransferId(7);
        let part = huddle_core::transfer::part_name("yoda_a.mp4", id);
        files.apply(FileOp::CreatePart {
            id,
            part: part.clone(),
        });
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        files.apply(FileOp::Write {
            id,
            offset: 0,
            data: Bytes::from(data.clone()),
        });
        let held = 2_000_000;
        assert_eq!(
            files.apply(FileOp::KeepPart {
                id,
                held,
                sidecar: sidecar(held, 1),
            }),
            None
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(&part)).unwrap().len(),
            held
        );
        assert!(dir.path().join(format!("{part}.resume")).exists());

        // Another client, later: it finds the part, takes it, reads it back.
        let mut later = TransferFiles::new(dir.path().to_path_buf());
        let next = TransferId(8);
        let Some((_, FileResult::Resumable(found))) = later.apply(FileOp::FindResumable {
            id: next,
            saved_as: "yoda_a.mp4".into(),
        }) else {
            panic!("a list of kept parts");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].part.as_str(), found[0].len),
            (part.as_str(), held)
        );
        assert_eq!(found[0].sidecar, sidecar(held, 1));
        let opened = later.apply(FileOp::OpenPart {
            id: next,
            part: part.clone(),
            keep: 1_500_000,
        });
        assert_eq!(opened, Some((next, FileResult::Resumed { len: 1_500_000 })));
        assert!(
            !dir.path().join(format!("{part}.resume")).exists(),
            "a taken part has no sidecar: a crash now leaves a leftover"
        );
        let read = later.apply(FileOp::ReadPart {
            id: next,
            offset: 1_000_000,
            len: 1000,
        });
        assert_eq!(
            read,
            Some((
                next,
                FileResult::Data {
                    offset: 1_000_000,
                    data: Bytes::copy_from_slice(&data[1_000_000..1_001_000])
                }
            ))
        );
        // Reading past what it holds fails, and does not disturb the writes that follow.
        let past = later.apply(FileOp::ReadPart {
            id: next,
            offset: 1_400_000,
            len: 200_000,
        });
        assert!(matches!(past, Some((_, FileResult::Failed(_)))));
        // While it is taken, nobody else finds or opens it.
        let mut third = TransferFiles::new(dir.path().to_path_buf());
        assert_eq!(
            third.apply(FileOp::FindResumable {
                id: TransferId(9),
                saved_as: "yoda_a.mp4".into()
            }),
            Some((TransferId(9), FileResult::Resumable(Vec::new())))
        );
    }

    #[test]
    fn at_start_only_kept_parts_with_young_sidecars_stay() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: u8| {
            dir.path()
                .join(format!("yoda_a.mp4.00000000000000{n:02x}.part"))
        };
        let write = |n: u8, side: Option<Bytes>| {
            std::fs::write(p(n), b"bytes").unwrap();
            if let Some(s) = side {
                std::fs::write(format!("{}.resume", p(n).display()), s).unwrap();
            }
        };
        let now = 10_000u64;
        write(1, None); // a crash's leftover
        write(2, Some(sidecar(5, now - 100))); // young: kept
        write(3, Some(sidecar(5, now - 5_000))); // too old
        write(4, Some(Bytes::from_static(b"damaged"))); // damaged
        // A sidecar whose part is gone, and a half-written one.
        std::fs::write(dir.path().join("x.mp4.0000000000000005.part.resume"), b"x").unwrap();
        std::fs::write(dir.path().join("x.part.resume.new"), b"x").unwrap();
        let removed = remove_stale_parts(dir.path(), huddle_core::UnixMillis(now), 1_000);
        assert_eq!(removed, 3);
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(p(2).exists());
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
