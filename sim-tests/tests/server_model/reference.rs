//! The reference model: what the server should do, as plainly as it can be said.
//!
//! Four users have accounts from the start, a fifth (`eve`) can sign up, and one name never
//! has an account. The model keeps the accounts, who is online, the failure counts and blocks
//! of the lockout, the board, the stored private messages, the block relation and the last
//! logouts; time moves only by [`Transition::Tick`], and [`Transition::Restart`] crashes the
//! server and starts it again from what it persisted. Applying a
//! transition also records what the server must answer ([`Expect`]): the reply codes the
//! acting connection gets, the events each online user is pushed, an `RDM` listing.

use std::collections::{BTreeMap, BTreeSet};

use huddle_core::time::{Timestamp, Zone};
use proptest::prelude::*;
use proptest_state_machine::ReferenceStateMachine;

/// The users, by index; the last one has no account until she signs up.
pub const USERS: [&str; 5] = ["ann", "bob", "cat", "dan", "eve"];
/// How many users have an account from the start.
pub const PRELOADED: usize = 4;
/// The number of users.
pub const N: usize = USERS.len();
/// A well-formed name without an account.
pub const NOBODY: &str = "zed";
/// Milliseconds since the epoch when every case starts (a whole second).
pub const T0: u64 = 1_795_300_000_000;
/// How long a lockout lasts.
pub const BLOCK_MS: u64 = 10_000;
/// How long a connection may take to log in.
pub const LOGIN_TIMEOUT_MS: u64 = 60 * 1000;
/// Posts replayed at login before older ones are summarised (small, to reach it).
pub const BACKLOG: usize = 3;

/// The password of user `u`.
pub fn password(u: usize) -> String {
    format!("pw-{}", USERS[u])
}

/// One step a user (or the clock) takes.
#[derive(Debug, Clone)]
pub enum Transition {
    /// A new connection sends the user name, then the right or a wrong password (for a new
    /// name: an acceptable or an unacceptable new password).
    Login { user: usize, right: bool },
    /// `OUT`.
    Logout { user: usize },
    /// The connection breaks without `OUT`.
    Drop { user: usize },
    /// A new connection sends the user name and then nothing: the login timeout closes it.
    Stall { user: usize },
    /// `MSG text`.
    Msg { user: usize, text: String },
    /// `EDT number timestamp text`, the timestamp in Unix seconds.
    Edt {
        user: usize,
        number: u32,
        at: i64,
        text: String,
    },
    /// `DLT number timestamp`.
    Dlt { user: usize, number: u32, at: i64 },
    /// `PVT to text`.
    Pvt {
        user: usize,
        to: String,
        text: String,
    },
    /// `BLK target`.
    Blk { user: usize, target: String },
    /// `UNB target`.
    Unb { user: usize, target: String },
    /// `RDM since`, in Unix seconds.
    Rdm { user: usize, since: i64 },
    /// `ATU`.
    Atu { user: usize },
    /// `RCU [minutes]`.
    Rcu { user: usize, minutes: Option<u32> },
    /// Time passes.
    Tick { ms: u64 },
    /// The server crashes and starts again from its data folder.
    Restart,
    /// The server stops gracefully (logging everyone out) and starts again.
    Shutdown,
}

impl Transition {
    /// The user acting, if any.
    pub fn user(&self) -> Option<usize> {
        match self {
            Transition::Tick { .. } | Transition::Restart | Transition::Shutdown => None,
            Transition::Login { user, .. }
            | Transition::Stall { user }
            | Transition::Logout { user }
            | Transition::Drop { user }
            | Transition::Msg { user, .. }
            | Transition::Edt { user, .. }
            | Transition::Dlt { user, .. }
            | Transition::Pvt { user, .. }
            | Transition::Blk { user, .. }
            | Transition::Unb { user, .. }
            | Transition::Rdm { user, .. }
            | Transition::Atu { user }
            | Transition::Rcu { user, .. } => Some(*user),
        }
    }
}

/// An event as the model predicts it (timestamps in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Post {
        number: u32,
        id: u64,
        at: i64,
        author: String,
        edited: bool,
        text: String,
    },
    Edit {
        number: u32,
        id: u64,
        at: i64,
        author: String,
        text: String,
    },
    Delete {
        number: u32,
        id: u64,
        author: String,
    },
    Pvt {
        at: i64,
        from: String,
        text: String,
    },
    Backlog {
        hidden: u32,
    },
    Online(String),
    Offline(String),
}

/// What the server must answer to the last transition.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Reply codes on the acting connection, after its greeting.
    pub codes: Vec<u16>,
    /// Events pushed to each user, in order (users absent get none).
    pub events: BTreeMap<usize, Vec<Ev>>,
    /// For `RDM`: the listed posts; for `ATU` and `RCU`: every line of the reply.
    pub listing: Option<Vec<String>>,
    /// Stalled connections (by when they were opened) the login timeout closes now, with a
    /// `421` — or that a stop closes.
    pub timed_out: Vec<u64>,
    /// Users a stop told it is stopping (each with a `421`).
    pub stopped: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Its stable id: 1, 2, … in posting order, never given twice, kept across restarts.
    pub id: u64,
    pub author: String,
    pub text: String,
    pub at: i64,
    pub edited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub to: String,
    pub from: String,
    pub text: String,
    pub at: i64,
    /// Sent on the recipient's current connection: it stays stored until that connection
    /// ends with it delivered (then it is gone), or the server stops first (then it is
    /// delivered again at the next login).
    pub carried: bool,
}

/// The whole model.
#[derive(Debug, Clone)]
pub struct RefState {
    pub attempts: u8,
    pub now_ms: u64,
    pub accounts: [bool; N],
    /// Who is online, in login order (the order of `ATU` and `userlog.txt`).
    pub online: Vec<usize>,
    pub failures: [u8; N],
    pub blocked_until: [Option<u64>; N],
    pub posts: Vec<Post>,
    /// The id the next post gets.
    pub next_id: u64,
    pub inbox: Vec<Letter>,
    pub blocks: BTreeSet<(String, String)>,
    /// Connections waiting at the password prompt, by when they were opened (ms).
    pub stalled: Vec<u64>,
    pub last_login: [Option<i64>; N],
    pub last_logout: [Option<i64>; N],
    pub expect: Expect,
}

impl RefState {
    pub fn now_sec(&self) -> i64 {
        (self.now_ms / 1000) as i64
    }

    fn blocks(&self, blocker: &str, blocked: &str) -> bool {
        self.blocks
            .contains(&(blocker.to_string(), blocked.to_string()))
    }

    fn exists(&self, name: &str) -> bool {
        USERS
            .iter()
            .position(|u| *u == name)
            .is_some_and(|i| self.accounts[i])
    }

    fn push(&mut self, to: usize, ev: Ev) {
        self.expect.events.entry(to).or_default().push(ev);
    }

    /// Online users other than `author` who do not block `author`.
    fn audience(&self, author: usize) -> Vec<usize> {
        self.online
            .iter()
            .copied()
            .filter(|&u| u != author && !self.blocks(USERS[u], USERS[author]))
            .collect()
    }

    fn is_locked(&mut self, user: usize) -> bool {
        match self.blocked_until[user] {
            Some(until) if self.now_ms < until => true,
            Some(_) => {
                self.blocked_until[user] = None;
                self.failures[user] = 0;
                false
            }
            None => false,
        }
    }

    fn leave(&mut self, user: usize) {
        self.online.retain(|&u| u != user);
        self.last_logout[user] = Some(self.now_sec());
        let name = USERS[user];
        for o in self.online.clone() {
            if !self.blocks(USERS[o], name) {
                self.push(o, Ev::Offline(name.into()));
            }
        }
    }

    /// `user`'s connection ended with everything on it delivered: the private messages it
    /// carried are gone from the inbox.
    fn delivered(&mut self, user: usize) {
        let name = USERS[user];
        self.inbox.retain(|l| !(l.carried && l.to == name));
    }

    /// The server stopped: what connections carried was not confirmed delivered.
    fn uncarry(&mut self) {
        for l in self.inbox.iter_mut() {
            l.carried = false;
        }
    }

    fn login(&mut self, user: usize, right: bool) {
        if self.is_locked(user) {
            self.expect.codes.push(435);
            return;
        }
        if !self.accounts[user] {
            self.expect.codes.push(333);
            if !right {
                self.expect.codes.push(433);
                return;
            }
            self.accounts[user] = true;
            self.enter(user);
            return;
        }
        self.expect.codes.push(332);
        if !right {
            self.failures[user] += 1;
            if self.failures[user] >= self.attempts {
                self.failures[user] = 0;
                self.blocked_until[user] = Some(self.now_ms + BLOCK_MS);
                self.expect.codes.push(435);
            } else {
                self.expect.codes.push(432);
            }
            return;
        }
        self.failures[user] = 0;
        self.blocked_until[user] = None;
        if self.online.contains(&user) {
            self.expect.codes.push(431);
            return;
        }
        self.enter(user);
    }

    /// A successful login: the welcome, the catch-up, the news to the others.
    fn enter(&mut self, user: usize) {
        self.expect.codes.push(230);
        self.last_login[user] = Some(self.now_sec());
        let name = USERS[user];
        let mine: Vec<Letter> = self
            .inbox
            .iter()
            .filter(|l| l.to == name && !self.blocks(name, &l.from))
            .cloned()
            .collect();
        for l in self.inbox.iter_mut() {
            if l.to == name && !self.blocks.contains(&(name.to_string(), l.from.clone())) {
                l.carried = true;
            }
        }
        for l in mine {
            self.push(
                user,
                Ev::Pvt {
                    at: l.at,
                    from: l.from,
                    text: l.text,
                },
            );
        }
        // Posts of the logout's own second are replayed too: timestamps have whole seconds,
        // and one made right after the logout in that second must not be missed.
        let since = self.last_logout[user].unwrap_or(i64::MIN);
        let posts: Vec<Ev> = self
            .posts
            .iter()
            .enumerate()
            // Your own posts are not news to you.
            .filter(|(_, p)| p.at >= since && !self.blocks(name, &p.author) && p.author != name)
            .map(|(i, p)| Ev::Post {
                number: i as u32 + 1,
                id: p.id,
                at: p.at,
                author: p.author.clone(),
                edited: p.edited,
                text: p.text.clone(),
            })
            .collect();
        if posts.len() > BACKLOG {
            let hidden = (posts.len() - BACKLOG) as u32;
            self.push(user, Ev::Backlog { hidden });
        }
        let skip = posts.len().saturating_sub(BACKLOG);
        for p in posts.into_iter().skip(skip) {
            self.push(user, p);
        }
        for o in self.online.clone() {
            if !self.blocks(USERS[o], name) {
                self.push(o, Ev::Online(name.into()));
            }
        }
        self.online.push(user);
    }

    /// The code for `EDT`/`DLT` of post `number` claimed at `at` by `user`.
    fn own(&self, user: usize, number: u32, at: i64) -> u16 {
        match self.posts.get(number as usize - 1) {
            None => 550,
            Some(p) if p.author != USERS[user] => 553,
            Some(p) if p.at != at => 551,
            Some(_) => 250,
        }
    }

    fn step(&mut self, t: &Transition) {
        self.expect = Expect::default();
        let now = self.now_sec();
        match t.clone() {
            Transition::Tick { ms } => {
                self.now_ms += ms;
                let now = self.now_ms;
                let (gone, kept) = std::mem::take(&mut self.stalled)
                    .into_iter()
                    .partition(|&opened| opened + LOGIN_TIMEOUT_MS <= now);
                self.stalled = kept;
                self.expect.timed_out = gone;
            }
            Transition::Stall { user } => {
                if self.is_locked(user) {
                    self.expect.codes.push(435);
                } else {
                    let code = if self.accounts[user] { 332 } else { 333 };
                    self.expect.codes.push(code);
                    self.stalled.push(self.now_ms);
                }
            }
            Transition::Shutdown => {
                // Everyone is logged out (their logout times recorded) and told the server
                // stops; nobody is told of the others going offline: their clients did not.
                self.expect.stopped = self.online.clone();
                let now = self.now_sec();
                for u in std::mem::take(&mut self.online) {
                    self.last_logout[u] = Some(now);
                }
                self.uncarry();
                self.expect.timed_out = std::mem::take(&mut self.stalled);
                self.failures = [0; N];
                self.blocked_until = [None; N];
            }
            Transition::Restart => {
                // Sessions die without a logout: whoever was online is taken to have logged
                // out at their login, so catch-up misses nothing. Failure counts and lockouts
                // live in memory only; everything else was persisted.
                for u in std::mem::take(&mut self.online) {
                    self.last_logout[u] = self.last_login[u];
                }
                self.uncarry();
                self.stalled.clear();
                self.failures = [0; N];
                self.blocked_until = [None; N];
            }
            Transition::Login { user, right } => self.login(user, right),
            Transition::Logout { user } => {
                self.expect.codes.push(221);
                self.leave(user);
                self.delivered(user);
            }
            Transition::Drop { user } => {
                self.leave(user);
                self.delivered(user);
            }
            Transition::Msg { user, text } => {
                let id = self.next_id;
                self.next_id += 1;
                self.posts.push(Post {
                    id,
                    author: USERS[user].into(),
                    text: text.clone(),
                    at: now,
                    edited: false,
                });
                self.expect.codes.push(250);
                let number = self.posts.len() as u32;
                for o in self.audience(user) {
                    let ev = Ev::Post {
                        number,
                        id,
                        at: now,
                        author: USERS[user].into(),
                        edited: false,
                        text: text.clone(),
                    };
                    self.push(o, ev);
                }
            }
            Transition::Edt {
                user,
                number,
                at,
                text,
            } => {
                let code = self.own(user, number, at);
                self.expect.codes.push(code);
                if code == 250 {
                    let p = &mut self.posts[number as usize - 1];
                    p.text = text.clone();
                    p.at = now;
                    p.edited = true;
                    let id = p.id;
                    for o in self.audience(user) {
                        let ev = Ev::Edit {
                            number,
                            id,
                            at: now,
                            author: USERS[user].into(),
                            text: text.clone(),
                        };
                        self.push(o, ev);
                    }
                }
            }
            Transition::Dlt { user, number, at } => {
                let code = self.own(user, number, at);
                self.expect.codes.push(code);
                if code == 250 {
                    let id = self.posts.remove(number as usize - 1).id;
                    for o in self.audience(user) {
                        let ev = Ev::Delete {
                            number,
                            id,
                            author: USERS[user].into(),
                        };
                        self.push(o, ev);
                    }
                }
            }
            Transition::Pvt { user, to, text } => {
                let from = USERS[user];
                let code = if to == from {
                    553
                } else if !self.exists(&to) {
                    550
                } else if self.blocks(&to, from) {
                    553
                } else {
                    let t = USERS.iter().position(|u| *u == to).unwrap();
                    let online = self.online.contains(&t);
                    if online {
                        self.push(
                            t,
                            Ev::Pvt {
                                at: now,
                                from: from.into(),
                                text: text.clone(),
                            },
                        );
                    }
                    self.inbox.push(Letter {
                        to,
                        from: from.into(),
                        text,
                        at: now,
                        carried: online,
                    });
                    250
                };
                self.expect.codes.push(code);
            }
            Transition::Blk { user, target } => {
                let me = USERS[user];
                let code = if target == me {
                    553
                } else if !self.exists(&target) {
                    550
                } else {
                    self.blocks.insert((me.into(), target));
                    250
                };
                self.expect.codes.push(code);
            }
            Transition::Unb { user, target } => {
                let me = USERS[user];
                let code = if target == me {
                    553
                } else if !self.exists(&target) || !self.blocks.remove(&(me.into(), target)) {
                    550
                } else {
                    250
                };
                self.expect.codes.push(code);
            }
            Transition::Rdm { user, since } => {
                self.expect.codes.push(250);
                let me = USERS[user];
                let listing = self
                    .posts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.at > since && !self.blocks(me, &p.author))
                    .map(|(i, p)| {
                        format!(
                            "#{}@{} {}, {}: {}{}",
                            i + 1,
                            p.id,
                            p.author,
                            render(p.at),
                            p.text,
                            if p.edited { " (edited)" } else { "" }
                        )
                    })
                    .collect();
                self.expect.listing = Some(listing);
            }
            Transition::Atu { user } => {
                self.expect.codes.push(250);
                let mut lines: Vec<String> = self
                    .online
                    .iter()
                    .filter(|&&u| u != user)
                    .map(|&u| {
                        let since = render(self.last_login[u].expect("online users logged in"));
                        format!("{}, {}, 0, active since {since}", USERS[u], ip(u))
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("No other active users".into());
                }
                self.expect.listing = Some(lines);
            }
            Transition::Rcu { minutes, .. } => {
                self.expect.codes.push(250);
                let m = minutes.unwrap_or(60);
                let start = now - i64::from(m) * 60;
                let mut recent: Vec<(i64, &str, usize)> = (0..N)
                    .filter_map(|u| self.last_login[u].map(|t| (t, USERS[u], u)))
                    .filter(|(t, _, _)| *t >= start)
                    .collect();
                recent.sort();
                let plural = if m == 1 { "" } else { "s" };
                let lines = if recent.is_empty() {
                    vec![format!(
                        "No users logged in within the last {m} minute{plural}"
                    )]
                } else {
                    let mut l = vec![format!(
                        "Users who logged in within the last {m} minute{plural}:"
                    )];
                    l.extend(recent.iter().map(|(t, name, u)| {
                        let state = if self.online.contains(u) {
                            "online"
                        } else {
                            "offline"
                        };
                        format!("{name}, last login {}, {state}", render(*t))
                    }));
                    l
                };
                self.expect.listing = Some(lines);
            }
        }
    }

    /// `userlog.txt`: who is online, numbered in login order.
    pub fn userlog(&self) -> String {
        self.online
            .iter()
            .enumerate()
            .map(|(i, &u)| {
                let since = render(self.last_login[u].expect("online users logged in"));
                format!("{}; {since}; {}; {}; 0\n", i + 1, USERS[u], ip(u))
            })
            .collect()
    }
}

/// The address user `u` connects from (the system under test uses the same).
pub fn ip(u: usize) -> String {
    format!("10.0.0.{}", u + 1)
}

/// A timestamp as the server writes it (UTC).
pub fn render(secs: i64) -> String {
    Zone::UTC.render(Timestamp::from_unix_secs(secs))
}

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "hi",
        "a; b; c",
        "ünï cödé",
        "#1 not a number",
        "  spaced  ",
        "ends; yes",
    ])
    .prop_map(String::from)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(USERS.to_vec()).prop_map(String::from),
        1 => Just(NOBODY.to_string()),
    ]
}

/// The model as a proptest reference state machine.
pub struct Model;

impl ReferenceStateMachine for Model {
    type State = RefState;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<RefState> {
        (1u8..=5)
            .prop_map(|attempts| RefState {
                attempts,
                now_ms: T0,
                accounts: std::array::from_fn(|u| u < PRELOADED),
                online: Vec::new(),
                failures: [0; N],
                blocked_until: [None; N],
                posts: Vec::new(),
                next_id: 1,
                inbox: Vec::new(),
                blocks: BTreeSet::new(),
                stalled: Vec::new(),
                last_login: [None; N],
                last_logout: [None; N],
                expect: Expect::default(),
            })
            .boxed()
    }

    fn transitions(state: &RefState) -> BoxedStrategy<Transition> {
        let any_user = 0..USERS.len();
        let tick = prop::sample::select(vec![
            1u64, 400, 999, 1_000, 2_500, 9_999, 10_000, 59_999, 60_000, 300_000,
        ])
        .prop_map(|ms| Transition::Tick { ms });
        let login = (any_user, prop::bool::weighted(0.6))
            .prop_map(|(user, right)| Transition::Login { user, right });
        if state.online.is_empty() {
            let stall = (0..USERS.len()).prop_map(|user| Transition::Stall { user });
            return prop_oneof![2 => tick, 6 => login, 1 => stall, 1 => Just(Transition::Restart)]
                .boxed();
        }
        let online: Vec<usize> = state.online.to_vec();
        let who = prop::sample::select(online);
        let now = state.now_sec();
        // Targets for EDT/DLT: an existing post with its right timestamp (mostly), a second
        // off, or one past the end.
        let versions: Vec<i64> = state.posts.iter().map(|p| p.at).collect();
        let n = versions.len();
        let target =
            (0..=n, prop::sample::select(vec![0i64, 0, 0, -1, 1])).prop_map(move |(i, off)| {
                let at = versions.get(i).copied().unwrap_or(now) + off;
                (i as u32 + 1, at)
            });
        prop_oneof![
            2 => tick,
            2 => login,
            1 => Just(Transition::Restart),
            1 => Just(Transition::Shutdown),
            1 => (0..USERS.len()).prop_map(|user| Transition::Stall { user }),
            1 => who.clone().prop_map(|user| Transition::Logout { user }),
            1 => who.clone().prop_map(|user| Transition::Drop { user }),
            4 => (who.clone(), text()).prop_map(|(user, text)| Transition::Msg { user, text }),
            3 => (who.clone(), target.clone(), text())
                .prop_map(|(user, (number, at), text)| Transition::Edt { user, number, at, text }),
            2 => (who.clone(), target).prop_map(|(user, (number, at))| Transition::Dlt { user, number, at }),
            3 => (who.clone(), name(), text()).prop_map(|(user, to, text)| Transition::Pvt { user, to, text }),
            1 => (who.clone(), name()).prop_map(|(user, target)| Transition::Blk { user, target }),
            1 => (who.clone(), name()).prop_map(|(user, target)| Transition::Unb { user, target }),
            1 => (who.clone(), 0i64..120).prop_map(move |(user, back)| Transition::Rdm { user, since: now - back }),
            1 => who.clone().prop_map(|user| Transition::Atu { user }),
            1 => (who, prop::option::of(prop::sample::select(vec![1u32, 2, 60])))
                .prop_map(|(user, minutes)| Transition::Rcu { user, minutes }),
        ]
        .boxed()
    }

    fn preconditions(state: &RefState, t: &Transition) -> bool {
        match t {
            Transition::Tick { .. }
            | Transition::Login { .. }
            | Transition::Stall { .. }
            | Transition::Restart
            | Transition::Shutdown => true,
            other => other.user().is_some_and(|u| state.online.contains(&u)),
        }
    }

    fn apply(mut state: RefState, t: &Transition) -> RefState {
        state.step(t);
        state
    }
}
