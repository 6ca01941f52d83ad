//! The board as this client knows it now, by number: who wrote each post it has seen, its
//! stable id and its timestamp, so that `DLT n` and `EDT n text` can fill in the timestamp
//! (and the id) DESIGN §2's requests carry.
//!
//! Numbers follow the server's: a `* DELETE` of post n (or the user's own `DLT n`) forgets n
//! and moves every later post down one, as DESIGN §2 renumbers the board, whether or not this
//! client ever saw post n. The client shows the user that notice ("later messages moved up
//! one number"), so after it `DLT 30` means the post now numbered 30. (`post_ids` keeps the
//! other memory, the numbers as they were shown, for the full forms a person copies from a
//! line on the screen.)
//!
//! The safety check stays the server's: the request on the wire is still
//! `DLT n@id timestamp` / `EDT n@id timestamp text`, so if this view is behind the board (a
//! delete it was not told of, or one held back while a listing was sent, whose later lines
//! already carry the new numbers) the server refuses it with `551` and nothing is changed.
//! The client only saves the user the typing.
//!
//! Fed from everything that names a post: live and caught-up `* POST`s, `* EDIT`, `* DELETE`,
//! `* POSTED`, the user's own `MSG`/`EDT`/`DLT` replies and the lines of an `RDM` listing. At
//! most [`ClientConfig::max_seen_posts`] are kept, the lowest numbers forgotten first.
//!
//! [`ClientConfig::max_seen_posts`]: super::ClientConfig::max_seen_posts

use std::collections::BTreeMap;

use crate::proto::timestamp::{civil_time, parse_civil_time};
use crate::time::CivilTime;
use crate::types::{MessageNumber, PostId, UserName};

/// What the client knows of one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Who wrote it.
    pub author: UserName,
    /// Its current timestamp, as last seen.
    pub at: CivilTime,
    /// Its stable id, if the line that named it carried one.
    pub id: Option<PostId>,
}

/// The posts seen, by their current number.
#[derive(Debug)]
pub struct SeenPosts {
    posts: BTreeMap<u32, Seen>,
    max: usize,
    /// The id of the user's own post from `* POSTED`, until the reply to its `MSG` names it.
    posted: Option<(u32, PostId)>,
}

impl SeenPosts {
    /// Remember at most `max` posts.
    pub fn new(max: usize) -> Self {
        Self {
            posts: BTreeMap::new(),
            max,
            posted: None,
        }
    }

    /// Post `n` by `author` has timestamp `at` (a new post, or an edit); `id` if the line gave
    /// it (without, the id already known for `n` stays: an edit keeps its post's number).
    pub fn saw(&mut self, n: u32, author: UserName, at: CivilTime, id: Option<PostId>) {
        if self.max == 0 {
            return;
        }
        let id = id.or_else(|| {
            self.posts
                .get(&n)
                .filter(|s| s.author == author)
                .and_then(|s| s.id)
        });
        self.posts.insert(n, Seen { author, at, id });
        while self.posts.len() > self.max {
            self.posts.pop_first();
        }
    }

    /// Post `n` (with id `id`, if known) was deleted: every later post moves down one number,
    /// as on the server.
    pub fn deleted(&mut self, n: u32, id: Option<PostId>) {
        self.posts.remove(&n);
        let later = self.posts.split_off(&n);
        // Below n the numbers are unchanged, so an entry still naming the deleted post there
        // is stale (a delete this client missed): forget it too.
        if id.is_some() {
            self.posts.retain(|_, s| s.id != id);
        }
        for (k, s) in later {
            if id.is_none() || s.id != id {
                self.posts.insert(k - 1, s);
            }
        }
    }

    /// The server's `* POSTED n@id` for the user's own post, whose reply comes next.
    pub fn posted(&mut self, n: MessageNumber, id: PostId) {
        self.posted = Some((n.get(), id));
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
        let posted = self.posted.take();
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
            let id = posted.filter(|&(p, _)| p == n).map(|(_, id)| id);
            self.saw(n, me.clone(), at, id);
        } else if let Some(at) = rest.strip_prefix("edited at ").and_then(parse_civil_time) {
            self.saw(n, me.clone(), at, None);
        } else if rest.starts_with("deleted at ") {
            let id = self.posts.get(&n).and_then(|s| s.id);
            self.deleted(n, id);
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
        let (n, id) = match n.split_once('@') {
            Some((n, id)) => match id.parse::<u64>() {
                Ok(id) => (n, Some(PostId(id))),
                Err(_) => return,
            },
            None => (n, None),
        };
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
            self.saw(n, author, at, id);
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

    fn id(n: u64) -> Option<PostId> {
        Some(PostId(n))
    }

    fn n(x: u32) -> MessageNumber {
        MessageNumber::new(x).unwrap()
    }

    #[test]
    fn a_delete_forgets_its_post_and_moves_the_later_ones_down_one_as_the_server_does() {
        let mut s = SeenPosts::new(100);
        for k in 1..=4 {
            s.saw(
                k,
                yoda(),
                t(&format!("01 Dec 2026 07:46:0{k}")),
                id(k.into()),
            );
        }
        s.deleted(2, id(2));
        assert_eq!(s.get(1).unwrap().at, t("01 Dec 2026 07:46:01"));
        assert_eq!(s.get(2).unwrap().at, t("01 Dec 2026 07:46:03"));
        assert_eq!(s.get(2).unwrap().id, id(3));
        assert_eq!(s.get(3).unwrap().id, id(4));
        assert_eq!(s.get(4), None);
        // A delete of a post this client never saw moves the later ones all the same.
        s.deleted(1, id(99));
        assert_eq!(s.get(1).unwrap().id, id(3));
        assert_eq!(s.get(2).unwrap().id, id(4));
        assert_eq!(s.len(), 2);
        // An edit changes the timestamp and keeps the id.
        s.saw(2, yoda(), t("01 Dec 2026 08:00:00"), None);
        assert_eq!(s.get(2).unwrap().at, t("01 Dec 2026 08:00:00"));
        assert_eq!(s.get(2).unwrap().id, id(4));
        // A view behind the board (the server's #1 is id 7, which this client has as #5)
        // forgets the deleted post wherever it has it.
        s.saw(5, yoda(), t("01 Dec 2026 08:00:00"), id(7));
        s.deleted(1, id(7));
        assert_eq!(s.get(1).unwrap().id, id(4));
        assert!((2..=5).all(|k| s.get(k).is_none()), "{s:?}");
        // Numbers up to u32::MAX do not overflow.
        s.saw(u32::MAX, yoda(), t("01 Dec 2026 08:00:00"), id(8));
        s.deleted(u32::MAX, None);
        assert_eq!(s.get(u32::MAX), None);
        assert_eq!(s.get(u32::MAX - 1), None);
        s.saw(u32::MAX, yoda(), t("01 Dec 2026 08:00:00"), id(8));
        s.deleted(1, None);
        assert_eq!(s.get(u32::MAX - 1).unwrap().id, id(8));
    }

    #[test]
    fn the_users_own_post_gets_the_id_of_the_posted_event_before_its_reply() {
        let mut s = SeenPosts::new(100);
        s.posted(n(3), PostId(17));
        s.own_reply(&yoda(), "Message #3 posted at 21 Nov 2026 22:30:01");
        assert_eq!(s.get(3).unwrap().id, id(17));
        // Used once: the next post's reply without its event carries no id.
        s.own_reply(&yoda(), "Message #4 posted at 21 Nov 2026 22:30:01");
        assert_eq!(s.get(4).unwrap().id, None);
        // A POSTED for another number is not taken for this one.
        s.posted(n(9), PostId(30));
        s.own_reply(&yoda(), "Message #5 posted at 21 Nov 2026 22:30:01");
        assert_eq!(s.get(5).unwrap().id, None);
        s.own_reply(&yoda(), "Message #3 deleted at 21 Nov 2026 22:31:00");
        assert_eq!(
            s.get(3).unwrap().at,
            t("21 Nov 2026 22:30:01"),
            "#4 moved down"
        );
        assert_eq!(s.get(3).unwrap().id, None);
        assert_eq!(s.len(), 2);
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
        assert_eq!(s.get(7).unwrap().id, id(12));
        s.own_reply(&yoda(), "Message #3 deleted at 21 Nov 2026 22:32:00");
        assert_eq!(s.get(3), None);
        assert_eq!(s.get(6).unwrap().id, id(12), "moved down one");
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
            "#3@x luke, 1 Dec 2026 07:46:08: bad id",
        ] {
            s.listing_line(junk);
        }
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn at_most_max_are_kept_the_lowest_numbers_forgotten() {
        let mut s = SeenPosts::new(1000);
        for n in 1..=50_000 {
            s.saw(n, yoda(), t("01 Dec 2026 07:46:00"), None);
        }
        assert_eq!(s.len(), 1000);
        assert!(s.get(49_001).is_some() && s.get(49_000).is_none());
    }
}
