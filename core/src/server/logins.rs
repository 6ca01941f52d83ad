//! Last login and logout of every user: for `RCU` and for catching up at login.

use std::collections::BTreeMap;

use crate::store::{LoginRecord, render_login};
use crate::time::{Timestamp, Zone};
use crate::types::UserName;

/// Login history, one record per user.
#[derive(Debug, Default)]
pub struct Logins {
    records: BTreeMap<UserName, LoginRecord>,
}

impl Logins {
    /// Restored from `logins.txt`.
    ///
    /// A user whose last login is later than their last logout was online when the server
    /// stopped; their logout is taken to be that login, so nothing posted since is skipped.
    pub fn new(records: Vec<LoginRecord>) -> Self {
        let records = records
            .into_iter()
            .map(|mut r| {
                if r.logout.is_none_or(|out| out < r.login) {
                    r.logout = Some(r.login);
                }
                (r.user.clone(), r)
            })
            .collect();
        Self { records }
    }

    /// Record a login.
    pub fn login(&mut self, user: &UserName, at: Timestamp) {
        self.records
            .entry(user.clone())
            .and_modify(|r| r.login = at)
            .or_insert(LoginRecord {
                user: user.clone(),
                login: at,
                logout: None,
            });
    }

    /// Record a logout.
    pub fn logout(&mut self, user: &UserName, at: Timestamp) {
        if let Some(r) = self.records.get_mut(user) {
            r.logout = Some(at);
        }
    }

    /// `user`'s last logout.
    pub fn last_logout(&self, user: &UserName) -> Option<Timestamp> {
        self.records.get(user).and_then(|r| r.logout)
    }

    /// Users whose last login is at or after `since`, earliest first.
    pub fn logged_in_since(&self, since: Timestamp) -> Vec<&LoginRecord> {
        let mut v: Vec<_> = self.records.values().filter(|r| r.login >= since).collect();
        v.sort_by(|a, b| a.login.cmp(&b.login).then(a.user.cmp(&b.user)));
        v
    }

    /// The whole `logins.txt`.
    pub fn render(&self, zone: Zone) -> String {
        self.records
            .values()
            .map(|r| render_login(r, zone))
            .collect()
    }
}
