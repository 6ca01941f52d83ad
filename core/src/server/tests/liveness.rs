//! The keepalive (issue 10, item 3), in virtual time: a logged-in client that sends nothing is
//! pinged; one that answers stays however long it idles; one that stops answering is closed
//! within idle + timeout, logged out, and its name can log in again.

use super::*;

const IDLE: u64 = 30_000;
const TIMEOUT: u64 = 20_000;

fn config() -> ServerConfig {
    ServerConfig {
        keepalive_idle_millis: IDLE,
        keepalive_timeout_millis: TIMEOUT,
        ..fast_config()
    }
}

#[test]
fn a_client_that_answers_its_pings_stays_for_hours() {
    let mut h = Harness::with(config(), files_with_demo_users());
    let y = h.login("yoda", "jedi");
    for round in 1..=300u64 {
        h.advance(IDLE - 1);
        h.drain();
        assert_eq!(h.take(y), "", "round {round}: no ping before the idle time");
        h.advance(1);
        h.drain();
        assert_eq!(h.take(y), format!("* PING {round}\n"));
        // The answer gets no reply of its own.
        h.advance(TIMEOUT / 2);
        assert_eq!(h.say(y, &format!("PONG {round}")), "");
    }
    assert!(!h.closed.contains(&y));
    assert_eq!(h.server.online_count(), 1);
    assert!(h.say(y, "ATU").starts_with("250 No other active users"));
}

#[test]
fn any_request_counts_as_a_sign_of_life() {
    let mut h = Harness::with(config(), files_with_demo_users());
    let y = h.login("yoda", "jedi");
    for _ in 0..10 {
        h.advance(IDLE - 1_000);
        assert!(h.say(y, "ATU").starts_with("250 "));
    }
    h.drain();
    assert!(!h.take(y).contains("PING"));
}

#[test]
fn a_client_that_stops_answering_is_logged_out_within_the_timeout_and_its_name_is_free() {
    let mut h = Harness::with(config(), files_with_demo_users());
    let l = h.login("luke", "r2d2");
    let y = h.login("yoda", "jedi");
    // Luke keeps answering; yoda's machine is gone (a half-open connection says nothing).
    h.advance(IDLE);
    h.drain();
    assert_eq!(h.take(y), "* PING 1\n");
    assert_eq!(h.take(l), "* PING 1\n");
    assert_eq!(h.say(l, "PONG 1"), "");
    h.advance(TIMEOUT - 1);
    h.drain();
    assert!(!h.closed.contains(&y), "not before the timeout");
    // Meanwhile a second login as yoda is refused: the name is taken.
    let again = h.connect();
    h.say(again, "yoda");
    assert!(
        h.say(again, "jedi")
            .starts_with("431 yoda is already logged in")
    );
    h.advance(1);
    h.drain();
    assert!(
        h.take(y)
            .starts_with("421 No answer to the server's keepalive within 20 seconds"),
    );
    assert!(h.closed.contains(&y) && !h.closed.contains(&l));
    assert!(h.take(l).contains("* OFFLINE yoda"));
    assert!(!h.file(DataFile::UserLog).contains("yoda"));
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("yoda (127.0.0.1:") && l.contains("no answer to a keepalive")),
        "{:?}",
        h.logs
    );
    // The name logs in again at once.
    assert!(h.say(again, "yoda").starts_with("332 "));
    assert!(h.say(again, "jedi").starts_with("230-"));
}

#[test]
fn a_connection_the_server_is_not_reading_is_left_to_the_write_timeout() {
    // Yoda asked for a long listing and reads it slowly: the server stops reading him (his
    // output is backed up), so silence proves nothing; while his output moves he stays.
    let config = ServerConfig {
        output_high_water: 4 * 1024,
        output_low_water: 1024,
        ..config()
    };
    let mut files = files_with_demo_users();
    let log: String = (1..=40_000)
        .map(|i| format!("{i}; 21 Nov 2026 22:00:00; luke; post number {i}; no\n"))
        .collect();
    files.insert(DataFile::MessageLog, log);
    let mut h = Harness::with(config, files);
    let y = h.login("yoda", "jedi");
    h.take(y);
    // Driven by hand: nothing is reported written until yoda's client reads a little.
    h.server
        .handle_bytes(y, b"RDM 01 Jan 2000 00:00:00\n", UnixMillis(h.now));
    let mut got = 0usize;
    for _ in 0..40 {
        let mut out = 0usize;
        while let Some(o) = h.server.poll_output() {
            assert!(
                !matches!(o, Output::Close { conn } | Output::Cut { conn } if conn == y),
                "yoda was cut while reading"
            );
            for (conn, bytes) in o.sends() {
                if conn == y {
                    out += bytes.len();
                }
            }
        }
        got += out;
        // Two seconds later, the client has read what came.
        h.now += 2_000;
        h.server.handle_written(y, out, UnixMillis(h.now));
        h.server.handle_timeout(UnixMillis(h.now));
    }
    // 80 s without a byte from yoda, far beyond idle + timeout, and he is still served.
    let mut rest = 0usize;
    while let Some(o) = h.server.poll_output() {
        assert!(
            !matches!(o, Output::Close { conn } | Output::Cut { conn } if conn == y),
            "yoda was cut while reading"
        );
        rest += o
            .sends()
            .iter()
            .filter(|(c, _)| *c == y)
            .map(|(_, b)| b.len())
            .sum::<usize>();
    }
    assert!(got + rest > 50_000, "the listing went on ({got} bytes)");
    assert!(got + rest < 1_500_000, "and is not over yet ({got} bytes)");
    assert_eq!(h.server.online_count(), 1);
}
