//! Which post each number meant when the user last saw it: the client remembers the stable id
//! that came with every number it showed (a post pushed, its own post's number, a line of an
//! `RDM` listing), and sends `DLT 3@17 …` when the user types `DLT 3 …`. So a `DLT` or `EDT`
//! hits the post the user saw as number 3, or is refused because it moved (an earlier post was
//! deleted meanwhile) — never the post that merely moved into number 3.
//!
//! This memory is for the full forms, `DLT n timestamp` and `EDT n timestamp text`, which a
//! person copies from a line on the screen: numbers are kept as they were shown, and a later
//! delete does not shift them. A user who copied the old #3 sends `3@17` and is told it moved;
//! shifting would turn that into `3@18`, the post that moved in, which is exactly the wrong
//! delete this prevents (the timestamp typed need not tell them apart: two posts of the same
//! second). The shortcuts `DLT n` / `EDT n text`, where the client fills in the timestamp,
//! follow the board's renumbering instead (`seen_posts`) and carry that view's id.

use std::collections::HashMap;

use crate::types::{MessageNumber, PostId, PostRef};

/// Most numbers remembered; beyond it the memory starts afresh (numbers are then sent as
/// typed, as DESIGN §2 has them), so a client reading a huge board stays small.
const MAX_REMEMBERED: usize = 100_000;

/// The id each shown number stood for.
#[derive(Debug, Default)]
pub struct SeenPosts {
    by_number: HashMap<u32, PostId>,
}

impl SeenPosts {
    /// Number `number` was shown for post `id`.
    pub fn saw(&mut self, number: MessageNumber, id: PostId) {
        if self.by_number.len() >= MAX_REMEMBERED && !self.by_number.contains_key(&number.get()) {
            self.by_number.clear();
        }
        self.by_number.insert(number.get(), id);
    }

    /// What to send for `target` as the user typed it: a bare number gets the id it was shown
    /// with, if any.
    pub fn resolve(&self, target: PostRef) -> PostRef {
        match target {
            PostRef::Number(n) => match self.by_number.get(&n.get()) {
                Some(id) => PostRef::Both(n, *id),
                None => target,
            },
            other => other,
        }
    }

    /// A line of an `RDM` listing (`#3@17 yoda, …`): remember which post number 3 is, and
    /// return the line to show, with the id or (`ids` false) without it (`#3 yoda, …`).
    pub fn listing_line(&mut self, line: &str, ids: bool) -> String {
        let parsed = line.strip_prefix('#').and_then(|rest| {
            let (token, tail) = rest.split_once(' ')?;
            let (n, id) = token.split_once('@')?;
            let n = MessageNumber::new(n.parse().ok()?)?;
            let id = PostId(id.parse().ok()?);
            Some((n, id, tail))
        });
        match parsed {
            Some((n, id, tail)) => {
                self.saw(n, id);
                if ids {
                    line.to_string()
                } else {
                    format!("#{n} {tail}")
                }
            }
            None => line.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: u32) -> MessageNumber {
        MessageNumber::new(x).unwrap()
    }

    #[test]
    fn a_number_is_sent_with_the_id_it_was_shown_with() {
        let mut s = SeenPosts::default();
        let line = "#2@17 yoda, 21 Nov 2026 22:30:01: b #3@9 x";
        assert_eq!(s.listing_line(line, true), line);
        assert_eq!(
            s.listing_line(line, false),
            "#2 yoda, 21 Nov 2026 22:30:01: b #3@9 x"
        );
        assert_eq!(
            s.resolve(PostRef::Number(n(2))),
            PostRef::Both(n(2), PostId(17))
        );
        assert_eq!(s.resolve(PostRef::Number(n(3))), PostRef::Number(n(3)));
        assert_eq!(s.resolve(PostRef::Id(PostId(4))), PostRef::Id(PostId(4)));
        s.saw(n(2), PostId(18));
        assert_eq!(
            s.resolve(PostRef::Number(n(2))),
            PostRef::Both(n(2), PostId(18))
        );
        assert_eq!(
            s.listing_line("2 messages since x:", false),
            "2 messages since x:"
        );
        assert_eq!(s.listing_line("#x@1 junk", false), "#x@1 junk");
        assert_eq!(
            s.by_number.len(),
            1,
            "lines that are not posts are not remembered"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut s = SeenPosts::default();
        for i in 1..=(MAX_REMEMBERED as u32 * 3) {
            s.saw(n(i), PostId(u64::from(i)));
        }
        assert!(s.by_number.len() <= MAX_REMEMBERED);
    }
}
