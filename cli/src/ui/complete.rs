//! Tab completion of the word before the cursor: command names, user names, and file names
//! after `UPD user `.
//!
//! Command names come from the core's table ([`Command::ALL`]), so a new command completes with
//! no change here but one line in [`takes_user`], which the compiler asks for. User names come
//! from [`Completer::set_users`], fed by the core's `ClientOutput::Users` (the names it heard
//! of: presence, posts, private messages, `ATU`, `RCU`). File names come from the local file
//! system.

use std::path::Path;

use huddle_core::proto::request::Command;

/// Most directory entries looked at for one completion: a folder of a million files costs a
/// bounded pause, not a hang.
const MAX_DIR_ENTRIES: usize = 10_000;

pub use huddle_core::client::KnownUser;

/// One possible completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The word as it would read once completed.
    pub text: String,
    /// Whether a space follows once it is the only candidate: after a command or a user name,
    /// not after a file (the file name is the rest of the line, a space would be part of it)
    /// nor a folder (its entries come next).
    pub space_after: bool,
}

/// The candidates for the word that starts at `start` (a char index) and ends at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Where the word being completed starts.
    pub start: usize,
    /// What it could become, in the order to list them.
    pub candidates: Vec<Candidate>,
}

impl Completion {
    /// The text to put in place of the word: the only candidate (and a space if it takes
    /// one), else the longest prefix all candidates share; `None` with no candidate.
    pub fn replacement(&self) -> Option<String> {
        match self.candidates.as_slice() {
            [] => None,
            [only] if only.space_after => Some(format!("{} ", only.text)),
            [only] => Some(only.text.clone()),
            many => {
                let mut prefix: &str = &many[0].text;
                for c in &many[1..] {
                    let common = prefix
                        .char_indices()
                        .zip(c.text.chars())
                        .find(|((_, a), b)| !a.eq_ignore_ascii_case(b))
                        .map_or(prefix.len().min(c.text.len()), |((i, _), _)| i);
                    prefix = &prefix[..common];
                }
                Some(prefix.to_string())
            }
        }
    }
}

/// Whether the word after `command` is a user name.
fn takes_user(command: Command) -> bool {
    match command {
        Command::Pvt | Command::Blk | Command::Unb | Command::Upd => true,
        Command::Msg
        | Command::Dlt
        | Command::Edt
        | Command::Rdm
        | Command::Atu
        | Command::Rcu
        | Command::Out
        | Command::Help => false,
    }
}

/// Completes words of a command line.
#[derive(Debug, Default)]
pub struct Completer {
    /// Users, in the order they are offered: online first, then by name.
    users: Vec<KnownUser>,
}

impl Completer {
    /// A completer that knows no users yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The users to complete, online first.
    pub fn set_users(&mut self, mut users: Vec<KnownUser>) {
        users.sort_by(|a, b| {
            b.online
                .cmp(&a.online)
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        });
        users.dedup_by(|a, b| a.name.eq_ignore_ascii_case(&b.name));
        self.users = users;
    }

    /// The completions of the word that ends at the cursor; `before` is the line up to it.
    pub fn complete(&self, before: &str) -> Completion {
        let words: Vec<&str> = before.split(' ').collect();
        let word = words.last().copied().unwrap_or("");
        let start = before.chars().count() - word.chars().count();
        let command = words.first().and_then(|w| Command::from_word(w));
        let candidates = match (words.len(), command) {
            (1, _) => commands(word),
            (2, Some(c)) if takes_user(c) => self.user_names(word),
            (n, Some(Command::Upd)) if n >= 3 => {
                // The file is the rest of the line: it may hold spaces.
                let path_start = words[0].len() + 1 + words[1].len() + 1;
                let path = &before[path_start..];
                let start = before[..path_start].chars().count();
                return Completion {
                    start,
                    candidates: files(path),
                };
            }
            _ => Vec::new(),
        };
        Completion { start, candidates }
    }

    fn user_names(&self, prefix: &str) -> Vec<Candidate> {
        self.users
            .iter()
            .filter(|u| starts_with_ignore_case(&u.name, prefix))
            .map(|u| Candidate {
                text: u.name.clone(),
                space_after: true,
            })
            .collect()
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Command words starting with `prefix`, in the case the user types them: lower case if the
/// prefix is, else as the table writes them.
fn commands(prefix: &str) -> Vec<Candidate> {
    let lower = !prefix.is_empty() && prefix == prefix.to_ascii_lowercase();
    Command::ALL
        .into_iter()
        .map(Command::word)
        .filter(|w| starts_with_ignore_case(w, prefix))
        .map(|w| Candidate {
            text: if lower {
                w.to_ascii_lowercase()
            } else {
                w.to_string()
            },
            space_after: true,
        })
        .collect()
}

/// Paths starting with `typed`, folders ending in `/`; hidden entries only when asked for
/// with a leading dot; names that are not UTF-8 are skipped (they could not be typed back).
fn files(typed: &str) -> Vec<Candidate> {
    let (dir, base) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let listing = if dir.is_empty() {
        Path::new(".")
    } else {
        Path::new(dir)
    };
    let Ok(entries) = std::fs::read_dir(listing) else {
        return Vec::new();
    };
    let mut found: Vec<Candidate> = entries
        .take(MAX_DIR_ENTRIES)
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(base) || (name.starts_with('.') && !base.starts_with('.')) {
                return None;
            }
            let slash = if e.path().is_dir() { "/" } else { "" };
            Some(Candidate {
                text: format!("{dir}{name}{slash}"),
                space_after: false,
            })
        })
        .collect();
    found.sort_by(|a, b| a.text.cmp(&b.text));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(c: &Completion) -> Vec<&str> {
        c.candidates.iter().map(|c| c.text.as_str()).collect()
    }

    #[test]
    fn every_command_of_the_core_table_completes() {
        let c = Completer::new();
        for command in Command::ALL {
            let w = command.word();
            let done = c.complete(&w[..2]);
            assert!(texts(&done).contains(&w), "{w}: {done:?}");
        }
        assert_eq!(c.complete("AT").replacement().as_deref(), Some("ATU "));
        assert_eq!(c.complete("ms").replacement().as_deref(), Some("msg "));
        assert_eq!(texts(&c.complete("")).len(), Command::ALL.len());
    }

    #[test]
    fn several_candidates_complete_their_common_prefix() {
        let c = Completer::new();
        let done = c.complete("U");
        assert_eq!(texts(&done), vec!["UNB", "UPD"]);
        assert_eq!(done.replacement().as_deref(), Some("U"));
        assert!(c.complete("xyz").replacement().is_none());
    }

    #[test]
    fn user_names_complete_online_first_after_commands_that_take_one() {
        let mut c = Completer::new();
        c.set_users(vec![
            KnownUser {
                name: "leia".into(),
                online: false,
            },
            KnownUser {
                name: "luke".into(),
                online: true,
            },
            KnownUser {
                name: "lando".into(),
                online: false,
            },
        ]);
        let done = c.complete("PVT l");
        assert_eq!(done.start, 4);
        assert_eq!(texts(&done), vec!["luke", "lando", "leia"]);
        assert_eq!(c.complete("blk LU").replacement().as_deref(), Some("luke "));
        assert!(c.complete("MSG l").candidates.is_empty());
        assert!(c.complete("PVT luke l").candidates.is_empty());
    }

    #[test]
    fn file_names_complete_after_upd_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clip one.mp4"), b"x").unwrap();
        std::fs::write(dir.path().join("clip two.mp4"), b"x").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("clips")).unwrap();
        let base = format!("{}/", dir.path().display());
        let c = Completer::new();
        let line = format!("UPD luke {base}cl");
        let done = c.complete(&line);
        assert_eq!(done.start, 9);
        assert_eq!(
            texts(&done),
            vec![
                format!("{base}clip one.mp4"),
                format!("{base}clip two.mp4"),
                format!("{base}clips/"),
            ]
        );
        assert_eq!(done.replacement(), Some(format!("{base}clip")));
        let one = c.complete(&format!("UPD luke {base}clip o"));
        assert_eq!(one.replacement(), Some(format!("{base}clip one.mp4")));
        let folder = c.complete(&format!("UPD luke {base}clips"));
        assert_eq!(texts(&folder), vec![format!("{base}clips/")]);
        assert_eq!(folder.replacement(), Some(format!("{base}clips/")));
        assert!(
            c.complete(&format!("UPD luke {base}nothing"))
                .candidates
                .is_empty()
        );
        assert!(c.complete("UPD luke /no/such/dir/x").candidates.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn names_that_could_not_be_typed_back_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"clip\xff.mp4");
        std::fs::write(dir.path().join(bad), b"x").unwrap();
        std::fs::write(dir.path().join("clip.mp4"), b"x").unwrap();
        let base = format!("{}/", dir.path().display());
        let done = Completer::new().complete(&format!("UPD luke {base}cl"));
        assert_eq!(texts(&done), vec![format!("{base}clip.mp4")]);
    }
}
