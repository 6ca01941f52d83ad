//! Guessing is throttled per address too (issue 10, item 5), in virtual time: failed logins
//! from one address across names are slowed with growing delays, loopback is exempt, the
//! per-name lockout is unchanged; plaintext passwords become Argon2id hashes at the first
//! login; passwords are compared in Unicode NFC.

use super::*;

fn connect_from(h: &mut Harness, ip: &str) -> ConnId {
    h.next_port += 1;
    let peer: SocketAddr = format!("{ip}:{}", h.next_port).parse().unwrap();
    let c = h.server.handle_connect(peer, UnixMillis(h.now));
    h.drain();
    h.take(c);
    c
}

/// One wrong password for `name` on a fresh connection from `ip`; the reply.
fn guess(h: &mut Harness, ip: &str, name: &str) -> String {
    let c = connect_from(h, ip);
    h.say(c, name);
    let r = h.say(c, "not-the-password");
    // Gone, so the address's cap on connections that have not logged in is not what stops it.
    h.server.handle_disconnect(c, UnixMillis(h.now));
    h.drain();
    r
}

#[test]
fn failed_logins_from_one_address_are_slowed_with_growing_delays_across_names() {
    let mut h = Harness::new();
    // Ten failures, spread over names so that no name is locked: free.
    for i in 0..10 {
        let name = ["luke", "leia", "han", "yoda"][i % 4];
        let r = guess(&mut h, "127.0.0.2", name);
        assert!(r.starts_with("43"), "{i}: {r}");
        assert!(!r.contains("your address"), "{i}: {r}");
        h.advance(5_000);
    }
    // The eleventh says the next password waits.
    h.advance(10_000);
    let c = connect_from(&mut h, "127.0.0.2");
    h.say(c, "leia");
    let r = h.say(c, "wrong again");
    assert!(
        r.contains(
            "Too many failed logins from your address: your next password will be checked in 1 s."
        ),
        "{r}"
    );
    // And it does: even the right password is only answered once the delay is over, on any
    // connection from that address.
    let other = connect_from(&mut h, "127.0.0.2");
    h.say(other, "yoda");
    assert_eq!(h.say(other, "jedi"), "", "not answered before its turn");
    h.advance(999);
    h.drain();
    assert_eq!(h.take(other), "");
    h.advance(1);
    h.drain();
    assert!(h.take(other).starts_with("230-Welcome to huddle, yoda!"));
    // Passwords from that address are checked one at a time, a delay apart, and each further
    // failure doubles the delay.
    assert_eq!(h.say(c, "wrong"), "");
    h.advance(999);
    h.drain();
    assert_eq!(h.take(c), "");
    h.advance(1);
    h.drain();
    let r = h.take(c);
    assert!(r.contains("checked in 2 s"), "{r}");
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("too many failed logins from 127.0.0.2")),
        "{:?}",
        h.logs
    );
}

#[test]
fn loopback_is_exempt_and_the_per_name_lockout_is_unchanged() {
    let mut h = Harness::new();
    for round in 0..20 {
        for name in ["luke", "leia", "han"] {
            let r = guess(&mut h, "127.0.0.1", name);
            assert!(!r.contains("your address"), "round {round}: {r}");
        }
        h.advance(10_000);
    }
    // From a counted address the name is still locked after ATTEMPTS failures, for 10 s.
    let me = h.login("luke", "r2d2");
    h.say(me, "OUT");
    let c = connect_from(&mut h, "127.0.0.2");
    h.say(c, "luke");
    h.say(c, "a");
    h.say(c, "b");
    let r = h.say(c, "c");
    assert!(
        r.starts_with("435 Invalid password. Your account has been blocked"),
        "{r}"
    );
    let again = connect_from(&mut h, "127.0.0.1");
    h.say(again, "luke");
    assert!(h.take(again).is_empty());
    h.advance(10_000);
    let c = connect_from(&mut h, "127.0.0.1");
    h.say(c, "luke");
    assert!(h.say(c, "r2d2").starts_with("230-"));
}

#[test]
fn one_address_gets_few_guesses_an_hour_and_cannot_keep_an_account_locked() {
    let mut h = Harness::new();
    // Eight connections from 127.0.0.2 guess luke's password as fast as they are answered,
    // for an hour.
    let conns: Vec<ConnId> = (0..8).map(|_| connect_from(&mut h, "127.0.0.2")).collect();
    let mut failures = 0;
    let mut locked_at_checks = 0;
    for c in &conns {
        h.say(*c, "luke");
    }
    let mut guesses = 0u64;
    for second in 0..3_600u64 {
        for c in &conns {
            let r = h.take(*c);
            failures += r.matches("432 ").count() + r.matches("435 ").count();
        }
        // Every connection always has one guess in flight.
        for c in &conns {
            h.server.handle_bytes(
                *c,
                format!("guess{guesses}\n").as_bytes(),
                UnixMillis(h.now),
            );
            guesses += 1;
        }
        h.drain();
        if second % 60 == 30 {
            // Luke, from elsewhere (exempt), checks whether he can log in.
            let me = connect_from(&mut h, "127.0.0.1");
            if h.say(me, "luke").starts_with("435") {
                locked_at_checks += 1;
            } else {
                assert!(h.say(me, "r2d2").starts_with("230-"));
                h.say(me, "OUT");
            }
        }
        h.advance(1_000);
    }
    // Without the throttle: 8 connections x 3,600 s, thousands. With it: 10 free, then at
    // most one a minute once the delay has grown.
    assert!(failures < 120, "{failures} failed guesses in an hour");
    assert!(
        locked_at_checks <= 6,
        "luke was locked at {locked_at_checks} of 60 checks"
    );
}

#[test]
fn a_plaintext_password_is_rehashed_at_the_first_login_and_every_other_byte_is_kept() {
    let mut files = DataFiles::new();
    let creds = "yoda jedi\r\nluke r2d2\nleia alderaan\n";
    files.insert(DataFile::Credentials, creds);
    let mut h = Harness::with(fast_config(), files);
    let c = h.login("luke", "r2d2");
    let now = h.file(DataFile::Credentials).to_string();
    let lines: Vec<&str> = now.split_inclusive('\n').collect();
    assert_eq!(lines[0], "yoda jedi\r\n");
    assert!(
        lines[1].starts_with("luke $argon2id$v=19$m=64,t=2,p=1$"),
        "{now}"
    );
    assert_eq!(lines[2], "leia alderaan\n");
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("luke's password was stored in clear"))
    );
    h.say(c, "OUT");
    // The hash works, after a restart too; a wrong password is still wrong.
    h.restart();
    let c = h.connect();
    h.say(c, "luke");
    assert!(h.say(c, "r2d3").starts_with("432 "));
    assert!(h.say(c, "r2d2").starts_with("230-"));
    assert_eq!(
        h.file(DataFile::Credentials).matches("$argon2id$").count(),
        1
    );
}

#[test]
fn passwords_are_compared_in_unicode_nfc() {
    let mut files = DataFiles::new();
    // Stored in clear, decomposed (as some systems type it).
    files.insert(DataFile::Credentials, "luke cafe\u{301}\n");
    let mut h = Harness::with(fast_config(), files);
    let c = h.login("luke", "caf\u{e9}");
    h.say(c, "OUT");
    // Signed up decomposed, logged in composed.
    let c = h.connect();
    h.say(c, "rey");
    assert!(h.say(c, "cre\u{300}me").starts_with("230-"));
    h.say(c, "OUT");
    let c = h.connect();
    h.say(c, "rey");
    assert!(h.say(c, "cr\u{e8}me").starts_with("230-"));
}
