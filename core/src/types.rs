//! Validated domain types, checked once at the edge by their parsers.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// Longest user name accepted, in bytes.
pub const MAX_USER_NAME: usize = 32;

/// A user name: 1 to 32 ASCII letters, digits, `_`, `-` or `.`, compared without regard to
/// case.
///
/// Restricting names keeps them safe in every place they travel: the `;`-separated data files,
/// space-separated commands, the `presenter_file` names of received uploads, and the user's
/// terminal (no control, bidi or zero-width characters can hide in one).
///
/// `Yoda` and `yoda` are the same name: equality, hashing and order use the name folded to
/// lower case ([`UserName::key`]), so every map and comparison in the server treats them as
/// one. The display form ([`UserName::as_str`]) stays as written; the server shows an
/// account's name as it was created. Names that merely *look* alike (`Ieia` and `leia`)
/// differ, but sign-up refuses them: see [`UserName::lookalike_key`].
#[derive(Debug, Clone)]
pub struct UserName(String);

/// Why a string is not a user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// The empty string.
    #[error("a user name cannot be empty")]
    Empty,
    /// More than [`MAX_USER_NAME`] bytes.
    #[error("a user name has at most {MAX_USER_NAME} characters")]
    TooLong,
    /// A character outside `A-Z a-z 0-9 _ - .`.
    #[error("a user name may only contain letters, digits, '_', '-' and '.'")]
    BadCharacter,
}

impl UserName {
    /// Validate `s` as a user name.
    pub fn new(s: &str) -> Result<Self, UserNameError> {
        if s.is_empty() {
            return Err(UserNameError::Empty);
        }
        if s.len() > MAX_USER_NAME {
            return Err(UserNameError::TooLong);
        }
        if !s.bytes().all(is_name_byte) {
            return Err(UserNameError::BadCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical form two names are compared by: folded to lower case (names are ASCII,
    /// so this is Unicode case folding too).
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// What the name looks like: its Unicode TR39 confusable skeleton, taken without regard to
    /// case (the skeleton, lower-cased, skeletonised again). Two names with the same key can be
    /// mistaken for one another on screen (`Ieia`/`leia`, `0bi`/`Obi`, `rn`/`m`), so sign-up
    /// refuses a name whose key an existing user already has.
    pub fn lookalike_key(&self) -> String {
        let skeleton: String = unicode_security::skeleton(&self.0).collect();
        unicode_security::skeleton(&skeleton.to_lowercase()).collect()
    }

    fn folded(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

impl PartialEq for UserName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for UserName {}

impl std::hash::Hash for UserName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for b in self.folded() {
            state.write_u8(b);
        }
        // Names never hold 0xff: it ends the name, as `str`'s hash does.
        state.write_u8(0xff);
    }
}

impl PartialOrd for UserName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.folded().cmp(other.folded())
    }
}

/// Whether `b` may appear in a user name.
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserName {
    type Err = UserNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The number of a post on the board: 1..=n, renumbered after a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageNumber(NonZeroU32);

impl MessageNumber {
    /// Message number `n`, or `None` for zero.
    pub fn new(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(Self)
    }

    /// The number as an integer (at least 1).
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The zero-based index of this message on the board.
    pub fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    /// The number of the message at zero-based `index`.
    pub fn from_index(index: usize) -> Self {
        let n = u32::try_from(index)
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1);
        Self(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The stable id of a post: given when it is posted, never reused, kept when later posts are
/// deleted (its number changes, its id does not), when it is edited, and across restarts
/// (`postids.txt`). Written `@17`; `3@17` is post 17, shown as number 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PostId(pub u64);

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which post a `DLT` or `EDT` means: its number (as DESIGN §2 fixes it), its id, or both —
/// then the post with that id must still have that number, so a post that merely moved into
/// the number the client saw is never the one changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostRef {
    /// `3` or `#3`: whatever post has number 3 now.
    Number(MessageNumber),
    /// `@17`: post 17, whatever its number now.
    Id(PostId),
    /// `3@17`: post 17, if it is still number 3.
    Both(MessageNumber, PostId),
}

impl PostRef {
    /// The number given, if any.
    pub fn number(self) -> Option<MessageNumber> {
        match self {
            PostRef::Number(n) | PostRef::Both(n, _) => Some(n),
            PostRef::Id(_) => None,
        }
    }

    /// The id given, if any.
    pub fn id(self) -> Option<PostId> {
        match self {
            PostRef::Id(i) | PostRef::Both(_, i) => Some(i),
            PostRef::Number(_) => None,
        }
    }
}

impl fmt::Display for PostRef {
    /// The wire form: `3`, `@17` or `3@17`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostRef::Number(n) => write!(f, "{n}"),
            PostRef::Id(i) => write!(f, "@{i}"),
            PostRef::Both(n, i) => write!(f, "{n}@{i}"),
        }
    }
}

/// Why a text cannot be a message: empty, or holding a control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing to say.
    #[error("the message is empty")]
    Empty,
    /// Only spaces (or other white space): a post nobody can read.
    #[error("the message is blank (only spaces); write something to say")]
    Blank,
    /// A control character (a message is one line of printable text).
    #[error("the message contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
    /// A bidirectional control, which could make the text read otherwise than it is.
    #[error(
        "the message contains a bidirectional control character (U+{0:04X}), which can make text read otherwise than it is written"
    )]
    Bidi(u32),
    /// A character that shows as nothing, which could make texts or names look alike.
    #[error(
        "the message contains an invisible character (U+{0:04X}), which can make different texts look the same"
    )]
    Invisible(u32),
}

/// Check that `text` can be a message: non-empty, printable, one line.
///
/// Tabs are allowed; every other control character would corrupt a line-based file or terminal.
pub fn check_text(text: &str) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(TextError::ControlCharacter(c as u32));
    }
    Ok(())
}

/// The text of a post or a private message, kept as the bytes it is stored as.
///
/// Text from a client is always UTF-8 (the request parser refuses anything else). Text read from
/// a data file is kept byte for byte, even when an editor or a damaged disk put bytes there that
/// are not UTF-8: the server shows such bytes as U+FFFD but writes them back unchanged, so
/// rewriting a file (after a delete, say) never alters what it held.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageText(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// Valid UTF-8: everything a client sends, and almost every stored line.
    Utf8(String),
    /// Bytes from a file that are not valid UTF-8.
    Bytes(Box<[u8]>),
}

impl MessageText {
    /// The text as stored: `bytes` exactly, whatever they are.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => Self(Repr::Utf8(s.to_owned())),
            Err(_) => Self(Repr::Bytes(bytes.into())),
        }
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Utf8(s) => s.as_bytes(),
            Repr::Bytes(b) => b,
        }
    }

    /// The text to show: itself, or with U+FFFD for each byte sequence that is not UTF-8.
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            Repr::Utf8(s) => std::borrow::Cow::Borrowed(s),
            Repr::Bytes(b) => String::from_utf8_lossy(b),
        }
    }

    /// Whether the stored bytes are valid UTF-8.
    pub fn is_utf8(&self) -> bool {
        matches!(self.0, Repr::Utf8(_))
    }
}

impl From<String> for MessageText {
    fn from(s: String) -> Self {
        Self(Repr::Utf8(s))
    }
}

impl From<&str> for MessageText {
    fn from(s: &str) -> Self {
        Self(Repr::Utf8(s.to_owned()))
    }
}

impl PartialEq<str> for MessageText {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for MessageText {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for MessageText {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Utf8(s) => fmt::Debug::fmt(s, f),
            Repr::Bytes(b) => write!(f, "b\"{}\"", b.escape_ascii()),
        }
    }
}

/// Check a stored text the way [`check_text`] checks a new one (bytes that are not UTF-8 count
/// as printable: they are shown as U+FFFD).
pub fn check_stored_text(text: &MessageText) -> Result<(), TextError> {
    check_text(&text.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_validated() {
        assert!(UserName::new("yoda").is_ok());
        assert!(UserName::new("Obi-Wan.K_1").is_ok());
        assert_eq!(UserName::new(""), Err(UserNameError::Empty));
        assert_eq!(UserName::new("a b"), Err(UserNameError::BadCharacter));
        assert_eq!(UserName::new("x;y"), Err(UserNameError::BadCharacter));
        assert_eq!(UserName::new(&"a".repeat(33)), Err(UserNameError::TooLong));
    }

    #[test]
    fn names_are_one_without_regard_to_case_and_keep_their_display_form() {
        use std::collections::{BTreeSet, HashSet};
        let a = UserName::new("Yoda").unwrap();
        let b = UserName::new("yoDA").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "Yoda");
        assert_eq!(a.key(), "yoda");
        assert_eq!(HashSet::from([a.clone(), b.clone()]).len(), 1);
        assert_eq!(BTreeSet::from([a.clone(), b]).len(), 1);
        assert_ne!(a, UserName::new("yoda2").unwrap());
        assert!(UserName::new("Luke").unwrap() < UserName::new("mara").unwrap());
    }

    #[test]
    fn look_alike_names_share_a_key_and_others_do_not() {
        let k = |s: &str| UserName::new(s).unwrap().lookalike_key();
        for (a, b) in [
            ("Ieia", "leia"),
            ("1uke", "luke"),
            ("0bi", "Obi"),
            ("0bi", "obi"),
            ("rnace", "mace"),
            ("LEIA", "lela"),
            ("Yoda", "yoda"),
        ] {
            assert_eq!(k(a), k(b), "{a} / {b}");
        }
        for (a, b) in [
            ("leia", "lela"),
            ("luke", "luck"),
            ("han", "hans"),
            ("a_b", "a-b"),
        ] {
            assert_ne!(k(a), k(b), "{a} / {b}");
        }
    }

    #[test]
    fn stored_text_keeps_bytes_that_are_not_utf8() {
        let t = MessageText::from_bytes(b"caf\xe9; ok");
        assert_eq!(t.as_bytes(), b"caf\xe9; ok");
        assert!(!t.is_utf8());
        assert_eq!(t.to_string(), "caf\u{fffd}; ok");
        assert!(check_stored_text(&t).is_ok());
        assert!(check_stored_text(&MessageText::from_bytes(b"a\x1b[2Jb")).is_err());
        assert_eq!(MessageText::from_bytes("✓".as_bytes()), "✓");
    }

    #[test]
    fn message_text_is_one_printable_line() {
        assert!(check_text("do; or #do \"not\" ✓").is_ok());
        assert_eq!(check_text(""), Err(TextError::Empty));
        assert!(check_text("a\u{7}b").is_err());
    }
}
