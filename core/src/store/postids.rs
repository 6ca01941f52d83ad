//! `postids.txt`: the stable id of every post, beside `messagelog.txt` (whose format DESIGN §4
//! fixes, with no room for an id).
//!
//! It is a journal, one change a line, appended before the change reaches `messagelog.txt`
//! (the server emits the journal's record first, and a runtime applies `postids.txt` before
//! `messagelog.txt`), and rewritten as a snapshot at every start:
//!
//! | line | meaning |
//! |---|---|
//! | `> 18` | the next post gets id 18 or more (ids are never given twice) |
//! | `+ 17 1795300201 yoda 9f0c…` | post 17, by yoda, at that Unix second, joins the end of the board |
//! | `~ 17 1795300201 1795300260 9f0c… 03ab…` | post 17 was edited: its timestamp (and text) went from the first to the second |
//! | `- 17 4 1795300201 yoda 03ab…` | post 17 (at board index 4, with that timestamp, author and text) was deleted |
//! | `# …` | a comment |
//!
//! The hex word is a fingerprint of the post's text (64-bit FNV-1a, not a secret and not a
//! security measure: it only tells two posts of one author in one second apart, so that a post
//! is matched to its id by what it says too). Every line carries what undoing it needs. A crash can stop a batch between the journal and
//! `messagelog.txt` — never acknowledged, since replies wait for both — so at start the journal
//! may be ahead of the board by part of one batch: [`assign`] replays it, and if the result does
//! not match the board (the same authors and timestamps in the same order) it undoes the last
//! changes one by one until it does. If nothing matches (a file edited by hand, a repair), posts
//! are matched in order by author and timestamp and the rest get new ids, with a note for the
//! operator. Ids are what `DLT @17` and `EDT 3@17 …` name.

use crate::time::Timestamp;
use crate::types::{MessageText, PostId, UserName};

use super::PostRecord;

/// The first line of every snapshot.
const HEADER: &str = "# huddle post ids: one change a line, see the README's data folder section\n";

/// How many changes [`assign`] undoes at most looking for a match (a batch holds at most 1024
/// requests; the rest is a safety margin).
const MAX_UNDO: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Next(u64),
    Add {
        id: u64,
        post: Entry,
    },
    Edit {
        id: u64,
        old: (i64, u64),
        new: (i64, u64),
    },
    Delete {
        id: u64,
        index: usize,
        post: Entry,
    },
}

/// One post as the journal knows it (its id is kept beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    at: i64,
    author: String,
    text: u64,
}

impl Entry {
    fn is(&self, p: &PostRecord) -> bool {
        self.at == p.at.unix_secs()
            && self.author == p.author.as_str()
            && self.text == fingerprint(&p.text)
    }
}

/// 64-bit FNV-1a of the text's bytes: tells posts apart, nothing more.
fn fingerprint(text: &MessageText) -> u64 {
    text.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The journal line of a new post.
pub fn render_add(id: PostId, at: Timestamp, author: &UserName, text: &MessageText) -> Vec<u8> {
    format!(
        "+ {} {} {author} {:016x}\n",
        id.0,
        at.unix_secs(),
        fingerprint(text)
    )
    .into_bytes()
}

/// The journal line of an edit: the timestamp and text before and after.
pub fn render_edit(
    id: PostId,
    old: (Timestamp, &MessageText),
    new: (Timestamp, &MessageText),
) -> Vec<u8> {
    format!(
        "~ {} {} {} {:016x} {:016x}\n",
        id.0,
        old.0.unix_secs(),
        new.0.unix_secs(),
        fingerprint(old.1),
        fingerprint(new.1)
    )
    .into_bytes()
}

/// The journal line of a delete (of the post that was at board index `index`).
pub fn render_delete(
    id: PostId,
    index: usize,
    at: Timestamp,
    author: &UserName,
    text: &MessageText,
) -> Vec<u8> {
    format!(
        "- {} {index} {} {author} {:016x}\n",
        id.0,
        at.unix_secs(),
        fingerprint(text)
    )
    .into_bytes()
}

/// The whole file for a board of `posts` (id, timestamp, author, text) whose next id is
/// `next`.
pub fn render_snapshot<'a>(
    posts: impl Iterator<Item = (PostId, Timestamp, &'a UserName, &'a MessageText)>,
    next: u64,
) -> Vec<u8> {
    let mut out = format!("{HEADER}> {next}\n").into_bytes();
    for (id, at, author, text) in posts {
        out.extend(render_add(id, at, author, text));
    }
    out
}

fn parse_line(line: &str) -> Option<Op> {
    let mut f = line.split(' ');
    let op = f.next()?;
    let mut word = || f.next();
    let num = |w: Option<&str>| w?.parse::<i64>().ok();
    let id = |w: Option<&str>| w?.parse::<u64>().ok();
    let hex = |w: Option<&str>| {
        let w = w?;
        (w.len() == 16).then(|| u64::from_str_radix(w, 16).ok())?
    };
    let parsed = match op {
        ">" => Op::Next(id(word())?),
        "+" => Op::Add {
            id: id(word())?,
            post: Entry {
                at: num(word())?,
                author: word()?.to_string(),
                text: hex(word())?,
            },
        },
        "~" => {
            let id = id(word())?;
            let (old_at, new_at) = (num(word())?, num(word())?);
            Op::Edit {
                id,
                old: (old_at, hex(word())?),
                new: (new_at, hex(word())?),
            }
        }
        "-" => Op::Delete {
            id: id(word())?,
            index: usize::try_from(id(word())?).ok()?,
            post: Entry {
                at: num(word())?,
                author: word()?.to_string(),
                text: hex(word())?,
            },
        },
        _ => return None,
    };
    word().is_none().then_some(parsed)
}

/// What [`assign`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assigned {
    /// The id of each post, in board order.
    pub ids: Vec<PostId>,
    /// The id the next post gets.
    pub next: u64,
    /// For the operator, when the journal did not match the board as it should.
    pub note: Option<String>,
}

/// The ids of `posts` (the board as `messagelog.txt` holds it) from the journal `text`.
pub fn assign(posts: &[PostRecord], text: &[u8]) -> Assigned {
    let text = String::from_utf8_lossy(text);
    let mut ops = Vec::new();
    let mut bad = 0usize;
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        // A torn first line: nothing complete.
        None => "",
    };
    for line in complete.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(op) => ops.push(op),
            None => bad += 1,
        }
    }
    let mut next = 1u64;
    let mut list: Vec<(u64, Entry)> = Vec::new();
    for op in &ops {
        apply(&mut list, &mut next, op);
    }
    let matches = |list: &[(u64, Entry)]| {
        list.len() == posts.len() && list.iter().zip(posts).all(|((_, e), p)| e.is(p))
    };
    let mut aligned = matches(&list);
    for op in ops.iter().rev().take(MAX_UNDO) {
        if aligned {
            break;
        }
        undo(&mut list, op);
        aligned = matches(&list);
    }
    let mut note = (bad > 0).then(|| format!("postids.txt: {bad} unreadable line(s) skipped"));
    let ids = if aligned {
        list.iter().map(|(id, _)| PostId(*id)).collect()
    } else {
        // Replay again (the undos above changed the list) and match in order.
        let mut list = Vec::new();
        let mut ignored = next;
        for op in &ops {
            apply(&mut list, &mut ignored, op);
        }
        let mut cursor = 0;
        let mut fresh = 0usize;
        let ids = posts
            .iter()
            .map(|p| {
                let found = list[cursor.min(list.len())..]
                    .iter()
                    .position(|(_, e)| e.is(p));
                match found {
                    Some(k) => {
                        let id = list[cursor + k].0;
                        cursor += k + 1;
                        PostId(id)
                    }
                    None => {
                        fresh += 1;
                        let id = PostId(next);
                        next += 1;
                        id
                    }
                }
            })
            .collect();
        if fresh > 0 && !(ops.is_empty() && bad == 0) {
            let mismatch = format!(
                "postids.txt does not match messagelog.txt (edited by hand or repaired?): {fresh} post(s) got new ids"
            );
            note = Some(match note {
                Some(n) => format!("{n}; {mismatch}"),
                None => mismatch,
            });
        }
        ids
    };
    Assigned { ids, next, note }
}

fn apply(list: &mut Vec<(u64, Entry)>, next: &mut u64, op: &Op) {
    match op {
        Op::Next(n) => *next = (*next).max(*n),
        Op::Add { id, post } => {
            *next = (*next).max(id.saturating_add(1));
            list.push((*id, post.clone()));
        }
        Op::Edit { id, new, .. } => {
            if let Some((_, e)) = list.iter_mut().rev().find(|(i, _)| i == id) {
                (e.at, e.text) = *new;
            }
        }
        Op::Delete { id, .. } => {
            if let Some(i) = list.iter().rposition(|(i, _)| i == id) {
                list.remove(i);
            }
        }
    }
}

fn undo(list: &mut Vec<(u64, Entry)>, op: &Op) {
    match op {
        Op::Next(_) => {}
        Op::Add { id, .. } => {
            if let Some(i) = list.iter().rposition(|(i, _)| i == id) {
                list.remove(i);
            }
        }
        Op::Edit { id, old, .. } => {
            if let Some((_, e)) = list.iter_mut().rev().find(|(i, _)| i == id) {
                (e.at, e.text) = *old;
            }
        }
        Op::Delete { id, index, post } => {
            list.insert((*index).min(list.len()), (*id, post.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MessageNumber;

    fn post(n: u32, at: i64, author: &str, text: &str) -> PostRecord {
        PostRecord {
            number: MessageNumber::new(n).unwrap(),
            at: Timestamp::from_unix_secs(at),
            author: UserName::new(author).unwrap(),
            text: MessageText::from(text),
            edited: false,
        }
    }

    fn ids(a: &Assigned) -> Vec<u64> {
        a.ids.iter().map(|i| i.0).collect()
    }

    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    fn m(s: &str) -> MessageText {
        MessageText::from(s)
    }

    #[test]
    fn a_snapshot_and_its_changes_give_every_post_its_id() {
        let (a, b, x) = (u("a"), u("b"), m("x"));
        let mut text = render_snapshot(
            [(PostId(4), t(10), &a, &x), (PostId(7), t(11), &b, &x)].into_iter(),
            8,
        );
        text.extend(render_add(PostId(8), t(12), &a, &x));
        text.extend(render_delete(PostId(4), 0, t(10), &a, &x));
        text.extend(render_edit(PostId(8), (t(12), &x), (t(20), &m("y"))));
        let board = [post(1, 11, "b", "x"), post(2, 20, "a", "y")];
        let got = assign(&board, &text);
        assert_eq!((ids(&got), got.next, got.note), (vec![7, 8], 9, None));
    }

    #[test]
    fn a_journal_ahead_of_the_board_by_a_crash_is_rolled_back_to_match() {
        let (a, one) = (u("a"), m("one"));
        let mut text = render_snapshot([(PostId(1), t(10), &a, &one)].into_iter(), 2);
        // The batch: a post, an edit of post 1, a delete of post 1 — written to the journal,
        // then the crash, before messagelog.txt changed.
        text.extend(render_add(PostId(2), t(30), &a, &m("two")));
        text.extend(render_edit(PostId(1), (t(10), &one), (t(31), &m("uno"))));
        text.extend(render_delete(PostId(1), 0, t(31), &a, &m("uno")));
        let before = [post(1, 10, "a", "one")];
        let got = assign(&before, &text);
        assert_eq!((ids(&got), got.next, got.note.clone()), (vec![1], 3, None));
        // Or the crash came after: the journal matches as it is.
        let after = [post(1, 30, "a", "two")];
        assert_eq!(ids(&assign(&after, &text)), vec![2]);
        // A torn last line is not part of the journal.
        let mut torn = text.clone();
        torn.extend(b"+ 3 40 a 00");
        assert_eq!(ids(&assign(&after, &torn)), vec![2]);
    }

    #[test]
    fn two_posts_of_one_author_in_one_second_are_told_apart_by_their_text() {
        let (a, kept, lost) = (u("a"), m("kept"), m("lost"));
        let mut text = render_snapshot([(PostId(1), t(10), &a, &kept)].into_iter(), 2);
        // A batch: a post in the same second, then a delete of the first; the crash leaves the
        // board as it was.
        text.extend(render_add(PostId(2), t(10), &a, &lost));
        text.extend(render_delete(PostId(1), 0, t(10), &a, &kept));
        let got = assign(&[post(1, 10, "a", "kept")], &text);
        assert_eq!((ids(&got), got.next, got.note), (vec![1], 3, None));
    }

    #[test]
    fn a_board_that_does_not_match_keeps_what_it_can_and_says_so() {
        let x = m("x");
        let (a, b, c) = (u("a"), u("b"), u("c"));
        let text = render_snapshot(
            [
                (PostId(1), t(10), &a, &x),
                (PostId(2), t(11), &b, &x),
                (PostId(3), t(12), &c, &x),
            ]
            .into_iter(),
            9,
        );
        // Post 2 was removed by hand and a line added at the end.
        let board = [
            post(1, 10, "a", "x"),
            post(2, 12, "c", "x"),
            post(3, 50, "d", "x"),
        ];
        let got = assign(&board, &text);
        assert_eq!(ids(&got), vec![1, 3, 9]);
        assert_eq!(got.next, 10);
        assert!(got.note.unwrap().contains("1 post(s) got new ids"));
        // No journal at all (an older data folder): numbered from 1, silently.
        let got = assign(&board, b"");
        assert_eq!((ids(&got), got.next, got.note), (vec![1, 2, 3], 4, None));
        // Garbage is skipped with a note, never a panic.
        let got = assign(&board, b"+ x\n- 1\n~~~\n\xff\n+ 1 2 a zz\n> -1\n");
        assert_eq!(ids(&got), vec![1, 2, 3]);
        assert!(got.note.unwrap().contains("6 unreadable"));
    }
}
