//! The public message board: numbered posts, edits and deletes guarded by the timestamp.

use crate::store::{PostRecord, render_post};
use crate::time::{Timestamp, Zone};
use crate::types::{MessageNumber, MessageText, UserName};

/// A post in memory; its number is its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// When it was posted or last edited: also its version for `DLT`/`EDT`.
    pub at: Timestamp,
    /// Who wrote it.
    pub author: UserName,
    /// The text (bytes from the file kept exactly, see [`MessageText`]).
    pub text: MessageText,
    /// Whether it was edited.
    pub edited: bool,
}

/// Why an edit or delete was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardError {
    /// No post with that number.
    NoSuchMessage {
        /// The number asked for.
        number: MessageNumber,
        /// How many posts there are.
        count: usize,
    },
    /// Someone else's post.
    NotAuthor {
        /// The number asked for.
        number: MessageNumber,
        /// Its author.
        author: UserName,
    },
    /// The timestamp given is not the post's current one.
    StaleTimestamp {
        /// The number asked for.
        number: MessageNumber,
        /// Its current timestamp.
        current: Timestamp,
    },
}

/// All posts, in order.
#[derive(Debug, Default)]
pub struct Board {
    posts: Vec<Post>,
}

impl Board {
    /// A board restored from `messagelog.txt` (already numbered 1..n in order).
    pub fn new(records: Vec<PostRecord>) -> Self {
        Self {
            posts: records
                .into_iter()
                .map(|r| Post {
                    at: r.at,
                    author: r.author,
                    text: r.text,
                    edited: r.edited,
                })
                .collect(),
        }
    }

    /// How many posts there are.
    pub fn len(&self) -> usize {
        self.posts.len()
    }

    /// Append a post; returns its number.
    pub fn post(&mut self, author: UserName, text: String, at: Timestamp) -> MessageNumber {
        self.posts.push(Post {
            at,
            author,
            text: text.into(),
            edited: false,
        });
        MessageNumber::from_index(self.posts.len() - 1)
    }

    /// The post `number` if `author` wrote it and `claimed` is its current timestamp.
    fn own(
        &self,
        number: MessageNumber,
        author: &UserName,
        claimed: Timestamp,
    ) -> Result<usize, BoardError> {
        let idx = number.index();
        let post = self.posts.get(idx).ok_or(BoardError::NoSuchMessage {
            number,
            count: self.posts.len(),
        })?;
        if &post.author != author {
            return Err(BoardError::NotAuthor {
                number,
                author: post.author.clone(),
            });
        }
        if post.at != claimed {
            return Err(BoardError::StaleTimestamp {
                number,
                current: post.at,
            });
        }
        Ok(idx)
    }

    /// Replace the text of `author`'s post `number` whose timestamp is `claimed`; its timestamp
    /// becomes `now`.
    pub fn edit(
        &mut self,
        number: MessageNumber,
        author: &UserName,
        claimed: Timestamp,
        text: String,
        now: Timestamp,
    ) -> Result<&Post, BoardError> {
        let idx = self.own(number, author, claimed)?;
        let post = &mut self.posts[idx];
        post.text = text.into();
        post.at = now;
        post.edited = true;
        Ok(post)
    }

    /// Remove `author`'s post `number` whose timestamp is `claimed`; later posts move down.
    pub fn delete(
        &mut self,
        number: MessageNumber,
        author: &UserName,
        claimed: Timestamp,
    ) -> Result<Post, BoardError> {
        let idx = self.own(number, author, claimed)?;
        Ok(self.posts.remove(idx))
    }

    /// Posts strictly later than `since`, with their numbers.
    pub fn since(&self, since: Timestamp) -> impl Iterator<Item = (MessageNumber, &Post)> {
        self.posts
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.at > since)
            .map(|(i, p)| (MessageNumber::from_index(i), p))
    }

    /// The post at zero-based `index`.
    pub fn at(&self, index: usize) -> Option<&Post> {
        self.posts.get(index)
    }

    /// Every post with its number.
    pub fn iter(&self) -> impl Iterator<Item = (MessageNumber, &Post)> {
        self.posts
            .iter()
            .enumerate()
            .map(|(i, p)| (MessageNumber::from_index(i), p))
    }

    /// The record of post `number`.
    pub fn record(&self, number: MessageNumber) -> Option<PostRecord> {
        self.posts.get(number.index()).map(|p| PostRecord {
            number,
            at: p.at,
            author: p.author.clone(),
            text: p.text.clone(),
            edited: p.edited,
        })
    }

    /// The whole `messagelog.txt`.
    pub fn render(&self, zone: Zone) -> Vec<u8> {
        let mut out = Vec::new();
        for (number, _) in self.iter() {
            if let Some(r) = self.record(number) {
                out.extend(render_post(&r, zone));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: u32) -> MessageNumber {
        MessageNumber::new(x).unwrap()
    }
    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    #[test]
    fn delete_renumbers_later_posts_and_keeps_their_timestamps() {
        let mut b = Board::default();
        b.post(u("a"), "one".into(), t(1));
        b.post(u("b"), "two".into(), t(2));
        b.post(u("a"), "three".into(), t(3));
        b.delete(n(1), &u("a"), t(1)).unwrap();
        let all: Vec<_> = b
            .iter()
            .map(|(k, p)| (k.get(), p.text.to_string(), p.at))
            .collect();
        assert_eq!(
            all,
            vec![(1, "two".into(), t(2)), (2, "three".into(), t(3))]
        );
        assert!(
            b.render(Zone::UTC)
                .starts_with(b"1; 01 Jan 1970 00:00:02; b; two; no\n")
        );
    }

    #[test]
    fn edit_needs_author_and_current_timestamp_and_bumps_it() {
        let mut b = Board::default();
        b.post(u("a"), "one".into(), t(1));
        assert_eq!(
            b.edit(n(1), &u("b"), t(1), "x".into(), t(5)).unwrap_err(),
            BoardError::NotAuthor {
                number: n(1),
                author: u("a")
            }
        );
        assert_eq!(
            b.edit(n(1), &u("a"), t(0), "x".into(), t(5)).unwrap_err(),
            BoardError::StaleTimestamp {
                number: n(1),
                current: t(1)
            }
        );
        assert_eq!(
            b.edit(n(2), &u("a"), t(1), "x".into(), t(5)).unwrap_err(),
            BoardError::NoSuchMessage {
                number: n(2),
                count: 1
            }
        );
        let p = b.edit(n(1), &u("a"), t(1), "uno".into(), t(5)).unwrap();
        assert!(p.edited && p.at == t(5));
        // The old timestamp is now stale: a second editor who saw version 1 is refused.
        assert!(matches!(
            b.delete(n(1), &u("a"), t(1)),
            Err(BoardError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn since_is_strictly_later() {
        let mut b = Board::default();
        b.post(u("a"), "one".into(), t(1));
        b.post(u("a"), "two".into(), t(2));
        let later: Vec<_> = b.since(t(1)).map(|(k, _)| k.get()).collect();
        assert_eq!(later, vec![2]);
    }
}
