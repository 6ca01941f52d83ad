//! The login dialogue: user name, password (or a new one at sign-up), lockout.

use super::accounts::check_new_password;
use super::lockout::Failure;
use super::sessions::Online;
use super::{ConnId, Phase, Server};
use crate::proto::event::Event;
use crate::proto::reply::{Code, Reply};
use crate::proto::request::Command;
use crate::store::{DataFile, InboxRecord, Persist, render_credential};
use crate::time::{Timestamp, UnixMillis};
use crate::types::UserName;

impl Server {
    pub(super) fn on_login_line(&mut self, conn: ConnId, phase: Phase, line: &[u8]) {
        let Ok(text) = std::str::from_utf8(line) else {
            self.reply(
                conn,
                Reply::new(Code::BAD_LINE, "The line is not valid UTF-8 text"),
            );
            return;
        };
        match phase {
            Phase::AwaitUser => self.on_user_name(conn, text),
            Phase::AwaitPassword(name) => self.on_password(conn, name, text),
            Phase::AwaitNewPassword(name) => self.on_new_password(conn, name, text),
            Phase::LoggedIn(_) | Phase::Closed => {}
        }
    }

    fn set_phase(&mut self, conn: ConnId, phase: Phase) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = phase;
        }
    }

    fn peer(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map(|c| c.peer.to_string())
            .unwrap_or_default()
    }

    fn seconds_left(&self, until: UnixMillis) -> u64 {
        until.millis_since(self.now()).div_ceil(1000).max(1)
    }

    fn refuse_blocked(&mut self, conn: ConnId, name: &UserName, until: UnixMillis) {
        let secs = self.seconds_left(until);
        let peer = self.peer(conn);
        self.log(format!(
            "{peer} tried to log in as {name}, which is blocked for {secs} more s"
        ));
        self.reply(
            conn,
            Reply::new(
                Code::LOCKED_OUT,
                format!(
                    "Your account is blocked due to multiple login failures. Please try again later ({name} is blocked for {secs} more second{}).",
                    if secs == 1 { "" } else { "s" }
                ),
            ),
        );
        self.close(conn);
    }

    fn on_user_name(&mut self, conn: ConnId, text: &str) {
        if let Some(port) = text
            .strip_prefix("UDP ")
            .or_else(|| text.strip_prefix("udp "))
        {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.udp_port = Some(p);
                    }
                    self.reply(
                        conn,
                        Reply::new(
                            Code::new(200).unwrap_or(Code::OK),
                            format!("UDP port {p} noted"),
                        ),
                    );
                }
                _ => self.reply(
                    conn,
                    Reply::new(
                        Code::BAD_ARGUMENTS,
                        "The UDP port must be a number from 1 to 65535. Usage: UDP port",
                    ),
                ),
            }
            return;
        }
        let name = match UserName::new(text) {
            Ok(n) => n,
            Err(e) => {
                self.reply(
                    conn,
                    Reply::new(
                        Code::USER_REFUSED,
                        format!(
                            "{:?} is not a valid user name: {e}. Try again.",
                            truncate(text)
                        ),
                    ),
                );
                return;
            }
        };
        // `Yoda` means the account `yoda`: from here on the name is the account's own.
        let name = self.accounts.canonical(&name).cloned().unwrap_or(name);
        let now = self.now();
        if let Some(until) = self.lockout.blocked_until(&name, now) {
            self.refuse_blocked(conn, &name, until);
            return;
        }
        if self.accounts.is_reserved(&name) {
            let peer = self.peer(conn);
            self.log(format!(
                "{peer} tried user name {name}, reserved: its line in credentials.txt is damaged"
            ));
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!(
                        "The user name {name} cannot be used now: its account record on the server is damaged. Please ask the server's operator to restore it, or try another user name."
                    ),
                ),
            );
        } else if self.accounts.exists(&name) {
            self.reply(
                conn,
                Reply::new(Code::ASK_PASSWORD, format!("Password for {name}:")),
            );
            self.set_phase(conn, Phase::AwaitPassword(name));
        } else if self.config.allow_signup {
            if self.refuse_lookalike(conn, &name) {
                return;
            }
            self.reply(
                conn,
                Reply::new(
                    Code::ASK_NEW_PASSWORD,
                    format!("{name} is a new user name. Choose a password to sign up:"),
                ),
            );
            self.set_phase(conn, Phase::AwaitNewPassword(name));
        } else {
            let peer = self.peer(conn);
            self.log(format!(
                "{peer} tried unknown user name {name} (sign-up is disabled)"
            ));
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!(
                        "Unknown user {name}, and sign-up is disabled on this server. Try again."
                    ),
                ),
            );
        }
    }

    fn on_password(&mut self, conn: ConnId, name: UserName, password: &str) {
        let now = self.now();
        if let Some(until) = self.lockout.blocked_until(&name, now) {
            self.refuse_blocked(conn, &name, until);
            return;
        }
        if !self.accounts.verify(&name, password) {
            let peer = self.peer(conn);
            match self.lockout.fail(&name, now) {
                Failure::Remaining(left) => {
                    self.log(format!(
                        "{peer}: wrong password for {name} ({left} attempt(s) left)"
                    ));
                    self.reply(
                        conn,
                        Reply::new(
                            Code::WRONG_PASSWORD,
                            format!(
                                "Invalid password. Please try again ({left} attempt{} left).",
                                if left == 1 { "" } else { "s" }
                            ),
                        ),
                    );
                }
                Failure::Blocked(until) => {
                    let secs = self.seconds_left(until);
                    self.log(format!(
                        "{peer}: wrong password for {name}; {name} blocked for {secs} s after {} failed attempt(s)",
                        self.config.attempts.get()
                    ));
                    self.reply(
                        conn,
                        Reply::new(
                            Code::LOCKED_OUT,
                            format!(
                                "Invalid password. Your account has been blocked. Please try again later ({name} is blocked for {secs} seconds after {} failed attempt{}).",
                                self.config.attempts.get(),
                                if self.config.attempts.get() == 1 { "" } else { "s" }
                            ),
                        ),
                    );
                    self.close(conn);
                }
            }
            return;
        }
        self.lockout.succeed(&name);
        self.try_login(conn, name);
    }

    fn on_new_password(&mut self, conn: ConnId, name: UserName, password: &str) {
        if let Err(e) = check_new_password(password) {
            self.reply(
                conn,
                Reply::new(
                    Code::NEW_PASSWORD_REFUSED,
                    format!("{e}. Choose another password:"),
                ),
            );
            return;
        }
        if self.accounts.exists(&name) {
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!("{name} was just taken by someone else. Try another user name."),
                ),
            );
            self.set_phase(conn, Phase::AwaitUser);
            return;
        }
        if self.refuse_lookalike(conn, &name) {
            self.set_phase(conn, Phase::AwaitUser);
            return;
        }
        let salt = self.random_bytes::<16>();
        let credential =
            self.accounts
                .create(name.clone(), password, salt, self.config.hash_memory_kib);
        let mut text = render_credential(&credential);
        if std::mem::take(&mut self.credentials_need_newline) {
            text.insert(0, '\n');
        }
        self.persist(Persist::Append {
            file: DataFile::Credentials,
            text: text.into_bytes(),
        });
        let peer = self.peer(conn);
        self.log(format!("{peer} signed up as {name}"));
        self.try_login(conn, name);
    }

    /// Refuse the sign-up of `name` if it could be mistaken for an existing user's name (by
    /// case or by look: TR39 confusable skeletons); returns whether it did.
    fn refuse_lookalike(&mut self, conn: ConnId, name: &UserName) -> bool {
        let Some(existing) = self.accounts.lookalike(name).cloned() else {
            return false;
        };
        let peer = self.peer(conn);
        self.log(format!(
            "{peer}: sign-up as {name} refused: it looks like the existing user {existing}"
        ));
        self.reply(
            conn,
            Reply::new(
                Code::USER_REFUSED,
                format!(
                    "{name} looks too much like the existing user {existing}; a new user name must not be mistakable for another. Try another user name."
                ),
            ),
        );
        true
    }

    /// The password was right: log in unless the name is already online.
    fn try_login(&mut self, conn: ConnId, name: UserName) {
        if let Some(other) = self.sessions.find(&name) {
            let ip = other.ip;
            let peer = self.peer(conn);
            self.log(format!(
                "{peer}: refused second login of {name} (already logged in from {ip})"
            ));
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!("{name} is already logged in (from {ip}); a user can log in only once at a time. Try another user name."),
                ),
            );
            self.set_phase(conn, Phase::AwaitUser);
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (peer, udp_port) = (c.peer, c.udp_port.unwrap_or(0));
        let now = self.now_ts();
        let last_logout = self.logins.last_logout(&name);
        self.sessions.add(Online {
            conn,
            user: name.clone(),
            ip: peer.ip(),
            udp_port,
            since: now,
        });
        self.logins.login(&name, now);
        self.set_phase(conn, Phase::LoggedIn(name.clone()));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.login_deadline = None;
        }

        // Catch-up: private messages first (blocks respected: those stay stored), then posts.
        let blocks = &self.blocks;
        let letters: Vec<InboxRecord> = self
            .inbox
            .take_for(&name, |r| !blocks.blocks(&name, &r.from));
        let posts: Vec<Event> = {
            let since = catch_up_after(last_logout);
            let zone = self.config.zone;
            self.board
                .since(since)
                .filter(|(_, p)| !self.blocks.blocks(&name, &p.author))
                .map(|(number, p)| Event::Post {
                    number,
                    at: zone.civil(p.at),
                    author: p.author.clone(),
                    edited: p.edited,
                    text: p.text.to_string(),
                })
                .collect()
        };

        self.persist_whole(DataFile::Logins);
        self.persist_whole(DataFile::UserLog);
        if !letters.is_empty() {
            self.persist_whole(DataFile::Inbox);
        }
        self.log(format!(
            "{name} logged in from {peer} (UDP port {udp_port}); {} stored private message(s), {} post(s) since last logout",
            letters.len(),
            posts.len()
        ));

        let mut welcome = vec![
            format!("Welcome to huddle, {name}!"),
            "Commands (case-insensitive; timestamps as DD Mon YYYY HH:MM:SS):".to_string(),
        ];
        welcome.extend(
            Command::ALL
                .iter()
                .map(|c| format!("  {:<24} {}", c.usage(), c.summary())),
        );
        self.reply(conn, Reply::lines(Code::LOGGED_IN, welcome));

        let zone = self.config.zone;
        for letter in letters {
            self.event(
                conn,
                &Event::Private {
                    at: zone.civil(letter.at),
                    from: letter.from,
                    text: letter.text.to_string(),
                },
            );
        }
        let limit = self.config.backlog_limit;
        if posts.len() > limit {
            let hidden = (posts.len() - limit) as u32;
            let since = zone.civil(catch_up_after(last_logout).max(Timestamp::from_unix_secs(0)));
            self.event(conn, &Event::Backlog { hidden, since });
        }
        let skip = posts.len().saturating_sub(limit);
        for post in posts.into_iter().skip(skip) {
            self.event(conn, &post);
        }

        let others: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|o| o.conn != conn && !self.blocks.blocks(&o.user, &name))
            .map(|o| o.conn)
            .collect();
        self.broadcast(others, &Event::Online { user: name.clone() });
    }
}

/// Catch-up replays posts strictly later than this: one second before the last logout, since
/// timestamps have whole seconds and a post made in the same second right after the logout
/// must not be missed (one seen live just before it may be shown again; better than a loss).
fn catch_up_after(last_logout: Option<Timestamp>) -> Timestamp {
    match last_logout {
        Some(t) => Timestamp::from_unix_secs(t.unix_secs() - 1),
        None => Timestamp::from_unix_secs(i64::MIN),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
