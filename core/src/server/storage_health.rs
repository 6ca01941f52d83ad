//! What the server does when its data folder cannot be written: a full disk or a read-only
//! mount is a refusal, not a crash.
//!
//! # The rules
//! - **Nothing unstored is acknowledged.** A batch's replies wait for its records (see the
//!   module docs of `server`); when the driver cannot make them durable it drops every
//!   output after them and hands in [`Input::StoreFailed`] naming the connections those
//!   outputs were for. Each is told `421` with the reason (if in clear) and closed: its last
//!   answers are missing (a reply or an event, the core cannot tell which), so the only
//!   honest thing is to end the conversation and let the client reconnect. An upgraded (TLS) connection is cut: records sealed for it were dropped, so
//!   nothing more could be opened by its peer.
//! - **What is on disk is the truth.** The core rebuilds its accounts, board, inbox, blocks
//!   and logins from the folder as re-read after the failure (a torn last line of a partial
//!   append is moved to `<file>.rejected` as at any start), so a change that was not stored
//!   is not shown to anyone either.
//! - **Read-only mode.** From then on changes (`MSG`, `EDT`, `DLT`, `PVT`, `BLK`, `UNB`,
//!   sign-ups) are refused up front with `452`; reads and logins of existing users go on.
//!   Records that may wait (`logins.txt`, `userlog.txt`, a rehashed password) are not
//!   written but remembered as files to rewrite whole.
//! - **Recovery by itself.** Every [`ServerConfig::store_probe_millis`] the core hands the
//!   driver a probe ([`Server::poll_probe`]): the remembered files rendered whole (or,
//!   with none, `userlog.txt`, which is harmless to rewrite). When the driver reports it
//!   durable ([`Input::Probed`]) read-only mode ends and changes are accepted again.
//! - Entering and leaving read-only mode is narrated once each; a failed probe is not.
//! - `credentials.txt` is only ever rewritten from the core's copy of its bytes (never from
//!   an empty render).
//!
//! [`Input::StoreFailed`]: super::Input::StoreFailed
//! [`Input::Probed`]: super::Input::Probed
//! [`ServerConfig::store_probe_millis`]: super::ServerConfig::store_probe_millis

use std::collections::BTreeSet;

use super::{ConnId, Server};
use crate::proto::reply::{Code, Reply};
use crate::store::{DataFile, DataFiles, Persist};
use crate::time::UnixMillis;

/// Whether the data folder can be written, and what waits to be written if not.
#[derive(Debug, Default)]
pub(super) struct StorageHealth {
    /// `Some` while read-only.
    read_only: Option<ReadOnly>,
}

/// The state of read-only mode.
#[derive(Debug)]
struct ReadOnly {
    /// The first failure, as the driver put it.
    reason: String,
    /// When to hand out the next probe.
    next_probe: UnixMillis,
    /// Files to rewrite whole once writes work again.
    files: BTreeSet<DataFile>,
    /// Side records (rejected lines, backups) to write before them.
    side: Vec<Persist>,
}

impl StorageHealth {
    /// Whether changes are refused now.
    pub(super) fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// When the next probe is due, if read-only.
    pub(super) fn next_probe(&self) -> Option<UnixMillis> {
        self.read_only.as_ref().map(|r| r.next_probe)
    }

    /// While read-only, keep `record` for later instead of handing it out. Returns the
    /// record back if writes work.
    fn defer(&mut self, record: Persist) -> Option<Persist> {
        let Some(r) = &mut self.read_only else {
            return Some(record);
        };
        match record {
            Persist::Append { file, .. } | Persist::Replace { file, .. } => {
                r.files.insert(file);
            }
            side @ (Persist::Reject { .. } | Persist::Backup { .. }) => r.side.push(side),
        }
        None
    }
}

/// The text of the refusal of a change while read-only.
pub(super) fn cannot_store(reason: &str) -> Reply {
    Reply::new(
        Code::CANNOT_STORE,
        format!(
            "The server cannot store this now ({reason}); nothing was changed. Reading works; try again later."
        ),
    )
}

/// The last line for a connection whose answers were dropped with a failed write: `421`,
/// since it may be a reply to a request or an event nobody asked for, and it ends the
/// connection (clients say why on a line of their own).
fn closing(reason: &str) -> Reply {
    Reply::new(
        Code::CLOSING,
        format!(
            "The server cannot store changes now ({reason}); what you sent last was not carried out. Log in again: reading works, changes are refused until the disk can be written."
        ),
    )
}

impl Server {
    /// The reason changes are refused, if they are.
    pub(super) fn read_only_reason(&self) -> Option<&str> {
        self.health.read_only.as_ref().map(|r| r.reason.as_str())
    }

    /// Refuse a change up front while read-only: answers `conn` and returns `true` if so.
    pub(super) fn refuse_if_read_only(&mut self, conn: ConnId, what: &str) -> bool {
        let Some(reason) = self.read_only_reason().map(str::to_owned) else {
            return false;
        };
        let peer = self.peer(conn);
        self.log(format!(
            "{peer}: refused {what}: the data folder is read-only"
        ));
        self.reply(conn, cannot_store(&reason));
        true
    }

    /// While read-only, move the batch's records into what waits for the probe.
    pub(super) fn defer_persists(&mut self) {
        if !self.health.is_read_only() {
            return;
        }
        while let Some(p) = self.persists.pop_front() {
            let _kept = self.health.defer(p);
        }
    }

    /// [`super::Input::StoreFailed`].
    pub(super) fn on_store_failed(
        &mut self,
        error: String,
        mut dropped: Vec<ConnId>,
        files: Option<&DataFiles>,
    ) {
        let now = self.now();
        let first = !self.health.is_read_only();
        if first {
            self.log(format!(
                "cannot write the data folder: {error}; read-only until it can be written: changes are refused (452), reading goes on; trying again every {} s",
                self.config.store_probe_millis.div_ceil(1000)
            ));
            self.health.read_only = Some(ReadOnly {
                reason: error.clone(),
                next_probe: now.plus_millis(self.config.store_probe_millis),
                files: BTreeSet::new(),
                side: Vec::new(),
            });
        }
        // Whatever this batch wanted written is rewritten whole later, from the state then.
        self.persists.clear();
        if let Some(files) = files {
            self.reload(files);
        } else {
            self.log("cannot re-read the data folder: the state in memory is kept".into());
        }
        for file in DataFile::ALL {
            if file != DataFile::Credentials {
                let _kept = self.health.defer(Persist::Replace {
                    file,
                    text: Vec::new(),
                });
            }
        }
        dropped.sort();
        dropped.dedup();
        for conn in dropped {
            let Some(c) = self.conns.get(conn) else {
                continue;
            };
            if c.link.is_tls() {
                self.cut(
                    conn,
                    format!("{}: cut: its last answers were not stored", c.peer),
                );
            } else {
                self.reply(conn, closing(&error));
                self.close(conn);
            }
        }
    }

    /// Rebuild the stored state from the folder as it is on disk; the session state
    /// (connections, logins, limits) stays.
    fn reload(&mut self, files: &DataFiles) {
        let mut config = self.config.clone();
        config.on_damage = super::OnDamage::Repair;
        let now = self.now();
        let mut fresh = match Server::new(config, files, now) {
            Ok(s) => s,
            Err(e) => {
                self.log(format!(
                    "cannot reload the data folder ({e}): the state in memory is kept"
                ));
                return;
            }
        };
        self.accounts = std::mem::take(&mut fresh.accounts);
        self.board = std::mem::take(&mut fresh.board);
        // Letters in flight keep ids the new inbox never gives out again: a delivery
        // reported for one of them finds nothing and the letter is delivered again later.
        self.inbox = std::mem::take(&mut fresh.inbox).renumbered_after(&self.inbox);
        self.blocks = std::mem::take(&mut fresh.blocks);
        self.logins = std::mem::take(&mut fresh.logins);
        self.credentials_text = std::mem::take(&mut fresh.credentials_text);
        self.credentials_need_newline = fresh.credentials_need_newline;
        for record in fresh.persists.drain(..) {
            let _kept = self.health.defer(record);
        }
    }

    /// The records to try now, if read-only and a probe is due: hand them to the data
    /// folder and report how it went with [`super::Input::Probed`] before anything else.
    pub fn poll_probe(&mut self, now: UnixMillis) -> Option<Vec<Persist>> {
        let due = self.health.next_probe()?;
        if now < due {
            return None;
        }
        let r = self.health.read_only.as_ref()?;
        let mut records = r.side.clone();
        let mut files = r.files.clone();
        if files.is_empty() {
            files.insert(DataFile::UserLog);
        }
        for file in files {
            let text = match file {
                DataFile::Credentials => self.credentials_text.clone(),
                _ => self.render_bytes(file),
            };
            records.push(Persist::Replace { file, text });
        }
        Some(records)
    }

    /// [`super::Input::Probed`].
    pub(super) fn on_probed(&mut self, error: Option<String>) {
        let now = self.now();
        match error {
            None => {
                if let Some(r) = self.health.read_only.take() {
                    self.log(format!(
                        "the data folder can be written again (it could not: {}); changes are accepted",
                        r.reason
                    ));
                }
            }
            Some(_) => {
                if let Some(r) = &mut self.health.read_only {
                    r.next_probe = now.plus_millis(self.config.store_probe_millis);
                }
            }
        }
    }
}
