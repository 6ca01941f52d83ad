//! Who is online, in login order: the source of `userlog.txt` and `ATU`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

use super::output::ConnId;
use crate::store::{ActiveRecord, render_active};
use crate::time::{Timestamp, Zone};
use crate::types::UserName;

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    /// Their connection.
    pub conn: ConnId,
    /// Who.
    pub user: UserName,
    /// Their client's address as the server sees it.
    pub ip: IpAddr,
    /// Where their client receives uploads (0 if it declared none).
    pub udp_port: u16,
    /// When they logged in.
    pub since: Timestamp,
    /// Whether their connection is encrypted (each gets its own TLS records of an event).
    pub tls: bool,
}

/// Where a listing of the online users stopped: the login sequence number of the last user
/// listed. Users who log out meanwhile are simply not reached; later logins are.
pub type SessionCursor = u64;

/// The online users in login order, found by name or connection in `O(log n)`.
#[derive(Debug, Default)]
pub struct Sessions {
    by_seq: BTreeMap<u64, Online>,
    by_user: HashMap<UserName, u64>,
    by_conn: HashMap<ConnId, u64>,
    next_seq: u64,
    /// Every online connection in clear, shared with fan-out outputs until the set changes.
    clear: Option<Arc<[ConnId]>>,
    /// Every online connection over TLS, likewise.
    tls: Option<Arc<[ConnId]>>,
}

impl Sessions {
    /// Add a user who just logged in.
    pub fn add(&mut self, online: Online) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_user.insert(online.user.clone(), seq);
        self.by_conn.insert(online.conn, seq);
        self.by_seq.insert(seq, online);
        self.forget_lists();
    }

    fn forget_lists(&mut self) {
        self.clear = None;
        self.tls = None;
    }

    /// Remove the user of `conn`, if logged in.
    pub fn remove(&mut self, conn: ConnId) -> Option<Online> {
        let seq = self.by_conn.remove(&conn)?;
        let online = self.by_seq.remove(&seq)?;
        self.by_user.remove(&online.user);
        self.forget_lists();
        Some(online)
    }

    /// The session of `user`, if online.
    pub fn find(&self, user: &UserName) -> Option<&Online> {
        self.by_user.get(user).and_then(|s| self.by_seq.get(s))
    }

    /// The session on `conn`, if logged in.
    pub fn on(&self, conn: ConnId) -> Option<&Online> {
        self.by_conn.get(&conn).and_then(|s| self.by_seq.get(s))
    }

    /// Every online user in login order.
    pub fn iter(&self) -> impl Iterator<Item = &Online> {
        self.by_seq.values()
    }

    /// The users logged in after `after` (all of them for `None`), in login order, with the
    /// cursor to continue from.
    pub fn after(
        &self,
        after: Option<SessionCursor>,
    ) -> impl Iterator<Item = (SessionCursor, &Online)> {
        let from = match after {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        self.by_seq
            .range((from, Bound::Unbounded))
            .map(|(s, o)| (*s, o))
    }

    /// Every online connection in clear (`tls == false`) or over TLS, in login order;
    /// shared until someone logs in or out.
    pub fn conns(&mut self, tls: bool) -> Arc<[ConnId]> {
        let slot = if tls { &mut self.tls } else { &mut self.clear };
        if let Some(c) = slot {
            return Arc::clone(c);
        }
        let list: Arc<[ConnId]> = self
            .by_seq
            .values()
            .filter(|o| o.tls == tls)
            .map(|o| o.conn)
            .collect();
        *slot = Some(Arc::clone(&list));
        list
    }

    /// How many are online.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// The whole `userlog.txt`, numbered 1..n in login order.
    pub fn render(&self, zone: Zone) -> String {
        self.by_seq
            .values()
            .enumerate()
            .map(|(i, o)| {
                render_active(
                    &ActiveRecord {
                        number: i as u32 + 1,
                        since: o.since,
                        user: o.user.clone(),
                        ip: o.ip,
                        udp_port: o.udp_port,
                    },
                    zone,
                )
            })
            .collect()
    }
}
