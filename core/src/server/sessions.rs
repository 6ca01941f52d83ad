//! Who is online, in login order: the source of `userlog.txt` and `ATU`.

use std::net::IpAddr;

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
}

/// The online users in login order.
#[derive(Debug, Default)]
pub struct Sessions {
    online: Vec<Online>,
}

impl Sessions {
    /// Add a user who just logged in.
    pub fn add(&mut self, online: Online) {
        self.online.push(online);
    }

    /// Remove the user of `conn`, if logged in.
    pub fn remove(&mut self, conn: ConnId) -> Option<Online> {
        let idx = self.online.iter().position(|o| o.conn == conn)?;
        Some(self.online.remove(idx))
    }

    /// The session of `user`, if online.
    pub fn find(&self, user: &UserName) -> Option<&Online> {
        self.online.iter().find(|o| &o.user == user)
    }

    /// Every online user in login order.
    pub fn iter(&self) -> impl Iterator<Item = &Online> {
        self.online.iter()
    }

    /// How many are online.
    pub fn len(&self) -> usize {
        self.online.len()
    }

    /// The whole `userlog.txt`, numbered 1..n in login order.
    pub fn render(&self, zone: Zone) -> String {
        self.online
            .iter()
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
