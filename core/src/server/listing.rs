//! Long output produced as the connection's output drains: the lines of an `RDM`, `RCU` or
//! `ATU` listing and the catch-up at login.
//!
//! A listing remembers where it is (a cursor into the board, the login history or the
//! sessions), never a copy of what it lists, and renders a few kilobytes at a time while the
//! connection's unsent output is under the high-water mark. So one client asking for a
//! million posts — or eight clients pipelining that request — costs the server at most the
//! high-water mark per connection, never the size of the board.
//!
//! While a connection's listing runs, events for it are held back (a multi-line reply must
//! not be interrupted, and live posts come after the catch-up they follow) and its further
//! requests wait.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Server;
use super::inbox::LetterId;
use super::logins::LoginCursor;
use super::output::ConnId;
use super::sessions::SessionCursor;
use crate::proto::event::Event;
use crate::proto::reply::{Code, render_line};
use crate::time::Timestamp;
use crate::types::UserName;

/// How much a listing renders into one send.
const CHUNK: usize = 16 * 1024;

/// Where the lines of a listing come from.
#[derive(Debug)]
pub enum Source {
    /// Posts later than `since`, not by a user `reader` blocks, board indices `next..end`.
    Rdm {
        /// Who reads (their blocks apply).
        reader: UserName,
        /// Strictly later than this.
        since: Timestamp,
        /// The next board index to look at.
        next: usize,
        /// One past the last board index in the listing.
        end: usize,
        /// Posts deleted since the listing began, each as the board index it had then.
        deleted: Vec<usize>,
    },
    /// Users who logged in at or after `since`, after `cursor`.
    Rcu {
        /// The window's start.
        since: Timestamp,
        /// The last user listed.
        cursor: Option<LoginCursor>,
    },
    /// Online users other than `reader`, after `cursor`.
    Atu {
        /// Who asks (not listed).
        reader: UserName,
        /// The last session listed.
        cursor: Option<SessionCursor>,
    },
}

/// A listing in progress.
#[derive(Debug)]
pub enum Listing {
    /// The rest of a multi-line reply: the next line already rendered (so the last line can
    /// be told apart), and where the lines after it come from.
    Reply {
        /// The reply code of every line.
        code: Code,
        /// The next line to send; `None` once the last one went.
        lookahead: Option<String>,
        /// The lines after it.
        source: Source,
    },
    /// The catch-up after login: stored private messages, the backlog notice, the posts.
    CatchUp {
        /// Private messages still to send.
        letters: VecDeque<LetterId>,
        /// `* BACKLOG`, if older posts are left out.
        backlog: Option<Event>,
        /// Board indices of the posts still to send.
        posts: VecDeque<usize>,
        /// Posts deleted since the catch-up began, each as the board index it had then.
        deleted: Vec<usize>,
    },
}

/// The number a post at board index `index` had when a listing began, given the posts
/// `deleted` since (in order, each as its index then). A listing numbers every line as at its
/// start: the `* DELETE` events held back during it follow it, and a client that applies them
/// in order after the listing ends up with the board's numbers (lines numbered after a delete
/// with the new numbers, before the event that explains them, would be off by one).
fn index_at_start(index: usize, deleted: &[usize]) -> usize {
    deleted
        .iter()
        .rev()
        .fold(index, |i, &d| if i >= d { i + 1 } else { i })
}

impl Listing {
    /// A post at board index `index` was deleted: later indices move down by one.
    pub fn post_deleted(&mut self, index: usize) {
        match self {
            Listing::Reply {
                source: Source::Rdm {
                    next, end, deleted, ..
                },
                ..
            } => {
                if index < *next {
                    *next -= 1;
                }
                if index < *end {
                    *end -= 1;
                }
                deleted.push(index);
            }
            Listing::CatchUp { posts, deleted, .. } => {
                deleted.push(index);
                posts.retain(|&i| i != index);
                for i in posts.iter_mut() {
                    if *i > index {
                        *i -= 1;
                    }
                }
            }
            Listing::Reply { .. } => {}
        }
    }
}

impl Server {
    /// Begin a listing on `conn`: hold its events, produce what fits now.
    pub(super) fn start_listing(&mut self, conn: ConnId, listing: Listing) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.listing = Some(listing);
        self.holding.insert(conn);
        self.produce(conn);
    }

    /// Produce more of `conn`'s listing while its output has room; when it is done, release
    /// the events held meanwhile and let its requests run again.
    pub(super) fn produce(&mut self, conn: ConnId) {
        let high = self.config.output_high_water;
        loop {
            let Some(c) = self.conns.get_mut(conn) else {
                return;
            };
            if !c.flow.has_room(high) {
                return;
            }
            let Some(mut listing) = c.listing.take() else {
                return;
            };
            let mut chunk = String::new();
            let mut done = false;
            let mut letter = None;
            while chunk.len() < CHUNK && letter.is_none() {
                match self.next_piece(&mut listing) {
                    Some(Piece::Text(text)) => chunk.push_str(&text),
                    Some(Piece::Letter(id, text)) => {
                        // A letter goes out on its own, so its end is known exactly.
                        if !chunk.is_empty() {
                            self.send_direct(conn, Bytes::from(std::mem::take(&mut chunk)), None);
                        }
                        chunk = text;
                        letter = Some(id);
                    }
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            if !chunk.is_empty() {
                self.send_direct(conn, Bytes::from(chunk), letter);
            }
            if done {
                self.finish_listing(conn);
                return;
            }
            if let Some(c) = self.conns.get_mut(conn) {
                c.listing = Some(listing);
            }
        }
    }

    fn finish_listing(&mut self, conn: ConnId) {
        self.holding.remove(&conn);
        let held = match self.conns.get_mut(conn) {
            Some(c) => c.flow.release_held(),
            None => return,
        };
        for (bytes, letter) in held {
            self.send_direct(conn, bytes, letter);
        }
        self.serve_later(conn);
    }

    /// The next piece of output of `listing`, or `None` when it is finished.
    fn next_piece(&mut self, listing: &mut Listing) -> Option<Piece> {
        match listing {
            Listing::Reply {
                code,
                lookahead,
                source,
            } => {
                let line = lookahead.take()?;
                let mut out = String::new();
                match self.next_listing_line(source) {
                    Some(next) => {
                        render_line(&mut out, *code, false, &line);
                        *lookahead = Some(next);
                    }
                    None => render_line(&mut out, *code, true, &line),
                }
                Some(Piece::Text(out))
            }
            Listing::CatchUp {
                letters,
                backlog,
                posts,
                deleted,
            } => {
                let zone = self.config.zone;
                while let Some(id) = letters.pop_front() {
                    if let Some(r) = self.inbox.get(id) {
                        let e = Event::Private {
                            at: zone.civil(r.at),
                            from: r.from.clone(),
                            text: r.text.to_string(),
                        };
                        return Some(Piece::Letter(id, e.render()));
                    }
                }
                if let Some(e) = backlog.take() {
                    return Some(Piece::Text(e.render()));
                }
                while let Some(i) = posts.pop_front() {
                    if let Some(p) = self.board.at(i) {
                        let e = Event::Post {
                            number: crate::types::MessageNumber::from_index(index_at_start(
                                i, deleted,
                            )),
                            id: p.id,
                            at: zone.civil(p.at),
                            author: p.author.clone(),
                            edited: p.edited,
                            text: p.text.to_string(),
                        };
                        return Some(Piece::Text(e.render()));
                    }
                }
                None
            }
        }
    }

    /// The next line of a multi-line reply's source, without its code.
    pub(super) fn next_listing_line(&self, source: &mut Source) -> Option<String> {
        match source {
            Source::Rdm {
                reader,
                since,
                next,
                end,
                deleted,
            } => {
                while *next < *end {
                    let i = *next;
                    *next += 1;
                    let p = self.board.at(i)?;
                    if p.at > *since && !self.blocks.blocks(reader, &p.author) {
                        return Some(self.rdm_line(index_at_start(i, deleted), p));
                    }
                }
                None
            }
            Source::Rcu { since, cursor } => {
                let (key, r) = self
                    .logins
                    .logged_in_since(*since, cursor.as_ref())
                    .next()?;
                let state = if self.sessions.find(&r.user).is_some() {
                    "online"
                } else {
                    "offline"
                };
                let line = format!(
                    "{}, last login {}, {state}",
                    r.user,
                    self.render_ts(r.login)
                );
                *cursor = Some(key);
                Some(line)
            }
            Source::Atu { reader, cursor } => {
                let (seq, o) = self
                    .sessions
                    .after(*cursor)
                    .find(|(_, o)| &o.user != reader)?;
                let line = format!(
                    "{}, {}, {}, active since {}",
                    o.user,
                    o.ip,
                    o.udp_port,
                    self.render_ts(o.since)
                );
                *cursor = Some(seq);
                Some(line)
            }
        }
    }

    /// One line of an `RDM` listing.
    pub(super) fn rdm_line(&self, index: usize, p: &super::board::Post) -> String {
        let edited = if p.edited { " (edited)" } else { "" };
        format!(
            "#{}@{} {}, {}: {}{edited}",
            crate::types::MessageNumber::from_index(index),
            p.id,
            p.author,
            self.render_ts(p.at),
            p.text
        )
    }

    /// A post at board index `index` was deleted: every listing in progress adjusts.
    pub(super) fn listings_post_deleted(&mut self, index: usize) {
        let holding: Vec<ConnId> = self.holding.iter().copied().collect();
        for conn in holding {
            if let Some(l) = self.conns.get_mut(conn).and_then(|c| c.listing.as_mut()) {
                l.post_deleted(index);
            }
        }
    }
}

/// A piece of a listing's output.
enum Piece {
    /// Lines.
    Text(String),
    /// One stored private message's event line.
    Letter(LetterId, String),
}

#[cfg(test)]
mod tests {
    use super::index_at_start;

    #[test]
    fn an_index_after_deletes_maps_back_to_the_one_it_had_at_the_start() {
        // Board A B C D; B (index 1) deleted, then A (index 0): D is at index 1 now, was 3.
        assert_eq!(index_at_start(1, &[1]), 2);
        assert_eq!(index_at_start(0, &[1]), 0);
        assert_eq!(index_at_start(1, &[1, 0]), 3);
        assert_eq!(index_at_start(0, &[1, 0]), 2);
        // Nothing deleted, or only later posts: unchanged.
        assert_eq!(index_at_start(7, &[]), 7);
        assert_eq!(index_at_start(2, &[5, 9]), 2);
    }
}
