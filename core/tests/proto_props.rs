//! Property tests of every wire format and data-file record: render → parse is the identity,
//! and arbitrary bytes never panic a parser or a state machine.

use std::net::SocketAddr;

use huddle_core::client::{Client, ClientConfig, Input};
use huddle_core::proto::event::{Event, parse_event};
use huddle_core::proto::framing::{Frame, LineFramer};
use huddle_core::proto::reply::{Code, Reply, ReplyAssembler, parse_reply_line};
use huddle_core::proto::request::{Request, parse_request, parse_request_str};
use huddle_core::proto::since::{MAX_AGO_MINUTES, Since};
use huddle_core::proto::timestamp::parse_civil_time;
use huddle_core::server::{DataFiles, Server, ServerConfig};
use huddle_core::store::{self, DataFile, PostRecord};
use huddle_core::time::{CivilTime, Timestamp, Zone};
use huddle_core::types::{PostId, PostRef};
use huddle_core::{MessageNumber, UnixMillis, UserName};
use proptest::prelude::*;

fn user() -> impl Strategy<Value = UserName> {
    "[A-Za-z0-9_.-]{1,32}".prop_map(|s| UserName::new(&s).unwrap())
}

/// One line of printable text, never empty: what a message can be.
/// A message a client may send: printable, and nothing a terminal would obey or hide.
fn text() -> impl Strategy<Value = String> {
    "[^\\p{C}\\p{Zl}\\p{Zp}]{1,60}".prop_filter("safe on a terminal", |s| {
        huddle_core::proto::text::check_message(s).is_ok()
    })
}

fn number() -> impl Strategy<Value = MessageNumber> {
    (1u32..1_000_000).prop_map(|n| MessageNumber::new(n).unwrap())
}

/// A post named by number, by id, or both.
fn target() -> impl Strategy<Value = PostRef> {
    prop_oneof![
        number().prop_map(PostRef::Number),
        any::<u64>().prop_map(|i| PostRef::Id(PostId(i % 10_000_000_000_000_000_000))),
        (number(), any::<u32>()).prop_map(|(n, i)| PostRef::Both(n, PostId(u64::from(i)))),
    ]
}

fn civil() -> impl Strategy<Value = CivilTime> {
    (
        1u8..=28,
        1u8..=12,
        1970i32..=2200,
        0u8..24,
        0u8..60,
        0u8..60,
    )
        .prop_map(|(day, month, year, hour, minute, second)| CivilTime {
            day,
            month,
            year,
            hour,
            minute,
            second,
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        text().prop_map(|text| Request::Msg { text }),
        (user(), text()).prop_map(|(to, text)| Request::Pvt { to, text }),
        (target(), civil()).prop_map(|(target, at)| Request::Dlt { target, at }),
        (target(), civil(), text()).prop_map(|(target, at, text)| Request::Edt {
            target,
            at,
            text
        }),
        civil().prop_map(|at| Request::Rdm {
            since: Since::At(at)
        }),
        (1u32..=MAX_AGO_MINUTES).prop_map(|minutes| Request::Rdm {
            since: Since::Ago { minutes }
        }),
        Just(Request::Rdm {
            since: Since::Today
        }),
        Just(Request::Rdm {
            since: Since::LastLogout
        }),
        Just(Request::Atu),
        proptest::option::of(1u32..=100_000).prop_map(|minutes| Request::Rcu { minutes }),
        user().prop_map(|user| Request::Blk { user }),
        user().prop_map(|user| Request::Unb { user }),
        (user(), any::<u64>(), "[A-Za-z0-9_][A-Za-z0-9_ .()-]{0,30}")
            .prop_map(|(to, size, name)| Request::Upd { to, size, name }),
        Just(Request::Out),
        Just(Request::Help),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            number(),
            any::<u64>(),
            civil(),
            user(),
            any::<bool>(),
            text()
        )
            .prop_map(|(number, id, at, author, edited, text)| Event::Post {
                number,
                id: PostId(id),
                at,
                author,
                edited,
                text
            }),
        (number(), any::<u64>(), civil(), user(), text()).prop_map(
            |(number, id, at, author, text)| Event::Edited {
                number,
                id: PostId(id),
                at,
                author,
                text
            }
        ),
        (number(), any::<u64>(), user()).prop_map(|(number, id, author)| Event::Deleted {
            number,
            id: PostId(id),
            author
        }),
        (number(), any::<u64>()).prop_map(|(number, id)| Event::Posted {
            number,
            id: PostId(id)
        }),
        (civil(), user(), text()).prop_map(|(at, from, text)| Event::Private { at, from, text }),
        (any::<u32>(), civil()).prop_map(|(hidden, since)| Event::Backlog { hidden, since }),
        user().prop_map(|user| Event::Online { user }),
        user().prop_map(|user| Event::Offline { user }),
        text().prop_map(|text| Event::Notice { text }),
    ]
}

/// The request strategy covers every command of the table (a command added without a
/// strategy arm fails here). 4,000 draws from a fixed seed: deterministic.
#[test]
fn the_request_strategy_covers_every_command() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = request();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4000 {
        let tree = strategy.new_tree(&mut runner).expect("a request");
        seen.insert(tree.current().command());
    }
    for c in huddle_core::proto::request::Command::ALL {
        assert!(seen.contains(&c), "the request strategy never makes {c}");
    }
}

proptest! {
    #[test]
    fn every_request_round_trips(r in request()) {
        prop_assert_eq!(parse_request_str(&r.to_string()), Ok(r));
    }

    #[test]
    fn every_event_round_trips(e in event()) {
        let wire = e.render();
        prop_assert!(wire.ends_with('\n'));
        prop_assert_eq!(parse_event(wire.trim_end_matches('\n')), Some(e));
    }

    #[test]
    fn every_reply_round_trips(code in 100u16..600, lines in proptest::collection::vec("[^\\p{C}]{0,40}", 1..6)) {
        let reply = Reply::lines(Code::new(code).unwrap(), lines);
        let mut framer = LineFramer::new();
        let mut frames = Vec::new();
        framer.push(reply.render().as_bytes(), &mut frames);
        let mut asm = ReplyAssembler::new();
        let mut got = None;
        for f in frames {
            let Frame::Line(l) = f else { panic!("too long") };
            got = asm.push(std::str::from_utf8(&l).unwrap()).unwrap();
        }
        prop_assert_eq!(got, Some(reply));
    }

    #[test]
    fn every_timestamp_round_trips(c in civil()) {
        prop_assert_eq!(parse_civil_time(&c.to_string()), Some(c));
    }

    #[test]
    fn every_post_record_round_trips(secs in 0i64..7_000_000_000, author in user(), text in text(), edited in any::<bool>(), offset in -50_000i32..50_000) {
        let zone = Zone::from_offset_seconds(offset);
        let rec = PostRecord { number: MessageNumber::new(1).unwrap(), at: Timestamp::from_unix_secs(secs), author, text: text.into(), edited };
        let mut w = Vec::new();
        prop_assert_eq!(store::parse_messagelog(store::render_post(&rec, zone), zone, &mut w), vec![rec]);
        prop_assert!(w.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut framer = LineFramer::new();
        let mut frames = Vec::new();
        for c in &chunks {
            framer.push(c, &mut frames);
        }
        let mut asm = ReplyAssembler::new();
        for f in frames {
            if let Frame::Line(l) = f {
                let _ = parse_request(&l);
                if let Ok(s) = std::str::from_utf8(&l) {
                    let _ = parse_event(s);
                    let _ = parse_reply_line(s);
                    let _ = asm.push(s);
                    let _ = parse_civil_time(s);
                    let mut w = Vec::new();
                    let _ = store::parse_messagelog(s, Zone::UTC, &mut w);
                    let _ = store::parse_credentials(s, &mut w);
                }
            }
        }
    }

    #[test]
    fn neutralised_text_holds_nothing_a_terminal_would_obey(s in any::<String>()) {
        let safe = huddle_core::client::sanitize::neutralise(&s);
        for c in safe.chars() {
            prop_assert!(c == '\n' || huddle_core::proto::text::hazard(c).is_none(), "{:?} in {:?}", c, safe);
        }
    }

    #[test]
    fn arbitrary_text_lines_never_panic_the_request_parser(line in "\\PC{0,80}") {
        let _ = parse_request_str(&line);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_state_machines(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
        let mut files = DataFiles::new();
        files.insert(DataFile::Credentials, "yoda jedi\n");
        let now = UnixMillis(1_795_300_000_000);
        let mut server = Server::new(ServerConfig { hash_memory_kib: 64, ..ServerConfig::default() }, &files, now).expect("the folder is clean");
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let conn = server.handle_connect(peer, now);
        server.handle_bytes(conn, b"yoda\njedi\n", now);
        let mut client = Client::new(ClientConfig::default(), now);
        for c in &chunks {
            server.handle_bytes(conn, c, now);
            client.handle_input(Input::ServerBytes(bytes::Bytes::copy_from_slice(c)), now);
            client.handle_input(Input::UserLine(String::from_utf8_lossy(c).into_owned()), now);
        }
        while server.poll_output().is_some() {}
        while client.poll_output().is_some() {}
    }
}
