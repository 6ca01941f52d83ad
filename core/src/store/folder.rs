//! The whole data folder at start: what the runtime read, what it holds, what is damaged, and
//! what must be written before anything is served.
//!
//! [`Folder::read`] parses every file. A line that cannot be loaded is never dropped in
//! silence:
//! - a **torn** last line (a write cut short by a crash, never acknowledged) is moved to
//!   `<file>.rejected` at every start;
//! - a **damaged** line makes the server refuse to start ([`DamagedFiles`] says which file,
//!   line and problem, and how to proceed), unless the operator asked for a repair: then it
//!   too is moved to `<file>.rejected`, and the file as it was is kept as `<file>.<time>.bak`.
//!
//! [`Folder::cleanup`] gives the records that do this; the server core emits them before any
//! other output.

use std::collections::{BTreeMap, BTreeSet};

use super::credentials::intended_name;
use super::rejected::{render_entry, reserved_names};
use super::{
    BlockRecord, Credential, DataFile, InboxRecord, LoadWarning, LoginRecord, Persist, PostRecord,
    Problem, parse_blocks, parse_credentials, parse_inbox, parse_logins, parse_messagelog,
};
use crate::time::{Timestamp, Zone};
use crate::types::UserName;

/// The contents of the data folder's files, byte for byte, as the driver read them at start.
///
/// A missing file is simply absent. Bytes that are not UTF-8 are handed in as they are: the
/// loader keeps them in messages and reports them where they cannot be (a name, a timestamp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFiles {
    files: BTreeMap<DataFile, Vec<u8>>,
    rejected: BTreeMap<DataFile, Vec<u8>>,
}

impl DataFiles {
    /// No files at all: a fresh data folder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the content of one file.
    pub fn insert(&mut self, file: DataFile, bytes: impl Into<Vec<u8>>) {
        self.files.insert(file, bytes.into());
    }

    /// The content of one file, empty if absent.
    pub fn get(&self, file: DataFile) -> &[u8] {
        self.files.get(&file).map(Vec::as_slice).unwrap_or(b"")
    }

    /// Set the content of `<file>.rejected`, for the files in
    /// [`super::rejected::READ_BACK`] (the others are never read back).
    pub fn insert_rejected(&mut self, file: DataFile, bytes: impl Into<Vec<u8>>) {
        self.rejected.insert(file, bytes.into());
    }

    /// The content of `<file>.rejected`, empty if absent.
    pub fn rejected(&self, file: DataFile) -> &[u8] {
        self.rejected.get(&file).map(Vec::as_slice).unwrap_or(b"")
    }
}

/// A name without an account that nobody may take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The name, as the file that keeps it reserved spells it.
    pub name: UserName,
    /// Why it is kept.
    pub why: Reason,
}

/// Why a name without an account is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its credentials line is damaged (now, or in an earlier start: see [`super::rejected`]):
    /// the account may exist and its line come back.
    DamagedLine,
    /// It wrote posts or private messages, or has private messages waiting, but
    /// `credentials.txt` has no line for it (removed by hand, or lost): whoever signed up as it
    /// could edit and delete those posts and read those messages.
    Authored {
        /// Its posts on the board.
        posts: usize,
        /// Private messages waiting that it sent or that are for it.
        letters: usize,
    },
}

/// Everything the data folder holds, parsed, and what the loader found wrong.
#[derive(Debug, Clone, Default)]
pub struct Folder {
    /// Accounts, in file order.
    pub credentials: Vec<Credential>,
    /// Names without an account that nobody may take: their credentials line is damaged (now
    /// or in an earlier start, see [`super::rejected`]), or they wrote posts or have private
    /// messages; each name once.
    pub reserved: Vec<Reserved>,
    /// The board.
    pub posts: Vec<PostRecord>,
    /// Private messages waiting.
    pub inbox: Vec<InboxRecord>,
    /// Who blocks whom.
    pub blocks: Vec<BlockRecord>,
    /// Last logins and logouts.
    pub logins: Vec<LoginRecord>,
    /// The id of each post, the next id, and what the operator should know about them.
    pub post_ids: super::postids::Assigned,
    /// Every problem, in file order.
    pub warnings: Vec<LoadWarning>,
}

impl Folder {
    /// Parse every file (`userlog.txt` is not read: nobody is online at start).
    pub fn read(files: &DataFiles, zone: Zone) -> Self {
        let mut warnings = Vec::new();
        let credentials = parse_credentials(files.get(DataFile::Credentials), &mut warnings);
        let posts = parse_messagelog(files.get(DataFile::MessageLog), zone, &mut warnings);
        let inbox = parse_inbox(files.get(DataFile::Inbox), zone, &mut warnings);
        let blocks = parse_blocks(files.get(DataFile::Blocks), &mut warnings);
        let logins = parse_logins(files.get(DataFile::Logins), zone, &mut warnings);
        let post_ids = super::postids::assign(&posts, files.get(DataFile::PostIds));
        let has_account: BTreeSet<&UserName> = credentials.iter().map(|c| &c.name).collect();
        let mut reserved: Vec<Reserved> = Vec::new();
        let damaged_now = warnings.iter().filter_map(|w| match &w.problem {
            Problem::Damaged { raw, .. } if w.file == DataFile::Credentials => intended_name(raw),
            _ => None,
        });
        let mut damaged: BTreeSet<UserName> = BTreeSet::new();
        for name in reserved_names(files.rejected(DataFile::Credentials))
            .into_iter()
            .chain(damaged_now)
        {
            if !has_account.contains(&name) && damaged.insert(name.clone()) {
                reserved.push(Reserved {
                    name,
                    why: Reason::DamagedLine,
                });
            }
        }
        // Authors without an account, in the order they first appear: (first seen, posts,
        // letters) each. A map, since a hostile file may name a new author on every line.
        let mut authored: BTreeMap<UserName, (usize, usize, usize)> = BTreeMap::new();
        let mut count = |name: &UserName, post: usize, letter: usize| {
            if has_account.contains(name) || damaged.contains(name) {
                return;
            }
            let seen = authored.len();
            let entry = authored.entry(name.clone()).or_insert((seen, 0, 0));
            entry.1 += post;
            entry.2 += letter;
        };
        for p in &posts {
            count(&p.author, 1, 0);
        }
        for r in &inbox {
            count(&r.from, 0, 1);
            if r.to != r.from {
                count(&r.to, 0, 1);
            }
        }
        let mut authored: Vec<_> = authored.into_iter().collect();
        authored.sort_by_key(|(_, (seen, _, _))| *seen);
        reserved.extend(
            authored
                .into_iter()
                .map(|(name, (_, posts, letters))| Reserved {
                    name,
                    why: Reason::Authored { posts, letters },
                }),
        );
        Self {
            credentials,
            reserved,
            posts,
            inbox,
            blocks,
            logins,
            post_ids,
            warnings,
        }
    }

    /// The damaged lines, if any: the reason to refuse to start without a repair.
    pub fn damage(&self) -> Option<DamagedFiles> {
        let lines: Vec<LoadWarning> = self
            .warnings
            .iter()
            .filter(|w| matches!(w.problem, Problem::Damaged { .. }))
            .cloned()
            .collect();
        (!lines.is_empty()).then_some(DamagedFiles { lines })
    }

    /// The files whose content must change because of what the loader found.
    pub fn files_to_rewrite(&self) -> BTreeSet<DataFile> {
        self.warnings.iter().map(|w| w.file).collect()
    }

    /// What to write before `file` is rewritten: a copy of it as it was (unless the only
    /// problem is a torn last line, which its `.rejected` entry keeps whole), then the
    /// entries of its rejected lines. `now` stamps both.
    pub fn cleanup(
        &self,
        files: &DataFiles,
        file: DataFile,
        zone: Zone,
        now: Timestamp,
    ) -> Vec<Persist> {
        let mine: Vec<&LoadWarning> = self.warnings.iter().filter(|w| w.file == file).collect();
        let mut out = Vec::new();
        if mine
            .iter()
            .any(|w| !matches!(w.problem, Problem::Torn { .. }))
        {
            out.push(Persist::Backup {
                file,
                name: backup_name(file, zone, now),
                text: files.get(file).to_vec(),
            });
        }
        let at = zone.render(now);
        let entries: Vec<u8> = mine
            .iter()
            .filter_map(|w| render_entry(w, &at))
            .flatten()
            .collect();
        if !entries.is_empty() {
            out.push(Persist::Reject {
                file,
                text: entries,
            });
        }
        out
    }

    /// `file`'s content without its rejected lines, every other byte kept (for a file the
    /// server never renders whole, such as `credentials.txt`).
    pub fn without_rejected(&self, files: &DataFiles, file: DataFile) -> Vec<u8> {
        let gone: BTreeSet<usize> = self
            .warnings
            .iter()
            .filter(|w| w.file == file && w.problem.rejected_bytes().is_some())
            .map(|w| w.line)
            .collect();
        let mut out = Vec::new();
        for (i, line) in files.get(file).split_inclusive(|&b| b == b'\n').enumerate() {
            if !gone.contains(&(i + 1)) {
                out.extend_from_slice(line);
            }
        }
        out
    }
}

/// The name of the copy a repair keeps of `file`, e.g. `messagelog.txt.2026-11-21_22-30-01.bak`.
pub fn backup_name(file: DataFile, zone: Zone, now: Timestamp) -> String {
    let c = zone.civil(now);
    format!(
        "{}.{:04}-{:02}-{:02}_{:02}-{:02}-{:02}.bak",
        file.file_name(),
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second
    )
}

/// How many damaged lines a refusal lists; the rest are counted.
pub const MAX_LINES_SHOWN: usize = 20;

/// How many bytes of a damaged line a refusal shows.
const MAX_BYTES_SHOWN: usize = 60;

/// Damaged lines in the data folder: the server will not start on them without a repair.
///
/// Its `Display` is the whole message for the operator: each file, line and problem, then how
/// to proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DamagedFiles {
    /// Every damaged line, in file order.
    pub lines: Vec<LoadWarning>,
}

impl std::fmt::Display for DamagedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lines.len();
        writeln!(f, "{n} damaged line{}:", if n == 1 { "" } else { "s" })?;
        for w in self.lines.iter().take(MAX_LINES_SHOWN) {
            let raw = w.problem.rejected_bytes().unwrap_or_default();
            let shown = &raw[..raw.len().min(MAX_BYTES_SHOWN)];
            let more = if raw.len() > MAX_BYTES_SHOWN {
                "…"
            } else {
                ""
            };
            writeln!(
                f,
                "  {} line {}: \"{}\"{more}\n      {}",
                w.file,
                w.line,
                shown.escape_ascii(),
                w.problem,
            )?;
        }
        if n > MAX_LINES_SHOWN {
            writeln!(f, "  … and {} more", n - MAX_LINES_SHOWN)?;
        }
        write!(
            f,
            "To proceed, fix or delete these lines by hand, or start the server with --repair: it \
             then moves each damaged line, byte for byte, to <file>.rejected beside its file \
             (after a line giving the time and the reason), keeps a copy of the file as it was \
             (<file>.<time>.bak), and starts without those lines. A user name whose credentials \
             line is damaged stays reserved (nobody can sign up as it) until its line is restored \
             in credentials.txt or its entry is deleted from credentials.txt.rejected."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(creds: &[u8], log: &[u8]) -> (DataFiles, Folder) {
        let mut files = DataFiles::new();
        files.insert(DataFile::Credentials, creds);
        files.insert(DataFile::MessageLog, log);
        let f = Folder::read(&files, Zone::UTC);
        (files, f)
    }

    #[test]
    fn a_refusal_names_file_line_problem_and_the_way_on() {
        let (_, f) = folder(
            b"yoda jedi\nluke\tr2d2\n",
            b"1; 21 Nov 2026 22:30:01; yoda; a; no\nx\n",
        );
        let text = f.damage().expect("damaged").to_string();
        assert!(text.starts_with("2 damaged lines:\n"), "{text}");
        assert!(
            text.contains("  credentials.txt line 2: \"luke\\tr2d2\"\n      expected"),
            "{text}"
        );
        assert!(text.contains("messagelog.txt line 2:"), "{text}");
        assert!(text.contains("--repair"), "{text}");
    }

    #[test]
    fn many_damaged_lines_are_counted_not_all_listed() {
        let creds: Vec<u8> = (0..100)
            .flat_map(|i| format!("user{i}\n").into_bytes())
            .collect();
        let (_, f) = folder(&creds, b"");
        let text = f.damage().unwrap().to_string();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("  credentials.txt line "))
                .count(),
            MAX_LINES_SHOWN
        );
        assert!(text.contains("… and 80 more"), "{text}");
    }

    #[test]
    fn a_damaged_credentials_line_reserves_its_name() {
        let (_, f) = folder(b"yoda jedi\nluke\tr2d2\nobiwan\nyoda other\n", b"");
        let reserved: Vec<&str> = f.reserved.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            reserved,
            ["luke", "obiwan"],
            "yoda has an account: not reserved"
        );
    }

    #[test]
    fn authors_without_an_account_are_reserved_once_each_in_order_with_their_counts() {
        let mut files = DataFiles::new();
        files.insert(DataFile::Credentials, b"yoda jedi\nluke\tr2d2\n".as_slice());
        files.insert(
            DataFile::MessageLog,
            b"1; 21 Nov 2026 10:00:00; ghost; a; no\n\
              2; 21 Nov 2026 10:00:01; YODA; b; no\n\
              3; 21 Nov 2026 10:00:02; Ghost; c; no\n\
              4; 21 Nov 2026 10:00:03; luke; d; no\n"
                .as_slice(),
        );
        files.insert(
            DataFile::Inbox,
            b"wraith; 21 Nov 2026 10:00:00; ghost; x\nyoda; 21 Nov 2026 10:00:00; luke; y\n"
                .as_slice(),
        );
        let f = Folder::read(&files, Zone::UTC);
        let n = |s: &str| UserName::new(s).unwrap();
        assert_eq!(
            f.reserved,
            [
                Reserved {
                    name: n("luke"),
                    why: Reason::DamagedLine
                },
                Reserved {
                    name: n("ghost"),
                    why: Reason::Authored {
                        posts: 2,
                        letters: 1
                    }
                },
                Reserved {
                    name: n("wraith"),
                    why: Reason::Authored {
                        posts: 0,
                        letters: 1
                    }
                },
            ],
            "yoda has an account; luke's line is damaged, which says more"
        );
    }

    #[test]
    fn a_log_naming_a_new_author_on_every_line_reserves_each_once() {
        let mut log = Vec::new();
        for i in 1..=20_000 {
            log.extend_from_slice(
                format!("{i}; 21 Nov 2026 10:00:00; u{}; x; no\n", i % 5_000).as_bytes(),
            );
        }
        let mut files = DataFiles::new();
        files.insert(DataFile::MessageLog, log);
        let f = Folder::read(&files, Zone::UTC);
        assert_eq!(f.reserved.len(), 5_000);
        assert_eq!(f.reserved[0].name.as_str(), "u1");
        assert!(f.reserved.iter().all(|r| r.why
            == Reason::Authored {
                posts: 4,
                letters: 0
            }));
    }

    #[test]
    fn cleanup_keeps_a_copy_and_rejects_byte_for_byte_and_the_rest_is_untouched() {
        let creds: &[u8] = b"yoda jedi\r\nl\xffke r2d2\n\nleia alderaan\n";
        let (files, f) = folder(creds, b"");
        let now = Timestamp::from_unix_secs(1_795_300_201);
        let records = f.cleanup(&files, DataFile::Credentials, Zone::UTC, now);
        let [
            Persist::Backup {
                name, text: copy, ..
            },
            Persist::Reject { text: entries, .. },
        ] = records.as_slice()
        else {
            panic!("{records:?}")
        };
        assert_eq!(name, "credentials.txt.2026-11-21_22-30-01.bak");
        assert_eq!(copy, creds);
        assert!(
            entries.ends_with(b"\nl\xffke r2d2\n"),
            "{:?}",
            entries.escape_ascii().to_string()
        );
        assert!(entries.starts_with(b"# 21 Nov 2026 22:30:01; credentials.txt line 2; damaged; "));
        assert_eq!(
            f.without_rejected(&files, DataFile::Credentials),
            b"yoda jedi\r\n\nleia alderaan\n"
        );
    }

    #[test]
    fn a_torn_tail_alone_is_rejected_without_a_backup() {
        let (files, f) = folder(
            b"yoda jedi\n",
            b"1; 21 Nov 2026 22:30:01; yoda; a; no\n2; 21 No",
        );
        assert!(f.damage().is_none());
        let records = f.cleanup(
            &files,
            DataFile::MessageLog,
            Zone::UTC,
            Timestamp::from_unix_secs(0),
        );
        assert!(
            matches!(records.as_slice(), [Persist::Reject { text, .. }] if text.ends_with(b"; torn; incomplete last line (a write cut short by a crash; it was never acknowledged)\n2; 21 No\n")),
            "{records:?}"
        );
    }
}
