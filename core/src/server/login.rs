//! The login dialogue: user name, password (or a new one at sign-up), lockout.

use std::collections::VecDeque;

use super::accounts::{check_new_name, check_new_password};
use super::listing::Listing;
use super::lockout::Failure;
use super::passwords::{HashDone, HashJob, HashResult};
use super::sessions::Online;
use super::wording::{count, seconds};
use super::{ConnId, PendingHash, Phase, Server};
use crate::proto::event::Event;
use crate::proto::reply::{Code, Reply};
use crate::proto::starttls::is_starttls;
use crate::store::{Credential, DataFile, Persist, Reason, Secret, render_credential};
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
            Phase::LoggedIn(_) | Phase::Closed | Phase::Hashing => {}
        }
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
        if is_starttls(text.as_bytes()) {
            self.on_starttls(conn);
            return;
        }
        if let Some(port) = text
            .strip_prefix("UDP ")
            .or_else(|| text.strip_prefix("udp "))
        {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.udp_port = Some(p);
                    }
                    self.reply(conn, Reply::new(Code::NOTED, format!("UDP port {p} noted")));
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
        if !self.may_log_in(conn) {
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
        if let Some(why) = self.accounts.reserved(&name) {
            let peer = self.peer(conn);
            let (log, record) = match why {
                Reason::DamagedLine => (
                    "its line in credentials.txt is damaged",
                    "its account record on the server is damaged",
                ),
                Reason::Authored { .. } => (
                    "it wrote posts or has private messages but no line in credentials.txt",
                    "it has posts or private messages on the server but its account record is missing",
                ),
            };
            self.log(format!("{peer} tried user name {name}, reserved: {log}"));
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!(
                        "The user name {name} cannot be used now: {record}. Please ask the server's operator to restore it, or try another user name."
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
            if self.refuse_if_read_only(conn, "a sign-up") {
                return;
            }
            if let Err(e) = check_new_name(&name) {
                let peer = self.peer(conn);
                self.log(format!("{peer}: sign-up as {name} refused: {e}"));
                self.reply(
                    conn,
                    Reply::new(
                        Code::USER_REFUSED,
                        format!("{name} cannot be a new user name: {e}. Try another user name."),
                    ),
                );
                return;
            }
            if self.refuse_lookalike(conn, &name) {
                return;
            }
            if let Err(wait) = self.signup_allowed(conn) {
                self.refuse_signup(conn, &name, wait);
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
        if self.guess_wait(conn, password) {
            return;
        }
        match self.accounts.secret(&name) {
            // An Argon2 hash takes tens of milliseconds: a worker checks it while the server
            // goes on serving everyone else.
            Some(Secret::Hashed(phc)) => {
                let phc = phc.clone();
                let password = password.to_owned();
                self.set_phase(conn, Phase::Hashing);
                self.hash(
                    |id| HashJob::verify(id, password, phc),
                    PendingHash::Login { conn, name },
                );
                self.update_reading(conn);
            }
            Some(Secret::Plain(plain)) => {
                let plain = plain.clone();
                let ok = self.accounts.verify(&name, password);
                if ok {
                    self.rehash_later(&name, plain);
                }
                self.password_checked(conn, name, ok);
            }
            None => self.password_checked(conn, name, false),
        }
    }

    /// The answer to a password, once known.
    fn password_checked(&mut self, conn: ConnId, name: UserName, ok: bool) {
        let now = self.now();
        // Another connection may have locked the name out while the hash was computed.
        if let Some(until) = self.lockout.blocked_until(&name, now) {
            self.refuse_blocked(conn, &name, until);
            return;
        }
        if !ok {
            let peer = self.peer(conn);
            let slowed = self.guess_failed(conn);
            match self.lockout.fail(&name, now) {
                Failure::Remaining(left) => {
                    self.log(format!(
                        "{peer}: wrong password for {name} ({left} attempt(s) left)"
                    ));
                    self.set_phase(conn, Phase::AwaitPassword(name));
                    self.reply(
                        conn,
                        Reply::new(
                            Code::WRONG_PASSWORD,
                            format!(
                                "Invalid password. Please try again ({} left).{slowed}",
                                count(u64::from(left), "attempt")
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
                                "Invalid password. Your account has been blocked. Please try again later ({name} is blocked for {} after {}).",
                                count(secs, "second"),
                                count(u64::from(self.config.attempts.get()), "failed attempt")
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

    /// Whether the address of `conn` may sign up another account now; if not, in how many
    /// milliseconds.
    fn signup_allowed(&mut self, conn: ConnId) -> Result<(), u64> {
        let Some(ip) = self.conns.get(conn).map(|c| c.peer.ip()) else {
            return Ok(());
        };
        if self.admission.is_exempt(ip) {
            return Ok(());
        }
        let now = self.now();
        self.signup_rate.allows(&ip, now)
    }

    fn refuse_signup(&mut self, conn: ConnId, name: &UserName, wait_ms: u64) {
        let peer = self.peer(conn);
        let rule = signup_rule(self.config.signups_per_ip_per_minute);
        let wait = count(wait_ms.div_ceil(1000).max(1), "second");
        self.log(format!(
            "{peer}: sign-up of {name} refused (the limit is {rule}); next one in {wait}"
        ));
        self.set_phase(conn, Phase::AwaitUser);
        self.reply(
            conn,
            Reply::new(
                Code::USER_REFUSED,
                format!(
                    "Too many new accounts from your address ({rule}): {name} was not created. Try again in {wait}, or log in with an existing user name."
                ),
            ),
        );
    }

    fn on_new_password(&mut self, conn: ConnId, name: UserName, password: &str) {
        // An empty line is the way back from a sign-up nobody meant (a mistyped user name):
        // no account, and the name is asked for again.
        if password.is_empty() {
            let peer = self.peer(conn);
            self.log(format!("{peer}: sign-up of {name} cancelled"));
            self.set_phase(conn, Phase::AwaitUser);
            self.reply(
                conn,
                Reply::new(
                    Code::USER_REFUSED,
                    format!("Sign-up of {name} cancelled. Send a user name:"),
                ),
            );
            return;
        }
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
        if self.accounts.exists(&name) || self.signing_up.contains(&name) {
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
        if let Err(wait) = self.signup_allowed(conn) {
            self.refuse_signup(conn, &name, wait);
            return;
        }
        if let Some(ip) = self.conns.get(conn).map(|c| c.peer.ip())
            && !self.admission.is_exempt(ip)
        {
            let now = self.now();
            self.signup_rate.take(&ip, now);
        }
        let salt = self.random_bytes::<16>();
        let memory_kib = self.config.hash_memory_kib;
        let pw = password.to_owned();
        self.signing_up.insert(name.clone());
        self.set_phase(conn, Phase::Hashing);
        self.hash(
            |id| HashJob::derive(id, pw, salt, memory_kib),
            PendingHash::SignUp {
                conn,
                name,
                password: password.to_owned(),
            },
        );
        self.update_reading(conn);
    }

    /// A hash handed to the driver is done.
    pub(super) fn on_hashed(&mut self, done: HashDone) {
        let Some(pending) = self.hashes.remove(&done.id) else {
            return;
        };
        match (pending, done.result) {
            (PendingHash::Login { conn, name }, HashResult::Verified(ok)) => {
                if self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.phase == Phase::Hashing)
                {
                    self.password_checked(conn, name, ok);
                    self.serve_later(conn);
                }
            }
            (
                PendingHash::SignUp {
                    conn,
                    name,
                    password,
                },
                HashResult::Derived(phc),
            ) => {
                self.signing_up.remove(&name);
                if !self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.phase == Phase::Hashing)
                {
                    // Gone before the account existed: nobody was told it does, so it does not.
                    return;
                }
                if self.refuse_if_read_only(conn, "a sign-up") {
                    self.set_phase(conn, Phase::AwaitUser);
                    self.serve_later(conn);
                    return;
                }
                let secret = match phc {
                    Some(h) => Secret::Hashed(h),
                    None => Secret::Plain(password),
                };
                self.accounts.insert(name.clone(), secret.clone());
                let mut text = render_credential(&Credential {
                    name: name.clone(),
                    secret,
                });
                if std::mem::take(&mut self.credentials_need_newline) {
                    text.insert(0, '\n');
                }
                self.credentials_text.extend_from_slice(text.as_bytes());
                self.persist(Persist::Append {
                    file: DataFile::Credentials,
                    text: text.into_bytes(),
                });
                let peer = self.peer(conn);
                self.log(format!("{peer} signed up as {name}"));
                self.try_login(conn, name);
                self.serve_later(conn);
            }
            (PendingHash::Rehash { name, plain }, HashResult::Derived(Some(phc))) => {
                self.rehashed(name, &plain, phc);
            }
            // Hashing failed: the plain password stays, and is rehashed at the next login.
            (PendingHash::Rehash { .. }, _) => {}
            (PendingHash::Login { conn, .. } | PendingHash::SignUp { conn, .. }, _) => {
                // A result of the wrong kind: a driver bug. Start the dialogue again.
                self.set_phase(conn, Phase::AwaitUser);
                self.reply(
                    conn,
                    Reply::new(Code::USER_REFUSED, "Something went wrong. Try again."),
                );
                self.serve_later(conn);
            }
        }
    }

    /// Refuse the sign-up of `name` if it could be mistaken for an existing user's name (by
    /// case or by look: TR39 confusable skeletons); returns whether it did.
    fn refuse_lookalike(&mut self, conn: ConnId, name: &UserName) -> bool {
        // Names whose sign-up is still hashing count too, so two look-alike sign-ups at once
        // leave one account.
        let key = name.lookalike_key();
        let existing = self.accounts.lookalike(name).cloned().or_else(|| {
            self.signing_up
                .iter()
                .find(|n| n.lookalike_key() == key)
                .cloned()
        });
        let Some(existing) = existing else {
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
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let (peer, udp_port, tls) = (c.peer, c.udp_port.unwrap_or(0), c.link.is_tls());
        c.login_deadline = None;
        c.phase = Phase::LoggedIn(name.clone());
        if std::mem::take(&mut c.pending_admission) {
            self.admission.left(peer.ip());
        }
        let now = self.now_ts();
        let last_logout = self.logins.last_logout(&name);
        self.sessions.add(Online {
            conn,
            user: name.clone(),
            ip: peer.ip(),
            udp_port,
            since: now,
            tls,
        });
        self.logins.login(&name, now);

        // Catch-up: private messages first (blocks respected: those stay stored), then the
        // latest posts since the last logout. Only their places are kept; the lines are
        // rendered as the connection's output drains.
        let blocks = &self.blocks;
        let letters = self
            .inbox
            .for_user(&name, |r| !blocks.blocks(&name, &r.from));
        let since = catch_up_after(last_logout);
        let limit = self.config.backlog_limit;
        let mut posts: VecDeque<usize> = VecDeque::new();
        let mut total = 0usize;
        for (number, p) in self.board.since(since) {
            // Blocked users' posts are not shown, and your own are not news to you.
            if self.blocks.blocks(&name, &p.author) || p.author == name {
                continue;
            }
            total += 1;
            if posts.len() == limit {
                posts.pop_front();
            }
            if limit > 0 {
                posts.push_back(number.index());
            }
        }
        let zone = self.config.zone;
        let backlog = (total > posts.len()).then(|| Event::Backlog {
            hidden: u32::try_from(total - posts.len()).unwrap_or(u32::MAX),
            since: zone.civil(since.max(Timestamp::from_unix_secs(0))),
        });

        self.persist_whole(DataFile::Logins);
        self.persist_whole(DataFile::UserLog);
        self.log(format!(
            "{name} logged in from {peer} {} (UDP port {udp_port}); {} stored private message(s), {total} post(s) since last logout",
            if tls { "over TLS" } else { "in clear" },
            letters.len(),
        ));

        let mut welcome = vec![
            crate::proto::reply::welcome_line(&name),
            crate::proto::request::HELP_HEADER.to_string(),
        ];
        welcome.extend(crate::proto::request::help_rows());
        if let Some(away) = away_line(letters.len(), posts.len(), total) {
            welcome.push(away);
        }
        self.reply(conn, Reply::lines(Code::LOGGED_IN, welcome));
        self.start_keepalive(conn);
        self.broadcast(Some(conn), &name, &Event::Online { user: name.clone() });
        if !letters.is_empty() || backlog.is_some() || !posts.is_empty() {
            self.start_listing(
                conn,
                Listing::CatchUp {
                    letters: letters.into(),
                    backlog,
                    posts,
                    deleted: Vec::new(),
                },
            );
        }
    }
}

/// What the sign-up limit of one address is, in words: its bucket holds `per_minute` sign-ups
/// and gains one every `60 / per_minute` seconds (`a burst of 5, then one every 12 seconds`).
fn signup_rule(per_minute: u32) -> String {
    format!(
        "a burst of {per_minute}, then one every {}",
        seconds(60_000 / u64::from(per_minute.max(1)))
    )
}

/// The welcome's last line when a catch-up follows it: the header of what the user missed,
/// with how many lines of it come (so a client knows where it ends).
fn away_line(letters: usize, shown: usize, total: usize) -> Option<String> {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let posts = if total > shown {
        format!("the latest {} of {total}", plural(shown, "post"))
    } else {
        plural(shown, "post")
    };
    match (letters, shown) {
        (0, 0) => None,
        (0, _) => Some(format!("While you were away: {posts}.")),
        (_, 0) => Some(format!(
            "While you were away: {}.",
            plural(letters, "private message")
        )),
        _ => Some(format!(
            "While you were away: {} and {posts}.",
            plural(letters, "private message")
        )),
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
