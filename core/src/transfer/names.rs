//! File names of transfers: only a base name travels, and nothing a peer sends can make the
//! receiver write outside its download folder or over an existing file.
//!
//! The presenter sends [`base_name`] of the path it was given; the audience saves the file as
//! [`saved_name`] (`<presenter>_<name>`), made unique against its folder by [`unique_name`].
//! Validation happens again on the receiving side because the name arrives from the network.

use super::TransferId;
use crate::types::UserName;

/// Longest file name accepted, in bytes (the usual file-system limit, minus room for the
/// presenter prefix, a ` (n)` suffix and `.part`).
pub const MAX_FILE_NAME: usize = 200;

/// Why a name cannot be used for a transferred file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after removing the directories.
    #[error("the file name is empty")]
    Empty,
    /// `.` or `..`, which name directories, not files.
    #[error("'.' and '..' are not file names")]
    DotName,
    /// A `/` or `\`: a path, not a base name (only base names travel).
    #[error("a file name may not contain '/' or '\\' (only the base name is sent)")]
    Separator,
    /// A control character (including NUL), which could fool a terminal or a file system.
    #[error("the file name contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
    /// Longer than [`MAX_FILE_NAME`] bytes.
    #[error("the file name is longer than {MAX_FILE_NAME} bytes")]
    TooLong,
    /// Starts with `.` or `-`: hidden files and option-like names are refused, so a received
    /// file is always visible and safe to pass to other tools.
    #[error("the file name may not start with '.' or '-'")]
    LeadingDotOrDash,
    /// A Windows drive or stream separator `:`.
    #[error("the file name may not contain ':'")]
    Colon,
    /// Every candidate `name (n).ext` up to the limit already exists.
    #[error("too many files named like {0} already exist in the download folder")]
    NoFreeName(String),
}

/// The base name of `path` as the presenter typed it, checked to be a safe file name.
///
/// Why here and not in the client: the same check guards both ends, so the presenter learns
/// early that a name would be refused by the audience.
pub fn base_name(path: &str) -> Result<&str, NameError> {
    let trimmed = path.trim_end_matches(['/', '\\']);
    let base = trimmed.rsplit(['/', '\\']).next().unwrap_or(trimmed);
    check_file_name(base)?;
    Ok(base)
}

/// Check that `name` is a plain, safe file name (no directories, no control characters).
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::ControlCharacter(c as u32));
    }
    if name.contains(':') {
        return Err(NameError::Colon);
    }
    if name.starts_with(['.', '-']) {
        return Err(NameError::LeadingDotOrDash);
    }
    if name.len() > MAX_FILE_NAME {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// The name the audience saves a file under: `<presenter>_<name>` (DESIGN.md §1).
///
/// `name` comes from the network and is refused unless it is a plain base name; user names
/// are already restricted to `[A-Za-z0-9_.-]`, so the result stays inside the download folder.
pub fn saved_name(presenter: &UserName, name: &str) -> Result<String, NameError> {
    check_file_name(name)?;
    Ok(format!("{presenter}_{name}"))
}

/// Most `name (n).ext` candidates tried before giving up.
pub const MAX_DUPLICATES: u32 = 9_999;

/// The `n`-th name to try for a file the audience wants to save as `wanted`: `wanted` itself
/// for 0, then `stem (1).ext`, `stem (2).ext`, …
///
/// The core walks these, one per attempt, and the driver only ever creates the exact name it
/// is given, exclusively: an existing file is never overwritten, and every runtime names
/// files the same way.
pub fn candidate(wanted: &str, n: u32) -> String {
    if n == 0 {
        return wanted.to_owned();
    }
    let (stem, ext) = match wanted.rfind('.') {
        Some(i) if i > 0 => wanted.split_at(i),
        _ => (wanted, ""),
    };
    format!("{stem} ({n}){ext}")
}

/// `candidate`, or the first later candidate for which `exists` is false (for tests and
/// in-memory folders; a real driver lets the exclusive create decide).
pub fn unique_name(
    candidate_name: &str,
    mut exists: impl FnMut(&str) -> bool,
) -> Result<String, NameError> {
    (0..=MAX_DUPLICATES)
        .map(|n| candidate(candidate_name, n))
        .find(|name| !exists(name))
        .ok_or_else(|| NameError::NoFreeName(candidate_name.to_owned()))
}

/// What ends the name of a file still being received.
pub const PART_SUFFIX: &str = ".part";

/// The file a download is written to until it is verified: `<saved name>.<transfer id>.part`.
///
/// The transfer id makes it unique among the downloads running at once, even of files that
/// will end up with the same name; the `.part` ending marks it as unfinished to the user and
/// to [`is_part_name`].
pub fn part_name(saved_as: &str, id: TransferId) -> String {
    format!("{saved_as}.{id}{PART_SUFFIX}")
}

/// Whether `name` is the name of an unfinished download (what a client removes at start if no
/// running client holds it: left by a crash).
pub fn is_part_name(name: &str) -> bool {
    name.len() > PART_SUFFIX.len() && name.ends_with(PART_SUFFIX)
}

/// Whether `name` is a part file of a download saved as `saved_as`, whatever its transfer:
/// `<saved_as>.<16 hex digits>.part`.
pub fn is_part_of(name: &str, saved_as: &str) -> bool {
    name.strip_prefix(saved_as)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(PART_SUFFIX))
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn yoda() -> UserName {
        UserName::new("yoda").unwrap()
    }

    #[test]
    fn saved_name_prefixes_the_presenter() {
        assert_eq!(saved_name(&yoda(), "clip.mp4").unwrap(), "yoda_clip.mp4");
    }

    #[test]
    fn paths_and_tricks_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "..",
            ".",
            "",
            "x\ny",
            "x\0y",
            "C:x",
            ".hidden",
            "-rf",
        ] {
            assert!(
                saved_name(&yoda(), bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            saved_name(&yoda(), &"a".repeat(201)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn base_name_drops_directories() {
        assert_eq!(base_name("/home/yoda/videos/clip.mp4"), Ok("clip.mp4"));
        assert_eq!(base_name("videos\\clip.mp4"), Ok("clip.mp4"));
        assert_eq!(base_name("clip.mp4"), Ok("clip.mp4"));
        assert_eq!(base_name("/"), Err(NameError::Empty));
        assert_eq!(base_name("a/.."), Err(NameError::DotName));
    }

    #[test]
    fn existing_files_get_a_number() {
        let taken = ["yoda_clip.mp4", "yoda_clip (1).mp4"];
        let name = unique_name("yoda_clip.mp4", |n| taken.contains(&n)).unwrap();
        assert_eq!(name, "yoda_clip (2).mp4");
        assert_eq!(unique_name("noext", |n| n == "noext").unwrap(), "noext (1)");
        assert_eq!(candidate("a.tar.gz", 3), "a.tar (3).gz");
        assert_eq!(candidate(".x", 1), ".x (1)");
    }

    #[test]
    fn part_names_carry_the_transfer_and_are_recognised() {
        let p = part_name("yoda_clip.mp4", TransferId(0xab));
        assert_eq!(p, "yoda_clip.mp4.00000000000000ab.part");
        assert!(is_part_name(&p));
        assert!(!is_part_name("yoda_clip.mp4"));
        assert!(!is_part_name(".part"));
        assert!(is_part_of(&p, "yoda_clip.mp4"));
        assert!(!is_part_of(&p, "yoda_clip"));
        assert!(!is_part_of("yoda_clip.mp4.part", "yoda_clip.mp4"));
        assert!(!is_part_of(
            "yoda_clip.mp4.00000000000000zz.part",
            "yoda_clip.mp4"
        ));
    }

    proptest! {
        #[test]
        fn a_saved_name_never_leaves_the_folder(name in ".{0,40}") {
            if let Ok(saved) = saved_name(&yoda(), &name) {
                prop_assert!(!saved.contains('/') && !saved.contains('\\'));
                prop_assert!(!saved.chars().any(char::is_control));
                prop_assert!(saved != ".." && saved != ".");
                let p = std::path::Path::new(&saved);
                prop_assert_eq!(p.components().count(), 1);
                prop_assert!(matches!(p.components().next(), Some(std::path::Component::Normal(_))));
            }
        }
    }
}
