//! Last login and logout of every user: for `RCU` and for catching up at login.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{LoginRecord, render_login};
use crate::time::{Timestamp, Zone};
use crate::types::UserName;

/// Where an `RCU` listing stopped: the last (login time, user) listed.
pub type LoginCursor = (Timestamp, UserName);

/// Login history, one record per user, also indexed by login time so `RCU` can list a window
/// a few lines at a time.
#[derive(Debug, Default)]
pub struct Logins {
    records: BTreeMap<UserName, LoginRecord>,
    by_login: BTreeMap<Timestamp, BTreeSet<UserName>>,
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
            .collect::<BTreeMap<_, _>>();
        let mut logins = Self {
            records,
            by_login: BTreeMap::new(),
        };
        let keys: Vec<(Timestamp, UserName)> = logins
            .records
            .values()
            .map(|r| (r.login, r.user.clone()))
            .collect();
        for (at, user) in keys {
            logins.by_login.entry(at).or_default().insert(user);
        }
        logins
    }

    /// Record a login.
    pub fn login(&mut self, user: &UserName, at: Timestamp) {
        if let Some(r) = self.records.get(user)
            && let Some(set) = self.by_login.get_mut(&r.login)
        {
            set.remove(user);
            if set.is_empty() {
                self.by_login.remove(&r.login);
            }
        }
        self.by_login.entry(at).or_default().insert(user.clone());
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

    /// Users whose last login is at or after `since`, earliest first (ties by name), after
    /// `cursor` if given, with the cursor to continue from.
    pub fn logged_in_since(
        &self,
        since: Timestamp,
        cursor: Option<&LoginCursor>,
    ) -> impl Iterator<Item = (LoginCursor, &LoginRecord)> {
        let start = cursor.map_or(since, |c| c.0.max(since));
        let after = cursor.cloned();
        self.by_login
            .range(start..)
            .flat_map(|(at, users)| users.iter().map(move |u| (*at, u)))
            .filter(move |(at, u)| match &after {
                Some((cat, cu)) => (at, *u) > (cat, cu),
                None => true,
            })
            .filter_map(|(at, u)| self.records.get(u).map(|r| ((at, u.clone()), r)))
    }

    /// The whole `logins.txt`.
    pub fn render(&self, zone: Zone) -> String {
        self.records
            .values()
            .map(|r| render_login(r, zone))
            .collect()
    }
}
