//! Liveness: noticing that the peer of a logged-in connection is gone.
//!
//! A half-open connection (the client's machine lost power, its network vanished, its process
//! is stopped) sends nothing and, as long as the server has nothing to send it, makes TCP
//! report nothing either: its user would stay "already logged in" for good. So the server asks:
//! after [`super::ServerConfig::keepalive_idle_millis`] without a byte from the client it sends
//! `* PING <token>`, which a huddle client answers by itself with `PONG <token>`; when nothing
//! at all has come [`super::ServerConfig::keepalive_timeout_millis`] after the ping, the
//! connection is closed and the user logged out, which frees the name.
//!
//! Any byte from the client proves it is alive, not only the `PONG`. Two cases wait instead of
//! deciding:
//! - a connection whose listing is being sent gets no ping (an event must not land inside a
//!   multi-line reply); its output is guarded by the write timeout meanwhile;
//! - a connection the server has stopped reading (its output is backed up, its request waits)
//!   cannot be heard, so it is not cut for silence; the write timeout and the hard limit on
//!   unsent bytes decide about it.

use crate::time::UnixMillis;

/// At most this many unsent bytes, a dead connection is closed with a `421` line (written
/// into a socket buffer with room to spare); beyond it, it is cut without one.
const QUIET_BYTES: usize = 4096;

/// What the keepalive of one connection asks for when its deadline comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send `* PING <token>`.
    Ping(u64),
    /// The peer answered nothing within the timeout: it is gone.
    Dead {
        /// How long nothing was heard from it, in milliseconds.
        silent_millis: u64,
    },
    /// Look again then.
    Later(UnixMillis),
}

/// The keepalive state of one logged-in connection.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: UnixMillis,
    /// The ping in flight: its token and when it went.
    ping: Option<(u64, UnixMillis)>,
    /// No decision before this (the ping had to wait).
    not_before: Option<UnixMillis>,
    next_token: u64,
}

impl Liveness {
    /// A connection just heard from at `now`.
    pub fn new(now: UnixMillis) -> Self {
        Self {
            last_heard: now,
            ping: None,
            not_before: None,
            next_token: 1,
        }
    }

    /// Bytes arrived from the peer: it is alive.
    pub fn heard(&mut self, now: UnixMillis) {
        self.last_heard = now;
        self.ping = None;
        self.not_before = None;
    }

    /// When [`Liveness::due`] has something to decide (`None`: the keepalive is off).
    pub fn deadline(&self, idle_millis: u64, timeout_millis: u64) -> Option<UnixMillis> {
        if idle_millis == 0 {
            return None;
        }
        let natural = match self.ping {
            Some((_, sent)) => sent.plus_millis(timeout_millis),
            None => self.last_heard.plus_millis(idle_millis),
        };
        Some(self.not_before.map_or(natural, |t| t.max(natural)))
    }

    /// The deadline came: what to do. `can_ping`: an event may be sent now (no listing in
    /// progress); `heard_paused`: the server is not reading the connection, so silence proves
    /// nothing.
    pub fn due(
        &mut self,
        now: UnixMillis,
        idle_millis: u64,
        timeout_millis: u64,
        can_ping: bool,
        reading_paused: bool,
    ) -> Due {
        let retry = timeout_millis.clamp(1, idle_millis.max(1));
        match self.ping {
            None if !can_ping => self.later(now.plus_millis(retry)),
            None => {
                let token = self.next_token;
                self.next_token += 1;
                self.ping = Some((token, now));
                self.not_before = None;
                Due::Ping(token)
            }
            Some(_) if reading_paused => self.later(now.plus_millis(retry)),
            Some(_) => Due::Dead {
                silent_millis: now.millis_since(self.last_heard),
            },
        }
    }

    fn later(&mut self, at: UnixMillis) -> Due {
        self.not_before = Some(at);
        Due::Later(at)
    }
}

/// Whether a line from a client is the answer to a keepalive (`PONG <token>`, any case): it
/// is not a request and gets no reply.
pub fn is_pong(line: &[u8]) -> bool {
    line.len() >= 4
        && line[..4].eq_ignore_ascii_case(b"PONG")
        && (line.len() == 4 || line[4] == b' ')
}

impl super::Server {
    /// A user just logged in on `conn`: start its keepalive.
    pub(super) fn start_keepalive(&mut self, conn: super::ConnId) {
        let now = self.now();
        let (idle, timeout) = (
            self.config.keepalive_idle_millis,
            self.config.keepalive_timeout_millis,
        );
        if let Some(c) = self.conns.get_mut(conn) {
            c.liveness.heard(now);
            if let Some(at) = c.liveness.deadline(idle, timeout) {
                self.timers
                    .arm(&mut c.armed, conn, super::TimerKind::Keepalive, at);
            }
        }
    }

    /// The keepalive deadline of `conn` came: ping it, give it up, or look again later.
    pub(super) fn keepalive_due(&mut self, conn: super::ConnId) {
        use crate::proto::event::Event;
        use crate::proto::reply::{Code, Reply};
        let now = self.now();
        let (idle, timeout) = (
            self.config.keepalive_idle_millis,
            self.config.keepalive_timeout_millis,
        );
        let can_ping = !self.holding.contains(&conn);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let super::Phase::LoggedIn(user) = c.phase.clone() else {
            return;
        };
        let due = c.liveness.due(now, idle, timeout, can_ping, c.paused);
        let arm_at = match due {
            Due::Ping(token) => {
                self.send_event(conn, &Event::Ping { token }, None);
                now.plus_millis(timeout)
            }
            Due::Later(at) => at,
            Due::Dead { silent_millis } => {
                let peer = c.peer;
                // Little waiting (the ping itself, writes not reported yet): the goodbye fits in
                // the socket's buffer. Much waiting: cut at once, a writer must not hang on it.
                let quiet = c.flow.unsent() <= QUIET_BYTES;
                let secs = timeout.div_ceil(1000);
                let why = format!(
                    "{user} ({peer}): disconnected: no answer to a keepalive within {secs} s (nothing heard for {} s)",
                    silent_millis / 1000
                );
                if quiet {
                    // Said, in case the peer is only stopped and reads it when it resumes.
                    self.log(why);
                    self.reply(
                        conn,
                        Reply::new(
                            Code::CLOSING,
                            format!(
                                "No answer to the server's keepalive within {secs} seconds: disconnected."
                            ),
                        ),
                    );
                    self.close(conn);
                } else {
                    self.cut(conn, why);
                }
                return;
            }
        };
        if let Some(c) = self.conns.get_mut(conn) {
            self.timers
                .arm(&mut c.armed, conn, super::TimerKind::Keepalive, arm_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: u64 = 30_000;
    const TIMEOUT: u64 = 20_000;

    #[test]
    fn silence_brings_a_ping_then_death_unless_anything_is_heard() {
        let t0 = UnixMillis(1_000_000);
        let mut l = Liveness::new(t0);
        assert_eq!(l.deadline(IDLE, TIMEOUT), Some(t0.plus_millis(IDLE)));
        let t1 = t0.plus_millis(IDLE);
        assert_eq!(l.due(t1, IDLE, TIMEOUT, true, false), Due::Ping(1));
        assert_eq!(l.deadline(IDLE, TIMEOUT), Some(t1.plus_millis(TIMEOUT)));
        // An answer (any byte) starts the idle time again; the next ping has a new token.
        l.heard(t1.plus_millis(5));
        let t2 = t1.plus_millis(5 + IDLE);
        assert_eq!(l.deadline(IDLE, TIMEOUT), Some(t2));
        assert_eq!(l.due(t2, IDLE, TIMEOUT, true, false), Due::Ping(2));
        let t3 = t2.plus_millis(TIMEOUT);
        assert_eq!(
            l.due(t3, IDLE, TIMEOUT, true, false),
            Due::Dead {
                silent_millis: IDLE + TIMEOUT
            }
        );
    }

    #[test]
    fn no_ping_during_a_listing_and_no_death_while_not_read() {
        let t0 = UnixMillis(0);
        let mut l = Liveness::new(t0);
        let t1 = t0.plus_millis(IDLE);
        assert_eq!(
            l.due(t1, IDLE, TIMEOUT, false, false),
            Due::Later(t1.plus_millis(TIMEOUT))
        );
        assert_eq!(l.deadline(IDLE, TIMEOUT), Some(t1.plus_millis(TIMEOUT)));
        let t2 = t1.plus_millis(TIMEOUT);
        assert_eq!(l.due(t2, IDLE, TIMEOUT, true, false), Due::Ping(1));
        let t3 = t2.plus_millis(TIMEOUT);
        assert_eq!(
            l.due(t3, IDLE, TIMEOUT, true, true),
            Due::Later(t3.plus_millis(TIMEOUT))
        );
        assert!(matches!(
            l.due(t3.plus_millis(TIMEOUT), IDLE, TIMEOUT, true, false),
            Due::Dead { .. }
        ));
    }

    #[test]
    fn an_idle_time_of_zero_turns_it_off() {
        assert_eq!(Liveness::new(UnixMillis(0)).deadline(0, TIMEOUT), None);
    }
}
