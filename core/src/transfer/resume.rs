//! Which partial downloads are kept for resuming, and how a kept one is described: the
//! sidecar file next to its `.part`, and the rules about both.
//!
//! # What we chose
//! An interrupted download — cancelled by either side, the network cut, the client quitting —
//! keeps its `.part` file, truncated to the bytes received in order, and a sidecar
//! `<part>.resume` that says whose file it is ([`Sidecar`]). A later upload of the same file
//! (same presenter, audience, name and size) between the same two users finds it, and the
//! receiver offers the part's block CVs (see `tree`): the presenter keeps only what agrees with
//! its file, and the whole-file hash checks the result, so a damaged part costs the damaged
//! blocks (and what follows them), never a wrong file.
//!
//! A part without a sidecar is what a crash (kill -9, power loss) leaves: nobody can say what
//! it holds, so — as issue 8 wanted — it is removed the next time a client starts in that
//! folder, as is a part whose sidecar is damaged or older than
//! [`super::TransferConfig::resume_max_age_ms`], and a sidecar without its part
//! ([`keep_at_start`]). A failed transfer whose bytes cannot be trusted (hash or size
//! mismatch, a protocol violation) or that never started is not kept ([`keeps_part`]).

use crate::UnixMillis;
use crate::types::UserName;

use super::AbortReason;
use super::PeerReason;
use super::tree::BLOCK;

/// What ends the name of a sidecar: `<part name>.resume`.
pub const SIDECAR_SUFFIX: &str = ".resume";

/// A sidecar longer than this is not one of ours (a bound on what a driver reads).
pub const MAX_SIDECAR: usize = 4096;

/// Most kept parts a driver reports for one name (a folder full of them costs no more).
pub const MAX_CANDIDATES: usize = 16;

const MAGIC_LINE: &str = "huddle resume 1";

/// The sidecar of a part: who sent what to whom, how much of it the part holds, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The presenter.
    pub from: UserName,
    /// The audience (whose client kept it).
    pub to: UserName,
    /// The file's name as the presenter sent it.
    pub name: String,
    /// The whole file's size.
    pub size: u64,
    /// Bytes the part holds, from the start of the file.
    pub held: u64,
    /// When it was kept.
    pub kept_at: UnixMillis,
}

impl Sidecar {
    /// The sidecar as written to disk: a few `key value` lines.
    pub fn render(&self) -> String {
        format!(
            "{MAGIC_LINE}\nfrom {}\nto {}\nsize {}\nheld {}\nkept {}\nname {}\n",
            self.from, self.to, self.size, self.held, self.kept_at.0, self.name
        )
    }

    /// Parse sidecar bytes; `None` for anything that is not exactly a sidecar we wrote (too
    /// long, not UTF-8, a field missing or twice, held beyond the size, a name a file could
    /// not have).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_SIDECAR {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC_LINE {
            return None;
        }
        let (mut from, mut to, mut name, mut size, mut held, mut kept) =
            (None, None, None, None, None, None);
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            let slot_was_empty = match key {
                "from" => from.replace(UserName::new(value).ok()?).is_none(),
                "to" => to.replace(UserName::new(value).ok()?).is_none(),
                "name" => {
                    super::names::check_file_name(value).ok()?;
                    name.replace(value.to_string()).is_none()
                }
                "size" => size.replace(value.parse::<u64>().ok()?).is_none(),
                "held" => held.replace(value.parse::<u64>().ok()?).is_none(),
                "kept" => kept.replace(value.parse::<u64>().ok()?).is_none(),
                _ => return None,
            };
            if !slot_was_empty {
                return None;
            }
        }
        let s = Sidecar {
            from: from?,
            to: to?,
            name: name?,
            size: size?,
            held: held?,
            kept_at: UnixMillis(kept?),
        };
        (s.held <= s.size).then_some(s)
    }

    /// Whether this part is the same file between the same two users.
    pub fn matches(&self, from: &UserName, to: &UserName, name: &str, size: u64) -> bool {
        &self.from == from && &self.to == to && self.name == name && self.size == size
    }
}

/// The sidecar name of part file `part`.
pub fn sidecar_name(part: &str) -> String {
    format!("{part}{SIDECAR_SUFFIX}")
}

/// Whether a download that ended for `reason` with `held` bytes received keeps its part for
/// resuming: an interruption with at least a block to offer, never bytes that cannot be
/// trusted or a file the disk could not take.
pub fn keeps_part(reason: AbortReason, held: u64) -> bool {
    let interrupted = matches!(
        reason,
        AbortReason::Cancelled
            | AbortReason::PeerSilent
            | AbortReason::PeerLeft
            | AbortReason::PeerAborted(PeerReason::Cancelled | PeerReason::TimedOut)
    );
    interrupted && held >= BLOCK
}

/// At a client's start, whether a part file nobody holds is kept: only with a sidecar that
/// parses and is younger than `max_age_ms` at `now` (a sidecar "kept" in the future, after a
/// clock change, counts as new). `sidecar` is the sidecar's bytes, `None` when it is missing.
pub fn keep_at_start(sidecar: Option<&[u8]>, now: UnixMillis, max_age_ms: u64) -> bool {
    sidecar
        .and_then(Sidecar::parse)
        .is_some_and(|s| now.millis_since(s.kept_at) <= max_age_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Sidecar {
        Sidecar {
            from: UserName::new("yoda").unwrap(),
            to: UserName::new("luke").unwrap(),
            name: "my clip (final).mp4".into(),
            size: 300 << 20,
            held: 90 << 20,
            kept_at: UnixMillis(1_800_000_000_000),
        }
    }

    #[test]
    fn a_sidecar_round_trips_and_matches_only_the_same_file_and_users() {
        let s = sample();
        assert_eq!(Sidecar::parse(s.render().as_bytes()), Some(s.clone()));
        let (yoda, luke) = (s.from.clone(), s.to.clone());
        assert!(s.matches(&yoda, &luke, "my clip (final).mp4", 300 << 20));
        assert!(!s.matches(&luke, &yoda, "my clip (final).mp4", 300 << 20));
        assert!(!s.matches(&yoda, &luke, "other.mp4", 300 << 20));
        assert!(!s.matches(&yoda, &luke, "my clip (final).mp4", 300 << 20 | 1));
    }

    #[test]
    fn damaged_sidecars_are_not_trusted() {
        let good = sample().render();
        let bad = [
            good.replace("huddle resume 1", "huddle resume 2"),
            good.replace("held 94371840", "held 999999999999"),
            good.replace("name my clip (final).mp4", "name ../../etc/passwd"),
            good.replace("from yoda", "from yoda\nfrom luke"),
            good.replace("size ", "size -"),
            good.replace("kept 1800000000000\n", ""),
            format!("{good}extra field\n"),
            "x".repeat(MAX_SIDECAR + 1),
            String::new(),
        ];
        for b in bad {
            assert_eq!(Sidecar::parse(b.as_bytes()), None, "{b:?}");
        }
        assert_eq!(Sidecar::parse(&[0xff, 0xfe, 0x00]), None);
    }

    #[test]
    fn interruptions_keep_their_part_and_untrusted_ends_do_not() {
        for r in [
            AbortReason::Cancelled,
            AbortReason::PeerSilent,
            AbortReason::PeerLeft,
            AbortReason::PeerAborted(PeerReason::Cancelled),
            AbortReason::PeerAborted(PeerReason::TimedOut),
        ] {
            assert!(keeps_part(r, BLOCK), "{r:?}");
            assert!(!keeps_part(r, BLOCK - 1), "{r:?}: less than a block");
        }
        for r in [
            AbortReason::HashMismatch,
            AbortReason::SizeMismatch,
            AbortReason::ProtocolViolation,
            AbortReason::LocalIo,
            AbortReason::Declined,
            AbortReason::PeerAborted(PeerReason::HashMismatch),
        ] {
            assert!(!keeps_part(r, 1 << 30), "{r:?}");
        }
    }

    #[test]
    fn at_start_only_young_parts_with_a_good_sidecar_stay() {
        let s = sample();
        let t = s.kept_at;
        let week = 7 * 24 * 3600 * 1000;
        let bytes = s.render();
        assert!(keep_at_start(
            Some(bytes.as_bytes()),
            t.plus_millis(week),
            week
        ));
        assert!(!keep_at_start(
            Some(bytes.as_bytes()),
            t.plus_millis(week + 1),
            week
        ));
        assert!(keep_at_start(Some(bytes.as_bytes()), UnixMillis(0), week));
        assert!(!keep_at_start(None, t, week), "a crash's leftover goes");
        assert!(!keep_at_start(Some(b"garbage"), t, week));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Sidecar::parse(&bytes);
        }
    }
}
