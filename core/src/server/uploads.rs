//! Uploads the server introduced, kept until the presenter's client reports how they ended,
//! so that the console narrates each upload once: asked, then its outcome.
//!
//! The file goes from client to client; the server sees neither its bytes nor its end. The
//! presenter's client sends `XFR <id> <outcome> <bytes>` when an upload ends
//! ([`crate::proto::report`]); the server matches it to the introduction it made on the same
//! connection and narrates one line. Introductions live on their presenter's connection and
//! go with it; at most [`ServerConfig::max_unreported_uploads`] wait on one connection (the
//! oldest is forgotten beyond: a client that never reports cannot grow the server).
//!
//! [`ServerConfig::max_unreported_uploads`]: super::ServerConfig::max_unreported_uploads

use std::collections::VecDeque;

use super::{ConnId, Server};
use crate::client::human_bytes;
use crate::proto::event::Event;
use crate::proto::report::{UploadOutcome, parse_report};
use crate::transfer::TransferId;
use crate::types::UserName;

/// One upload the server introduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introduction {
    /// The transfer's id, as the `227` named it.
    pub id: TransferId,
    /// Who receives it.
    pub audience: UserName,
    /// The file's base name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The introductions of one connection, oldest first.
#[derive(Debug, Default)]
pub struct Introductions {
    open: VecDeque<Introduction>,
}

impl Introductions {
    /// Remember `intro`, forgetting the oldest if `max` are already waiting.
    pub fn add(&mut self, intro: Introduction, max: usize) {
        if max == 0 {
            return;
        }
        while self.open.len() >= max {
            self.open.pop_front();
        }
        self.open.push_back(intro);
    }

    /// The introduction of `id`, taken (a transfer is reported once).
    pub fn take(&mut self, id: TransferId) -> Option<Introduction> {
        let at = self.open.iter().position(|i| i.id == id)?;
        self.open.remove(at)
    }

    /// Who receives the uploads that wait for their report (each name once).
    pub fn audiences(&self) -> Vec<UserName> {
        let mut names: Vec<UserName> = self.open.iter().map(|i| i.audience.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether an upload to `audience` waits for its report.
    pub fn to(&self, audience: &UserName) -> bool {
        self.open.iter().any(|i| &i.audience == audience)
    }

    /// How many wait for their report.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

impl Server {
    /// The connections of users who blocked `user` and are in an upload with it: presenting
    /// to it, or receiving what it presented (`presented`: its uploads' audiences). A block
    /// keeps `user`'s `* OFFLINE` from them, yet their client must hear that its peer left,
    /// or its transfer waits out the idle timeout ("the peer went silent").
    pub(super) fn blockers_in_uploads_with(
        &self,
        user: &UserName,
        presented: &[UserName],
    ) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .blocks
            .blockers_of(user)
            .filter_map(|blocker| self.sessions.find(blocker))
            .filter(|o| {
                presented.contains(&o.user)
                    || self.conns.get(o.conn).is_some_and(|c| c.uploads.to(user))
            })
            .map(|o| o.conn)
            .collect();
        conns.sort();
        conns.dedup();
        conns
    }

    /// The presenter's client says how upload `report.id` ended: narrated once, as the end
    /// of the line its approval began. No reply (the report may come while a request waits
    /// for its own); a report that names no upload of this connection gets a notice.
    pub(super) fn on_upload_report(&mut self, conn: ConnId, user: &UserName, line: &[u8]) {
        let report = parse_report(line);
        let intro = report.and_then(|r| self.conns.get_mut(conn)?.uploads.take(r.id));
        let (Some(report), Some(intro)) = (report, intro) else {
            let text = match report {
                Some(r) => format!(
                    "Transfer report ignored: no upload {} of yours is waiting for one.",
                    r.id
                ),
                None => "Transfer report ignored: write XFR <transfer id> complete|declined|cancelled|failed <bytes>.".to_string(),
            };
            self.send_event(conn, &Event::Notice { text }, None);
            return;
        };
        let Introduction {
            id,
            audience,
            name,
            size,
        } = intro;
        let how = match report.outcome {
            UploadOutcome::Complete => format!("delivered to {audience}, verified"),
            UploadOutcome::Declined => format!("declined by {audience}"),
            UploadOutcome::Cancelled => format!(
                "cancelled after {} of {}",
                human_bytes(report.bytes.min(size)),
                human_bytes(size)
            ),
            UploadOutcome::Failed => format!(
                "failed after {} of {}",
                human_bytes(report.bytes.min(size)),
                human_bytes(size)
            ),
        };
        self.log(format!(
            "{user}'s upload of {name} ({size} bytes) to {audience}, transfer {id}: {how}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intro(n: u64) -> Introduction {
        Introduction {
            id: TransferId(n),
            audience: UserName::new("luke").unwrap(),
            name: "clip.mp4".into(),
            size: n,
        }
    }

    #[test]
    fn a_report_takes_its_introduction_once_and_the_oldest_goes_beyond_the_limit() {
        let mut i = Introductions::default();
        for n in 0..10_000 {
            i.add(intro(n), 64);
        }
        assert_eq!(i.len(), 64);
        assert_eq!(i.take(TransferId(0)), None, "forgotten");
        assert_eq!(i.take(TransferId(9_999)), Some(intro(9_999)));
        assert_eq!(i.take(TransferId(9_999)), None, "reported once");
        let mut none = Introductions::default();
        none.add(intro(1), 0);
        assert_eq!(none.len(), 0);
    }
}
