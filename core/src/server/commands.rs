//! The commands of a logged-in user.

use super::board::BoardError;
use super::listing::{Listing, Source};
use super::throttle::Verdict;
use super::timers::TimerKind;
use super::uploads::Introduction;
use super::{ConnId, Output, Server};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::proto::event::Event;
use crate::proto::reply::{Code, Reply};
use crate::proto::report::is_report;
use crate::proto::request::{Command, Request, RequestError, parse_request};
use crate::proto::since::Since;
use crate::proto::starttls::is_starttls;
use crate::proto::upload::UploadGrant;
use crate::store::{DataFile, InboxRecord, Persist, postids, render_inbox, render_post};
use crate::time::{CivilTime, Timestamp};
use crate::types::{PostRef, UserName};

/// Default `RCU` window in minutes.
pub const DEFAULT_RCU_MINUTES: u32 = 60;

/// What a command answers: a reply at once, or a long reply produced as output drains.
enum Answer {
    /// The whole reply.
    Now(Reply),
    /// A multi-line reply: its first line, then the lines of `source`.
    Listing {
        code: Code,
        first: String,
        source: Source,
        /// For the console: how many lines, if known.
        lines: Option<usize>,
    },
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Self {
        Answer::Now(r)
    }
}

/// Commands that cost others something: they draw on the user's token bucket.
/// Whether `command` changes what is stored (refused while the data folder is read-only).
fn changes_stored_state(command: Command) -> bool {
    matches!(
        command,
        Command::Msg | Command::Pvt | Command::Edt | Command::Dlt | Command::Blk | Command::Unb
    )
}

fn is_rate_limited(command: Command) -> bool {
    matches!(
        command,
        Command::Msg | Command::Pvt | Command::Edt | Command::Dlt | Command::Upd
    )
}

impl Server {
    pub(super) fn on_command(&mut self, conn: ConnId, user: UserName, line: Vec<u8>) {
        if is_starttls(&line) {
            self.log(format!("{user}: refused STARTTLS after login"));
            self.reply(
                conn,
                Reply::new(
                    Code::BAD_SEQUENCE,
                    "STARTTLS comes before login, right after the greeting; nothing changed.",
                ),
            );
            return;
        }
        if is_report(&line) {
            self.on_upload_report(conn, &user, &line);
            return;
        }
        let request = match parse_request(&line) {
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
        if changes_stored_state(command) && self.refuse_if_read_only(conn, &command.to_string()) {
            return;
        }
        if is_rate_limited(command) && !self.within_share(conn, &user, command, line) {
            return;
        }
        let mark = self.outputs.len();
        let answer: Answer = match request {
            Request::Msg { text } => self.cmd_msg(conn, &user, text).into(),
            Request::Pvt { to, text } => {
                let to = self.account_name(to);
                self.cmd_pvt(&user, to, text).into()
            }
            Request::Dlt { target, at } => self.cmd_dlt(conn, &user, target, at).into(),
            Request::Edt { target, at, text } => self.cmd_edt(conn, &user, target, at, text).into(),
            Request::Rdm { since } => self.cmd_rdm(&user, since),
            Request::Atu => self.cmd_atu(&user),
            Request::Rcu { minutes } => self.cmd_rcu(minutes.unwrap_or(DEFAULT_RCU_MINUTES)),
            Request::Blk { user: target } => {
                let target = self.account_name(target);
                self.cmd_blk(&user, target).into()
            }
            Request::Unb { user: target } => {
                let target = self.account_name(target);
                self.cmd_unb(&user, target).into()
            }
            Request::Upd { to, size, name } => {
                let to = self.account_name(to);
                self.cmd_upd(conn, &user, to, size, name).into()
            }
            Request::Help => help().into(),
            Request::Out => {
                self.log(format!("{user} logged out"));
                self.logout(conn, &user);
                self.reply(conn, Reply::new(Code::BYE, format!("Goodbye, {user}!")));
                self.close(conn);
                return;
            }
        };
        let reply = match answer {
            Answer::Now(reply) => reply,
            Answer::Listing {
                code,
                first,
                source,
                lines,
            } => {
                match lines {
                    Some(n) => self.log(format!("{user}: {command} answered ({n} line(s))")),
                    None => self.log(format!("{user}: {command} answered (a listing)")),
                }
                self.start_listing(
                    conn,
                    Listing::Reply {
                        code,
                        lookahead: Some(first),
                        source,
                    },
                );
                return;
            }
        };
        if reply.code.is_error() {
            self.log(format!("{user}: {command} refused: {}", reply.text()));
        } else if !matches!(
            command,
            Command::Msg
                | Command::Pvt
                | Command::Dlt
                | Command::Edt
                | Command::Blk
                | Command::Unb
                | Command::Upd
        ) {
            self.log(format!(
                "{user}: {command} answered ({} line(s))",
                reply.lines.len()
            ));
        }
        if matches!(command, Command::Msg | Command::Edt | Command::Dlt) {
            let posted = std::mem::take(&mut self.posted);
            self.reply_before_fanout(conn, posted, reply, mark);
        } else {
            // An upload's audience must hear of it before the presenter starts sending.
            self.reply(conn, reply);
        }
    }

    /// Whether `user` may run a rate-limited command now. If not, the request either waits
    /// (kept on the connection, which takes nothing else meanwhile) or, after a long excess,
    /// is refused with `450`.
    fn within_share(
        &mut self,
        conn: ConnId,
        user: &UserName,
        command: Command,
        line: Vec<u8>,
    ) -> bool {
        let now = self.now();
        match self.post_rate.take(user, now) {
            Verdict::Go => true,
            Verdict::Wait(ms) => {
                let at = now.plus_millis(ms);
                if let Some(c) = self.conns.get_mut(conn) {
                    c.delayed = Some(line);
                    c.wake_at = Some(at);
                    self.timers.arm(&mut c.armed, conn, TimerKind::Wake, at);
                }
                self.update_reading(conn);
                false
            }
            Verdict::Refuse(retry_ms) => {
                let rate = self.config.post_rate_per_sec;
                let secs = self.config.throttle_refuse_after_millis / 1000;
                let retry = retry_ms.div_ceil(1000).max(1);
                self.log(format!(
                    "{user}: {command} refused: over {rate} a second for more than {secs} s"
                ));
                self.reply(
                    conn,
                    Reply::new(
                        Code::SLOW_DOWN,
                        format!(
                            "Slow down: you have sent more than {rate} posts, private messages, edits, deletes or uploads a second for over {secs} seconds, so this {command} was refused. Wait about {retry} s, then send again."
                        ),
                    ),
                );
                false
            }
        }
    }

    /// Queue `reply` before the events the command pushed to other users (its persist records
    /// still go first, as every batch's do): a post to 10,000 users should not make its author
    /// wait for 10,000 writes. Each connection still gets its own lines in order, since a
    /// command never pushes an event to its own author.
    ///
    /// On an upgraded connection the reply is sealed here, so its records still come after
    /// everything sealed for this connection before (a TLS stream is in order).
    fn reply_before_fanout(
        &mut self,
        conn: ConnId,
        posted: Option<Event>,
        reply: Reply,
        mark: usize,
    ) {
        let now = self.now();
        // A new post's number and id go to its author just before the reply (`* POSTED`).
        let mut text = posted.map(|e| e.render()).unwrap_or_default();
        text.push_str(&reply.render());
        let Some(bytes) = self
            .conns
            .get_mut(conn)
            .and_then(|c| c.link.seal(Bytes::from(text), now))
        else {
            return;
        };
        if !bytes.is_empty() && self.account(conn, bytes.len(), None) {
            let at = mark.min(self.outputs.len());
            self.outputs.insert(at, Output::Send { conn, bytes });
        }
    }

    fn instant(&self, at: CivilTime) -> Result<Timestamp, Reply> {
        self.config
            .zone
            .timestamp_of(at)
            .map_err(|e| Reply::new(Code::BAD_ARGUMENTS, format!("{e}")))
    }

    fn cmd_msg(&mut self, conn: ConnId, user: &UserName, text: String) -> Reply {
        let now = self.now_ts();
        let (number, id) = self.board.post(user.clone(), text.clone(), now);
        // The id's journal line first: it must be durable before the post is.
        self.persist(Persist::Append {
            file: DataFile::PostIds,
            text: postids::render_add(id, now, user, &text.as_str().into()),
        });
        self.posted = Some(Event::Posted { number, id });
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
            id,
            at: self.config.zone.civil(now),
            author: user.clone(),
            edited: false,
            text,
        };
        self.broadcast(Some(conn), user, &event);
        Reply::new(Code::OK, format!("Message #{number} posted at {at}"))
    }

    /// The name as its account spells it (`YODA` typed means `yoda`), or as typed if there is
    /// no such account: replies, events, logs and files then show names as they were created.
    fn account_name(&self, typed: UserName) -> UserName {
        self.accounts.canonical(&typed).cloned().unwrap_or(typed)
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
        // Every private message is kept until the connection that carries it ends with it
        // acknowledged: a recipient cut off mid-delivery gets it again at the next login.
        let record = InboxRecord {
            to: to.clone(),
            at: now,
            from: user.clone(),
            text: text.clone().into(),
        };
        self.persist(Persist::Append {
            file: DataFile::Inbox,
            text: render_inbox(&record, self.config.zone),
        });
        let letter = self.inbox.store(record);
        match self.sessions.find(&to).map(|o| o.conn) {
            Some(conn) => {
                self.send_event(
                    conn,
                    &Event::Private {
                        at: self.config.zone.civil(now),
                        from: user.clone(),
                        text,
                    },
                    Some(letter),
                );
                self.log(format!("{user} sent a private message to {to}"));
                Reply::new(Code::OK, format!("Private message sent to {to} at {at}"))
            }
            None => {
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
            BoardError::NoSuchId { id } => Reply::new(
                Code::NOT_FOUND,
                format!("There is no message @{id}: it was deleted, or never posted"),
            ),
            BoardError::Moved { id, given, now } => Reply::new(
                Code::CONFLICT,
                format!(
                    "Message @{id} is now #{now}, not #{given}: an earlier message was deleted meanwhile; nothing was changed (name it @{id} if you still mean it)"
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

    fn cmd_dlt(&mut self, conn: ConnId, user: &UserName, target: PostRef, at: CivilTime) -> Reply {
        let claimed = match self.instant(at) {
            Ok(t) => t,
            Err(r) => return r,
        };
        match self.board.delete(target, user, claimed) {
            Err(e) => self.board_error(e, "delete"),
            Ok((number, post)) => {
                self.persist(Persist::Append {
                    file: DataFile::PostIds,
                    text: postids::render_delete(
                        post.id,
                        number.index(),
                        post.at,
                        user,
                        &post.text,
                    ),
                });
                self.persist_whole(DataFile::MessageLog);
                self.listings_post_deleted(number.index());
                let now = self.render_ts(self.now_ts());
                self.log(format!(
                    "{user} deleted message #{number} (@{}) ({})",
                    post.id, post.text
                ));
                let event = Event::Deleted {
                    number,
                    id: post.id,
                    author: user.clone(),
                };
                self.broadcast(Some(conn), user, &event);
                Reply::new(Code::OK, format!("Message #{number} deleted at {now}"))
            }
        }
    }

    fn cmd_edt(
        &mut self,
        conn: ConnId,
        user: &UserName,
        target: PostRef,
        at: CivilTime,
        text: String,
    ) -> Reply {
        let claimed = match self.instant(at) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let now = self.now_ts();
        match self.board.edit(target, user, claimed, text.clone(), now) {
            Err(e) => self.board_error(e, "edit"),
            Ok(edited) => {
                let (number, id) = (edited.number, edited.post.id);
                let journal =
                    postids::render_edit(id, (claimed, &edited.old_text), (now, &edited.post.text));
                self.persist(Persist::Append {
                    file: DataFile::PostIds,
                    text: journal,
                });
                self.persist_whole(DataFile::MessageLog);
                let at = self.render_ts(now);
                self.log(format!(
                    "{user} edited message #{number} (@{id}) at {at}: {text}"
                ));
                let event = Event::Edited {
                    number,
                    id,
                    at: self.config.zone.civil(now),
                    author: user.clone(),
                    text,
                };
                self.broadcast(Some(conn), user, &event);
                Reply::new(Code::OK, format!("Message #{number} edited at {at}"))
            }
        }
    }

    /// `RDM`: count the posts that match (cheap, no copy), then list them as the output
    /// drains.
    fn cmd_rdm(&mut self, user: &UserName, since: Since) -> Answer {
        let since_ts = match self.resolve_since(user, since) {
            Ok(t) => t,
            Err(r) => return r.into(),
        };
        let since = self.config.zone.civil(since_ts);
        let count = self
            .board
            .since(since_ts)
            .filter(|(_, p)| !self.blocks.blocks(user, &p.author))
            .count();
        if count == 0 {
            return Reply::new(Code::OK, format!("No new messages since {since}")).into();
        }
        Answer::Listing {
            code: Code::OK,
            first: format!(
                "{count} message{} since {since}:",
                if count == 1 { "" } else { "s" }
            ),
            source: Source::Rdm {
                reader: user.clone(),
                since: since_ts,
                next: 0,
                end: self.board.len(),
                deleted: Vec::new(),
            },
            lines: Some(count + 1),
        }
    }

    /// The instant an `RDM` reads after, resolved here because the server alone knows its
    /// time zone and the clock posts are stamped with (see [`Since`]).
    fn resolve_since(&self, user: &UserName, since: Since) -> Result<Timestamp, Reply> {
        let now = self.now_ts().unix_secs();
        Ok(match since {
            Since::At(at) => self.instant(at)?,
            Since::Ago { minutes } => Timestamp::from_unix_secs(now - i64::from(minutes) * 60),
            Since::Today => {
                let c = self.config.zone.civil(self.now_ts());
                let midnight = CivilTime {
                    hour: 0,
                    minute: 0,
                    second: 0,
                    ..c
                };
                // Strictly later than the second before midnight: a post at 00:00:00 is today's.
                let start = self.instant(midnight)?.unix_secs();
                Timestamp::from_unix_secs(start - 1)
            }
            // As the catch-up at login reads it: from the second before, so a post made in
            // the same second as the logout is not missed.
            Since::LastLogout => self
                .logins
                .last_logout(user)
                .map_or(Timestamp::from_unix_secs(0), |t| {
                    Timestamp::from_unix_secs(t.unix_secs() - 1)
                }),
        })
    }

    fn cmd_atu(&mut self, user: &UserName) -> Answer {
        let mut source = Source::Atu {
            reader: user.clone(),
            cursor: None,
        };
        match self.next_listing_line(&mut source) {
            None => Reply::new(Code::OK, "No other active users").into(),
            Some(first) => Answer::Listing {
                code: Code::OK,
                first,
                source,
                lines: Some(self.sessions.len().saturating_sub(1)),
            },
        }
    }

    fn cmd_rcu(&mut self, minutes: u32) -> Answer {
        let window_start =
            Timestamp::from_unix_secs(self.now_ts().unix_secs() - i64::from(minutes) * 60);
        let plural = if minutes == 1 { "" } else { "s" };
        let any = self
            .logins
            .logged_in_since(window_start, None)
            .next()
            .is_some();
        if !any {
            return Reply::new(
                Code::OK,
                format!("No users logged in within the last {minutes} minute{plural}"),
            )
            .into();
        }
        Answer::Listing {
            code: Code::OK,
            first: format!("Users who logged in within the last {minutes} minute{plural}:"),
            source: Source::Rcu {
                since: window_start,
                cursor: None,
            },
            lines: None,
        }
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
        let Some(presenter) = self.sessions.on(conn).cloned() else {
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
        let max = self.config.max_unreported_uploads;
        if let Some(c) = self.conns.get_mut(conn) {
            c.uploads.add(
                Introduction {
                    id,
                    audience: to.clone(),
                    name: name.clone(),
                    size,
                },
                max,
            );
        }
        self.send_event(audience.conn, &Event::Upload(to_audience), None);
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
    let mut lines = vec![crate::proto::request::HELP_HEADER.to_string()];
    lines.extend(crate::proto::request::help_rows());
    Reply::lines(Code::HELP, lines)
}
