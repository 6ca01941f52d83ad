//! The user names this client has heard of, and whether each is online: what Tab offers after
//! `PVT`, `BLK`, `UNB` and `UPD` (online first).
//!
//! Learnt from everything that names a user: `* ONLINE` / `* OFFLINE`, the authors of posts
//! (live, caught up, in `RDM`), private messages, uploads, and the lines of `ATU` (online) and
//! `RCU` (online or offline). At most [`ClientConfig::max_known_users`] are kept (offline ones
//! forgotten first). The core hands the list to the UI as [`ClientOutput::Users`] whenever it
//! changes.
//!
//! [`ClientConfig::max_known_users`]: super::ClientConfig::max_known_users
//! [`ClientOutput::Users`]: super::ClientOutput::Users

use std::collections::BTreeMap;

use super::output::KnownUser;
use crate::types::UserName;

/// Whom the client knows of.
#[derive(Debug)]
pub struct KnownUsers {
    users: BTreeMap<UserName, bool>,
    max: usize,
    changed: bool,
}

impl KnownUsers {
    /// Remember at most `max` users.
    pub fn new(max: usize) -> Self {
        Self {
            users: BTreeMap::new(),
            max,
            changed: false,
        }
    }

    /// `user` exists; `online` if that is known (`None`: as before, offline if new).
    pub fn saw(&mut self, user: &UserName, online: Option<bool>) {
        if self.max == 0 {
            return;
        }
        match self.users.get_mut(user) {
            Some(o) => {
                if let Some(now) = online
                    && *o != now
                {
                    *o = now;
                    self.changed = true;
                }
            }
            None => {
                if self.users.len() >= self.max {
                    // Forget an offline user to make room; if all are online, the newcomer
                    // is not kept.
                    let Some(gone) = self
                        .users
                        .iter()
                        .find(|(_, on)| !**on)
                        .map(|(u, _)| u.clone())
                    else {
                        return;
                    };
                    self.users.remove(&gone);
                }
                self.users.insert(user.clone(), online.unwrap_or(false));
                self.changed = true;
            }
        }
    }

    /// Learn from a line of an `ATU` listing: `user, IP, UDP port, active since …`.
    pub fn atu_line(&mut self, line: &str) {
        if let Some(u) = line
            .split_once(", ")
            .and_then(|(u, _)| UserName::new(u).ok())
        {
            self.saw(&u, Some(true));
        }
    }

    /// Learn from a line of an `RCU` listing: `user, last login …, online|offline`.
    pub fn rcu_line(&mut self, line: &str) {
        let Some(u) = line
            .split_once(", ")
            .and_then(|(u, _)| UserName::new(u).ok())
        else {
            return;
        };
        let online = if line.ends_with(", online") {
            Some(true)
        } else if line.ends_with(", offline") {
            Some(false)
        } else {
            None
        };
        self.saw(&u, online);
    }

    /// The list to hand the UI, online first then by name, if it changed since last asked.
    pub fn take_changed(&mut self) -> Option<Vec<KnownUser>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let mut list: Vec<KnownUser> = self
            .users
            .iter()
            .map(|(u, &online)| KnownUser {
                name: u.to_string(),
                online,
            })
            .collect();
        list.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn online_users_come_first_and_a_change_is_handed_once() {
        let mut k = KnownUsers::new(100);
        k.saw(&u("yoda"), None);
        k.atu_line("luke, 127.0.0.1, 6000, active since 01 Dec 2026 07:46:05");
        k.rcu_line("leia, 01 Dec 2026 07:00:00, offline");
        k.rcu_line("han, 01 Dec 2026 07:00:00, online");
        let list = k.take_changed().unwrap();
        let names: Vec<_> = list.iter().map(|k| (k.name.as_str(), k.online)).collect();
        assert_eq!(
            names,
            [
                ("han", true),
                ("luke", true),
                ("leia", false),
                ("yoda", false)
            ]
        );
        assert_eq!(k.take_changed(), None);
        k.saw(&u("luke"), Some(true));
        assert_eq!(k.take_changed(), None, "no change, nothing handed");
        k.saw(&u("luke"), Some(false));
        assert!(k.take_changed().is_some());
        for junk in ["", "no comma", "bad name!, x", ", online"] {
            k.atu_line(junk);
            k.rcu_line(junk);
        }
        assert_eq!(k.take_changed(), None);
    }

    #[test]
    fn at_most_max_are_kept_offline_ones_forgotten_first() {
        let mut k = KnownUsers::new(10);
        k.saw(&u("yoda"), Some(true));
        for n in 0..10_000 {
            k.saw(&u(&format!("user{n}")), None);
        }
        let list = k.take_changed().unwrap();
        assert_eq!(list.len(), 10);
        assert_eq!(list[0].name, "yoda", "the online one stays");
    }
}
