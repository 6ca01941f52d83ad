//! The commands of a logged-in user.

use super::board::BoardError;
use super::{ConnId, Output, Server};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::proto::event::Event;
use crate::proto::reply::{Code, Reply};
use crate::proto::request::{Command, Request, RequestError, parse_request};
use crate::proto::upload::UploadGrant;
use crate::store::{DataFile, InboxRecord, Persist, render_inbox, render_post};
use crate::time::{CivilTime, Timestamp};
use crate::types::{MessageNumber, UserName};

/// Default `RCU` window in minutes.
pub const DEFAULT_RCU_MINUTES: u32 = 60;

impl Server {
    pub(super) fn on_command(&mut self, conn: ConnId, user: UserName, line: &[u8]) {
        let mark = self.outputs.len();
        let request = match parse_request(line) {
            Ok(r) => r,
            Err(e) => {
                let code = match e {
                    RequestError::UnknownCommand(_) | RequestError::Empty => Code::UNKNOWN_COMMAND,
                    RequestError::NotUtf8 => Code::BAD_LINE,
                    RequestError::BadArguments { .. } => Code::BAD_ARGUMENTS,
                };
                self.log(format!("{user}: refused a malformed request: {e}"));
                self.reply(conn, Reply::new(code, e.to_string()));
                return;
            }
        };
        let command = request.command();
        let reply = match request {
            Request::Msg { text } => self.cmd_msg(&user, text),
            Request::Pvt { to, text } => self.cmd_pvt(&user, to, text),
            Request::Dlt { number, at } => self.cmd_dlt(&user, number, at),
            Request::Edt { number, at, text } => self.cmd_edt(&user, number, at, text),
            Request::Rdm { since } => self.cmd_rdm(&user, since),
            Request::Atu => self.cmd_atu(&user),
            Request::Rcu { minutes } => self.cmd_rcu(minutes.unwrap_or(DEFAULT_RCU_MINUTES)),
            Request::Blk { user: target } => self.cmd_blk(&user, target),
            Request::Unb { user: target } => self.cmd_unb(&user, target),
            Request::Upd { to, size, name } => self.cmd_upd(conn, &user, to, size, name),
            Request::Help => help(),
            Request::Out => {
                self.log(format!("{user} logged out"));
                self.logout(conn, &user);
                self.reply(conn, Reply::new(Code::BYE, format!("Goodbye, {user}!")));
                self.close(conn);
                return;
            }
        };
        if reply.code.is_error() {
            self.log(format!("{user}: {command} refused: {}", reply.text()));
        } else if !matches!(
            command,
            Command::Msg | Command::Pvt | Command::Dlt | Command::Edt | Command::Blk | Command::Unb
        ) {
            self.log(format!(
                "{user}: {command} answered ({} line(s))",
                reply.lines.len()
            ));
        }
        if matches!(command, Command::Msg | Command::Edt | Command::Dlt) {
            self.reply_before_fanout(conn, reply, mark);
        } else {
            // An upload's audience must hear of it before the presenter starts sending.
            self.reply(conn, reply);
        }
    }

    /// Queue `reply` right after the persist records this command queued (it must not leave
    /// before them) but before the events it pushed to other users: a post to 10,000 users
    /// should not make its author wait for 10,000 writes. Each connection still gets its own
    /// lines in order, since a command never pushes an event to its own author.
    fn reply_before_fanout(&mut self, conn: ConnId, reply: Reply, mark: usize) {
        let at = (mark..self.outputs.len())
            .rev()
            .find(|&i| matches!(self.outputs.get(i), Some(Output::Persist(_))))
            .map_or(mark, |i| i + 1);
        let bytes = Bytes::from(reply.render());
        self.outputs.insert(at, Output::Send { conn, bytes });
    }

    fn instant(&self, at: CivilTime) -> Result<Timestamp, Reply> {
        self.config
            .zone
            .timestamp_of(at)
            .map_err(|e| Reply::new(Code::BAD_ARGUMENTS, format!("{e}")))
    }

    /// Every online user except `author` who does not block `author`.
    fn audience(&self, author: &UserName) -> Vec<ConnId> {
        self.sessions
            .iter()
            .filter(|o| &o.user != author && !self.blocks.blocks(&o.user, author))
            .map(|o| o.conn)
            .collect()
    }

    fn cmd_msg(&mut self, user: &UserName, text: String) -> Reply {
        let now = self.now_ts();
        let number = self.board.post(user.clone(), text.clone(), now);
        if let Some(record) = self.board.record(number) {
            self.persist(Persist::Append {
                file: DataFile::MessageLog,
                text: render_post(&record, self.config.zone),
            });
        }
        let at = self.render_ts(now);
        self.log(format!("{user} posted message #{number} at {at}: {text}"));
        let event = Event::Post {
            number,
            at: self.config.zone.civil(now),
            author: user.clone(),
            edited: false,
            text,
        };
        let audience = self.audience(user);
        self.broadcast(audience, &event);
        Reply::new(Code::OK, format!("Message #{number} posted at {at}"))
    }

    fn cmd_pvt(&mut self, user: &UserName, to: UserName, text: String) -> Reply {
        if &to == user {
            return Reply::new(
                Code::NOT_PERMITTED,
                "You cannot send a private message to yourself",
            );
        }
        if !self.accounts.exists(&to) {
            return Reply::new(Code::NOT_FOUND, format!("There is no user named {to}"));
        }
        if self.blocks.blocks(&to, user) {
            self.log(format!(
                "{user}: private message to {to} refused ({to} blocks {user})"
            ));
            return Reply::new(
                Code::NOT_PERMITTED,
                format!("{to} has blocked you; your message was not sent"),
            );
        }
        let now = self.now_ts();
        let at = self.render_ts(now);
        match self.sessions.find(&to).map(|o| o.conn) {
            Some(conn) => {
                self.event(
                    conn,
                    &Event::Private {
                        at: self.config.zone.civil(now),
                        from: user.clone(),
                        text,
                    },
                );
                self.log(format!("{user} sent a private message to {to}"));
                Reply::new(Code::OK, format!("Private message sent to {to} at {at}"))
            }
            None => {
                let record = InboxRecord {
                    to: to.clone(),
                    at: now,
                    from: user.clone(),
                    text: text.into(),
                };
                self.persist(Persist::Append {
                    file: DataFile::Inbox,
                    text: render_inbox(&record, self.config.zone),
                });
                self.inbox.store(record);
                self.log(format!(
                    "{user} sent a private message to {to} (offline: stored)"
                ));
                Reply::new(
                    Code::OK,
                    format!(
                        "{to} is offline; your private message of {at} will be delivered at their next login"
                    ),
                )
            }
        }
    }

    fn board_error(&self, e: BoardError, verb: &str) -> Reply {
        match e {
            BoardError::NoSuchMessage { number, count } => Reply::new(
                Code::NOT_FOUND,
                match count {
                    0 => format!("There is no message #{number}: the board is empty"),
                    1 => format!("There is no message #{number}: there is only message #1"),
                    n => format!("There is no message #{number}: messages are numbered 1 to {n}"),
                },
            ),
            BoardError::NotAuthor { number, author } => Reply::new(
                Code::NOT_PERMITTED,
                format!(
                    "Message #{number} was posted by {author}; you can only {verb} your own messages"
                ),
            ),
            BoardError::StaleTimestamp { number, current } => Reply::new(
                Code::CONFLICT,
                format!(
                    "The timestamp does not match message #{number} (its timestamp is {}); it may have been edited meanwhile, nothing was changed",
                    self.render_ts(current)
                ),
            ),
        }
    }

    fn cmd_dlt(&mut self, user: &UserName, number: MessageNumber, at: CivilTime) -> Reply {
        let claimed = match self.instant(at) {
            Ok(t) => t,
            Err(r) => return r,
        };
        match self.board.delete(number, user, claimed) {
            Err(e) => self.board_error(e, "delete"),
            Ok(post) => {
                self.persist_whole(DataFile::MessageLog);
                let now = self.render_ts(self.now_ts());
                self.log(format!("{user} deleted message #{number} ({})", post.text));
                let event = Event::Deleted {
                    number,
                    author: user.clone(),
                };
                let audience = self.audience(user);
                self.broadcast(audience, &event);
                Reply::new(Code::OK, format!("Message #{number} deleted at {now}"))
            }
        }
    }

    fn cmd_edt(
        &mut self,
        user: &UserName,
        number: MessageNumber,
        at: CivilTime,
        text: String,
    ) -> Reply {
        let claimed = match self.instant(at) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let now = self.now_ts();
        match self.board.edit(number, user, claimed, text.clone(), now) {
            Err(e) => self.board_error(e, "edit"),
            Ok(_) => {
                self.persist_whole(DataFile::MessageLog);
                let at = self.render_ts(now);
                self.log(format!("{user} edited message #{number} at {at}: {text}"));
                let event = Event::Edited {
                    number,
                    at: self.config.zone.civil(now),
                    author: user.clone(),
                    text,
                };
                let audience = self.audience(user);
                self.broadcast(audience, &event);
                Reply::new(Code::OK, format!("Message #{number} edited at {at}"))
            }
        }
    }

    fn cmd_rdm(&mut self, user: &UserName, since: CivilTime) -> Reply {
        let since_ts = match self.instant(since) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let lines: Vec<String> = self
            .board
            .since(since_ts)
            .filter(|(_, p)| !self.blocks.blocks(user, &p.author))
            .map(|(n, p)| {
                let edited = if p.edited { " (edited)" } else { "" };
                format!(
                    "#{n} {}, {}: {}{edited}",
                    p.author,
                    self.render_ts(p.at),
                    p.text
                )
            })
            .collect();
        if lines.is_empty() {
            return Reply::new(Code::OK, format!("No new messages since {since}"));
        }
        let mut out = vec![format!(
            "{} message{} since {since}:",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        )];
        out.extend(lines);
        Reply::lines(Code::OK, out)
    }

    fn cmd_atu(&mut self, user: &UserName) -> Reply {
        let lines: Vec<String> = self
            .sessions
            .iter()
            .filter(|o| &o.user != user)
            .map(|o| {
                format!(
                    "{}, {}, {}, active since {}",
                    o.user,
                    o.ip,
                    o.udp_port,
                    self.render_ts(o.since)
                )
            })
            .collect();
        if lines.is_empty() {
            Reply::new(Code::OK, "No other active users")
        } else {
            Reply::lines(Code::OK, lines)
        }
    }

    fn cmd_rcu(&mut self, minutes: u32) -> Reply {
        let window_start =
            Timestamp::from_unix_secs(self.now_ts().unix_secs() - i64::from(minutes) * 60);
        let lines: Vec<String> = self
            .logins
            .logged_in_since(window_start)
            .into_iter()
            .map(|r| {
                let state = if self.sessions.find(&r.user).is_some() {
                    "online"
                } else {
                    "offline"
                };
                format!(
                    "{}, last login {}, {state}",
                    r.user,
                    self.render_ts(r.login)
                )
            })
            .collect();
        let plural = if minutes == 1 { "" } else { "s" };
        if lines.is_empty() {
            return Reply::new(
                Code::OK,
                format!("No users logged in within the last {minutes} minute{plural}"),
            );
        }
        let mut out = vec![format!(
            "Users who logged in within the last {minutes} minute{plural}:"
        )];
        out.extend(lines);
        Reply::lines(Code::OK, out)
    }

    /// Introduce presenter and audience: check the audience can receive from the presenter,
    /// issue a transfer id and secret, tell the presenter where to send and the audience what
    /// is coming. The file itself never passes through the server.
    fn cmd_upd(
        &mut self,
        conn: ConnId,
        user: &UserName,
        to: UserName,
        size: u64,
        name: String,
    ) -> Reply {
        if &to == user {
            return Reply::new(Code::NOT_PERMITTED, "You cannot upload a file to yourself");
        }
        if !self.accounts.exists(&to) {
            return Reply::new(Code::NOT_FOUND, format!("There is no user named {to}"));
        }
        if self.blocks.blocks(&to, user) {
            self.log(format!(
                "{user} asked to upload {name} to {to}: refused ({to} blocks {user})"
            ));
            return Reply::new(
                Code::NOT_PERMITTED,
                format!("{to} has blocked you; the upload was not started"),
            );
        }
        let Some(audience) = self.sessions.find(&to).cloned() else {
            return Reply::new(
                Code::OFFLINE,
                format!("{to} is offline; uploads go only to online users"),
            );
        };
        if audience.udp_port == 0 {
            return Reply::new(
                Code::OFFLINE,
                format!(
                    "{to}'s client has no UDP port to receive uploads on (connected without the huddle client?)"
                ),
            );
        }
        let Some(presenter) = self.sessions.iter().find(|o| o.conn == conn).cloned() else {
            return Reply::new(Code::NOT_PERMITTED, "You are not logged in");
        };
        let id = crate::transfer::TransferId(u64::from_le_bytes(self.random_bytes::<8>()));
        let secret = crate::transfer::TransferSecret(self.random_bytes::<32>());
        let to_presenter = UploadGrant {
            id,
            secret: secret.clone(),
            peer: SocketAddr::new(audience.ip, audience.udp_port),
            user: to.clone(),
            size,
            name: name.clone(),
        };
        let to_audience = UploadGrant {
            id,
            secret,
            peer: SocketAddr::new(presenter.ip, presenter.udp_port),
            user: user.clone(),
            size,
            name: name.clone(),
        };
        self.log(format!(
            "{user} asked to upload {name} ({size} bytes) to {to}: approved as transfer {id}"
        ));
        self.event(audience.conn, &Event::Upload(to_audience));
        Reply::new(Code::UPLOAD_APPROVED, to_presenter.to_string())
    }

    fn cmd_blk(&mut self, user: &UserName, target: UserName) -> Reply {
        if &target == user {
            return Reply::new(Code::NOT_PERMITTED, "You cannot block yourself");
        }
        if !self.accounts.exists(&target) {
            return Reply::new(Code::NOT_FOUND, format!("There is no user named {target}"));
        }
        if !self.blocks.block(user.clone(), target.clone()) {
            return Reply::new(Code::OK, format!("{target} was already blocked"));
        }
        self.persist_whole(DataFile::Blocks);
        self.log(format!("{user} blocked {target}"));
        Reply::new(
            Code::OK,
            format!(
                "{target} is now blocked: they cannot send you private messages or uploads, and you will not see their posts"
            ),
        )
    }

    fn cmd_unb(&mut self, user: &UserName, target: UserName) -> Reply {
        if &target == user {
            return Reply::new(Code::NOT_PERMITTED, "You cannot unblock yourself");
        }
        if !self.accounts.exists(&target) {
            return Reply::new(Code::NOT_FOUND, format!("There is no user named {target}"));
        }
        if !self.blocks.unblock(user, &target) {
            return Reply::new(Code::NOT_FOUND, format!("{target} was not blocked"));
        }
        self.persist_whole(DataFile::Blocks);
        self.log(format!("{user} unblocked {target}"));
        Reply::new(Code::OK, format!("{target} is unblocked"))
    }
}

/// The list of commands.
fn help() -> Reply {
    let mut lines =
        vec!["Commands (case-insensitive; timestamps as DD Mon YYYY HH:MM:SS):".to_string()];
    lines.extend(
        Command::ALL
            .iter()
            .map(|c| format!("  {:<24} {}", c.usage(), c.summary())),
    );
    Reply::lines(Code::HELP, lines)
}
