//! Whether an incoming upload is taken: the audience's policy, decided once, in the core.
//!
//! Why a policy and not only a question: a script drives a piped client and cannot answer a
//! question it does not expect, and a person may want some presenters trusted and some files
//! refused outright (too large for the disk). The question is for everything else, and the
//! person answers it with a line (`y`, `n`, `ACCEPT`, `DECLINE`) or a UI's own control
//! ([`super::Input::Decision`]); both reach the same decision.

use crate::types::UserName;

/// What happens to an upload from a presenter who is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptPolicy {
    /// Take it (the piped client's default: scripts keep working).
    Always,
    /// Ask the user, who has the decision time to answer (the interactive default).
    Ask,
    /// Decline it; only trusted presenters get through.
    Never,
}

/// The audience's rules for incoming uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// For presenters not in `trusted`.
    pub accept: AcceptPolicy,
    /// Uploads larger than this many bytes are declined whoever sends them: a safeguard for
    /// the disk, not a matter of trust. `None`: no limit.
    pub max_upload: Option<u64>,
    /// Presenters whose uploads are taken without asking (within `max_upload`).
    pub trusted: Vec<UserName>,
}

impl Default for ConsentPolicy {
    /// Accept everything, as before consent existed: what a script expects.
    fn default() -> Self {
        Self {
            accept: AcceptPolicy::Always,
            max_upload: None,
            trusted: Vec::new(),
        }
    }
}

/// What the policy says about one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take it without asking.
    Accept,
    /// Ask the user.
    Ask,
    /// Refuse it, for this reason.
    Decline(Declined),
}

/// Why the policy declined an upload, as the audience reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Declined {
    /// Larger than `max_upload`.
    #[error("it is larger than the {0} this client takes (--max-upload)")]
    TooLarge(String),
    /// `--accept never` and the presenter is not trusted.
    #[error("this client takes uploads only from trusted presenters (--accept never)")]
    NotTrusted,
}

impl ConsentPolicy {
    /// The verdict on `size` bytes from `from`.
    pub(crate) fn decide(&self, from: &UserName, size: u64) -> Verdict {
        if let Some(max) = self.max_upload
            && size > max
        {
            return Verdict::Decline(Declined::TooLarge(super::human_bytes(max)));
        }
        if self.trusted.iter().any(|t| t == from) {
            return Verdict::Accept;
        }
        match self.accept {
            AcceptPolicy::Always => Verdict::Accept,
            AcceptPolicy::Ask => Verdict::Ask,
            AcceptPolicy::Never => Verdict::Decline(Declined::NotTrusted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> UserName {
        UserName::new(n).unwrap()
    }

    #[test]
    fn the_size_limit_holds_for_everyone_and_trust_skips_the_question() {
        let p = ConsentPolicy {
            accept: AcceptPolicy::Ask,
            max_upload: Some(1000),
            trusted: vec![user("yoda")],
        };
        assert_eq!(p.decide(&user("yoda"), 1000), Verdict::Accept);
        assert!(matches!(
            p.decide(&user("yoda"), 1001),
            Verdict::Decline(Declined::TooLarge(_))
        ));
        assert_eq!(p.decide(&user("luke"), 10), Verdict::Ask);
        let never = ConsentPolicy {
            accept: AcceptPolicy::Never,
            ..p.clone()
        };
        assert_eq!(
            never.decide(&user("luke"), 10),
            Verdict::Decline(Declined::NotTrusted)
        );
        assert_eq!(never.decide(&user("yoda"), 10), Verdict::Accept);
        assert_eq!(
            ConsentPolicy::default().decide(&user("anyone"), u64::MAX),
            Verdict::Accept
        );
    }

    #[test]
    fn absurd_sizes_do_not_overflow() {
        let p = ConsentPolicy {
            max_upload: Some(u64::MAX),
            ..ConsentPolicy::default()
        };
        assert_eq!(p.decide(&user("a"), u64::MAX), Verdict::Accept);
        let p = ConsentPolicy {
            max_upload: Some(0),
            ..ConsentPolicy::default()
        };
        assert!(matches!(p.decide(&user("a"), 1), Verdict::Decline(_)));
        assert_eq!(p.decide(&user("a"), 0), Verdict::Accept);
    }
}
