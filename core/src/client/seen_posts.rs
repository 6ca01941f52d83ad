//! The posts this client has seen, by number: who wrote each and its timestamp, so that
//! `DLT n` and `EDT n text` can fill in the timestamp DESIGN §2's requests carry.
//!
//! The safety check stays the server's: the request on the wire is still
//! `DLT n timestamp` / `EDT n timestamp text`, so if the post changed since the client saw it
//! (edited, or renumbered by a delete the client did not hear of) the server refuses it with
//! `551` and nothing is changed. The client only saves the user the typing.
//!
//! Fed from everything that names a post: live and caught-up `* POST`s, `* EDIT`, `* DELETE`
//! (numbers stay as shown, as in `post_ids`), the user's own `MSG`/`EDT`/`DLT` replies and the lines
//! of an `RDM` listing. At most [`ClientConfig::max_seen_posts`] are kept, the lowest numbers
//! forgotten first.
//!
//! [`ClientConfig::max_seen_posts`]: super::ClientConfig::max_seen_posts

use std::collections::BTreeMap;

use crate::proto::timestamp::{civil_time, parse_civil_time};
use crate::time::CivilTime;
use crate::types::UserName;

/// What the client knows of one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Who wrote it.
    pub author: UserName,
    /// Its current timestamp, as last seen.
    pub at: CivilTime,
}

/// The posts seen, by number.
#[derive(Debug)]
pub struct SeenPosts {
    posts: BTreeMap<u32, Seen>,
    max: usize,
}

impl SeenPosts {
    /// Remember at most `max` posts.
    pub fn new(max: usize) -> Self {
        Self {
            posts: BTreeMap::new(),
            max,
        }
    }

    /// Post `n` by `author` has timestamp `at` (a new post, or an edit).
    pub fn saw(&mut self, n: u32, author: UserName, at: CivilTime) {
        if self.max == 0 {
            return;
        }
        self.posts.insert(n, Seen { author, at });
        while self.posts.len() > self.max {
            self.posts.pop_first();
        }
    }

    /// Post `n` was deleted. Later numbers are kept as they were shown, as `post_ids` keeps
    /// their ids: the user means the post they saw under a number, and if it moved the
    /// server says so (the request carries that post's id) instead of touching the one that
    /// moved into its place.
    pub fn deleted(&mut self, n: u32) {
        self.posts.remove(&n);
    }

    /// Post `n`, if seen.
    pub fn get(&self, n: u32) -> Option<&Seen> {
        self.posts.get(&n)
    }

    /// How many are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.posts.len()
    }

    /// Learn from a reply line of the user's own command: `Message #3 posted at …`,
    /// `… edited at …`, `… deleted at …`.
    pub fn own_reply(&mut self, me: &UserName, text: &str) {
        let Some(rest) = text.strip_prefix("Message #") else {
            return;
        };
        let Some((n, rest)) = rest.split_once(' ') else {
            return;
        };
        let Ok(n) = n.parse::<u32>() else {
            return;
        };
        if let Some(at) = rest.strip_prefix("posted at ").and_then(parse_civil_time) {
            self.saw(n, me.clone(), at);
        } else if let Some(at) = rest.strip_prefix("edited at ").and_then(parse_civil_time) {
            self.saw(n, me.clone(), at);
        } else if rest.starts_with("deleted at ") {
            self.deleted(n);
        }
    }

    /// Learn from a line of an `RDM` listing: `#n user, timestamp: text` (or `#n@id user, …`).
    pub fn listing_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix('#') else {
            return;
        };
        let Some((n, rest)) = rest.split_once(' ') else {
            return;
        };
        let n = n.split_once('@').map_or(n, |(n, _)| n);
        let Ok(n) = n.parse::<u32>() else {
            return;
        };
        let Some((user, rest)) = rest.split_once(", ") else {
            return;
        };
        let Ok(author) = UserName::new(user) else {
            return;
        };
        if let Ok((after, at)) = civil_time(rest)
            && after.starts_with(':')
        {
            self.saw(n, author, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> CivilTime {
        parse_civil_time(s).unwrap()
    }

    fn yoda() -> UserName {
        UserName::new("yoda").unwrap()
    }

    #[test]
    fn a_delete_forgets_its_post_and_keeps_the_others_as_shown() {
        let mut s = SeenPosts::new(100);
        for n in 1..=4 {
            s.saw(n, yoda(), t(&format!("01 Dec 2026 07:46:0{n}")));
        }
        s.deleted(2);
        assert_eq!(s.get(1).unwrap().at, t("01 Dec 2026 07:46:01"));
        assert_eq!(s.get(2), None);
        assert_eq!(s.get(3).unwrap().at, t("01 Dec 2026 07:46:03"));
        s.saw(2, yoda(), t("01 Dec 2026 08:00:00"));
        assert_eq!(s.get(2).unwrap().at, t("01 Dec 2026 08:00:00"));
    }

    #[test]
    fn own_replies_and_listing_lines_are_learnt_and_anything_else_ignored() {
        let mut s = SeenPosts::new(100);
        s.own_reply(&yoda(), "Message #3 posted at 21 Nov 2026 22:30:01");
        assert_eq!(s.get(3).unwrap().at, t("21 Nov 2026 22:30:01"));
        s.own_reply(&yoda(), "Message #3 edited at 21 Nov 2026 22:31:00");
        assert_eq!(s.get(3).unwrap().at, t("21 Nov 2026 22:31:00"));
        s.listing_line("#7@12 luke, 1 Dec 2026 07:46:08: a text: with colons (edited)");
        assert_eq!(s.get(7).unwrap().author.as_str(), "luke");
        s.own_reply(&yoda(), "Message #3 deleted at 21 Nov 2026 22:32:00");
        assert_eq!(s.get(3), None);
        assert!(s.get(7).is_some(), "kept as shown");
        for junk in [
            "",
            "Message #",
            "Message #x posted at 21 Nov 2026 22:30:01",
            "Message #99999999999 posted at 21 Nov 2026 22:30:01",
            "Message #4 posted at yesterday",
        ] {
            s.own_reply(&yoda(), junk);
        }
        for junk in [
            "#",
            "#1",
            "#1 bad name!, 1 Dec 2026 07:46:08: x",
            "#2 luke, soon: x",
        ] {
            s.listing_line(junk);
        }
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn at_most_max_are_kept_the_lowest_numbers_forgotten() {
        let mut s = SeenPosts::new(1000);
        for n in 1..=50_000 {
            s.saw(n, yoda(), t("01 Dec 2026 07:46:00"));
        }
        assert_eq!(s.len(), 1000);
        assert!(s.get(49_001).is_some() && s.get(49_000).is_none());
    }
}
