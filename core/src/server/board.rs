//! The public message board: numbered posts, edits and deletes guarded by the timestamp, and
//! each post's stable id (a number is a position and changes when an earlier post is deleted;
//! an id never does).

use crate::store::{PostRecord, render_post};
use crate::time::{Timestamp, Zone};
use crate::types::{MessageNumber, MessageText, PostId, PostRef, UserName};

/// A post in memory; its number is its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Its stable id.
    pub id: PostId,
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
    /// No post has that id (any more).
    NoSuchId {
        /// The id asked for.
        id: PostId,
    },
    /// The post with that id has another number now: an earlier post was deleted meanwhile.
    Moved {
        /// The id asked for.
        id: PostId,
        /// The number given with it.
        given: MessageNumber,
        /// Its number now.
        now: MessageNumber,
    },
    /// The timestamp given is not the post's current one.
    StaleTimestamp {
        /// The number asked for.
        number: MessageNumber,
        /// Its current timestamp.
        current: Timestamp,
    },
}

/// What an edit changed.
#[derive(Debug)]
pub struct Edited<'a> {
    /// The post's number.
    pub number: MessageNumber,
    /// The post as it is now.
    pub post: &'a Post,
    /// Its text before.
    pub old_text: MessageText,
}

/// All posts, in order.
#[derive(Debug, Default)]
pub struct Board {
    posts: Vec<Post>,
    next_id: u64,
}

impl Board {
    /// A board restored from `messagelog.txt` (already numbered 1..n in order) with each
    /// post's id (from `postids.txt`) and the next id to give.
    pub fn new(records: Vec<PostRecord>, ids: &[PostId], next_id: u64) -> Self {
        Self {
            posts: records
                .into_iter()
                .zip(ids)
                .map(|(r, id)| Post {
                    id: *id,
                    at: r.at,
                    author: r.author,
                    text: r.text,
                    edited: r.edited,
                })
                .collect(),
            next_id,
        }
    }

    /// The id the next post gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// How many posts there are.
    pub fn len(&self) -> usize {
        self.posts.len()
    }

    /// Append a post; returns its number and id.
    pub fn post(
        &mut self,
        author: UserName,
        text: String,
        at: Timestamp,
    ) -> (MessageNumber, PostId) {
        let id = PostId(self.next_id);
        self.next_id += 1;
        self.posts.push(Post {
            id,
            at,
            author,
            text: text.into(),
            edited: false,
        });
        (MessageNumber::from_index(self.posts.len() - 1), id)
    }

    /// The index of the post `target` means.
    pub fn find(&self, target: PostRef) -> Result<usize, BoardError> {
        let by_id = |id: PostId| {
            self.posts
                .iter()
                .rposition(|p| p.id == id)
                .ok_or(BoardError::NoSuchId { id })
        };
        match target {
            PostRef::Number(number) => {
                let idx = number.index();
                if idx < self.posts.len() {
                    Ok(idx)
                } else {
                    Err(BoardError::NoSuchMessage {
                        number,
                        count: self.posts.len(),
                    })
                }
            }
            PostRef::Id(id) => by_id(id),
            PostRef::Both(given, id) => {
                let idx = by_id(id)?;
                let now = MessageNumber::from_index(idx);
                if now == given {
                    Ok(idx)
                } else {
                    Err(BoardError::Moved { id, given, now })
                }
            }
        }
    }

    /// The post `target` if `author` wrote it and `claimed` is its current timestamp.
    fn own(
        &self,
        target: PostRef,
        author: &UserName,
        claimed: Timestamp,
    ) -> Result<usize, BoardError> {
        let idx = self.find(target)?;
        let number = MessageNumber::from_index(idx);
        let post = &self.posts[idx];
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
        target: PostRef,
        author: &UserName,
        claimed: Timestamp,
        text: String,
        now: Timestamp,
    ) -> Result<Edited<'_>, BoardError> {
        let idx = self.own(target, author, claimed)?;
        let post = &mut self.posts[idx];
        let old_text = std::mem::replace(&mut post.text, text.into());
        post.at = now;
        post.edited = true;
        Ok(Edited {
            number: MessageNumber::from_index(idx),
            post,
            old_text,
        })
    }

    /// Remove `author`'s post `number` whose timestamp is `claimed`; later posts move down.
    pub fn delete(
        &mut self,
        target: PostRef,
        author: &UserName,
        claimed: Timestamp,
    ) -> Result<(MessageNumber, Post), BoardError> {
        let idx = self.own(target, author, claimed)?;
        Ok((MessageNumber::from_index(idx), self.posts.remove(idx)))
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

    fn n(x: u32) -> PostRef {
        PostRef::Number(MessageNumber::new(x).unwrap())
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
                number: MessageNumber::new(1).unwrap(),
                author: u("a")
            }
        );
        assert_eq!(
            b.edit(n(1), &u("a"), t(0), "x".into(), t(5)).unwrap_err(),
            BoardError::StaleTimestamp {
                number: MessageNumber::new(1).unwrap(),
                current: t(1)
            }
        );
        assert_eq!(
            b.edit(n(2), &u("a"), t(1), "x".into(), t(5)).unwrap_err(),
            BoardError::NoSuchMessage {
                number: MessageNumber::new(2).unwrap(),
                count: 1
            }
        );
        let p = b
            .edit(n(1), &u("a"), t(1), "uno".into(), t(5))
            .unwrap()
            .post;
        assert!(p.edited && p.at == t(5));
        // The old timestamp is now stale: a second editor who saw version 1 is refused.
        assert!(matches!(
            b.delete(n(1), &u("a"), t(1)),
            Err(BoardError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn an_id_finds_its_post_wherever_it_moved_and_a_stale_number_with_it_is_refused() {
        let mut b = Board::default();
        let (_, first) = b.post(u("a"), "one".into(), t(1));
        let (_, second) = b.post(u("a"), "two".into(), t(1));
        let (_, third) = b.post(u("a"), "three".into(), t(1));
        assert_eq!((first, second, third), (PostId(0), PostId(1), PostId(2)));
        b.delete(PostRef::Id(first), &u("a"), t(1)).unwrap();
        // "two" moved from #2 to #1; #2 is now "three", same author, same second.
        let two = MessageNumber::new(2).unwrap();
        assert_eq!(
            b.delete(PostRef::Both(two, second), &u("a"), t(1)),
            Err(BoardError::Moved {
                id: second,
                given: two,
                now: MessageNumber::new(1).unwrap()
            })
        );
        let (number, gone) = b.delete(PostRef::Id(second), &u("a"), t(1)).unwrap();
        assert_eq!(
            (number.get(), gone.text.to_string()),
            (1, "two".to_string())
        );
        assert_eq!(
            b.delete(PostRef::Id(second), &u("a"), t(1)),
            Err(BoardError::NoSuchId { id: second })
        );
        // Ids are never given twice, even after deletes.
        assert_eq!(b.post(u("a"), "four".into(), t(2)).1, PostId(3));
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
