//! Requests pipelined on one connection are answered one by one, in order, and pushed events
//! never land inside a multi-line reply — whatever the chunking of the bytes on the wire.
//!
//! The client core sends one request at a time, so this scenario speaks the protocol raw, as
//! a person pasting lines into `nc` would: three users each write their whole session (login,
//! thirty commands — some over the 8 KiB line limit, some not UTF-8 — and `OUT`) in random
//! chunks with random pauses, while the others' posts and private messages are pushed to them.

use std::time::Duration;

use huddle_core::proto::event::{is_event_line, parse_event};
use huddle_core::proto::reply::{Reply, ReplyAssembler};
use huddle_core::store::DataFile;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::{PORT, SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;
use huddle_sim_tests::views::BEGINNING;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

const USERS: [&str; 3] = ["ann", "bob", "cat"];

/// What a reply to each request must look like.
#[derive(Debug, Clone)]
enum Want {
    Code(u16),
    Posted,
    Listing,
    Private,
}

fn session(i: usize, rng: &mut Rng) -> (Vec<u8>, Vec<Want>) {
    let me = USERS[i];
    let other = USERS[(i + 1) % USERS.len()];
    let mut bytes = format!("{me}\npw\n").into_bytes();
    let mut want = vec![Want::Code(331), Want::Code(332), Want::Code(230)];
    for k in 0..30 {
        let (line, w) = match rng.range(0, 12) {
            0..=3 => (
                format!("MSG {me} says {k}; fine").into_bytes(),
                Want::Posted,
            ),
            4 | 5 => (format!("RDM {BEGINNING}").into_bytes(), Want::Listing),
            6 | 7 => (format!("PVT {other} psst {k}").into_bytes(), Want::Private),
            8 | 9 => (b"ATU".to_vec(), Want::Code(250)),
            // A line over the 8 KiB limit is refused and skipped; the connection goes on.
            10 => (
                format!("MSG {}", "x".repeat(9_000)).into_bytes(),
                Want::Code(503),
            ),
            // So is one that is not UTF-8.
            _ => (b"MSG caf\xe9 au lait".to_vec(), Want::Code(503)),
        };
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        want.push(w);
    }
    bytes.extend_from_slice(b"OUT\n");
    want.push(Want::Code(221));
    (bytes, want)
}

fn check(reply: &Reply, want: &Want, last_post: &mut u32, who: &str, k: usize) {
    let text = reply.text();
    let ok = match want {
        Want::Code(c) => reply.code.get() == *c,
        Want::Posted => {
            // Numbers grow for one poster (nobody deletes here).
            let n: Option<u32> = text
                .strip_prefix("Message #")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok());
            let grew = n.is_some_and(|n| n > *last_post);
            if let Some(n) = n {
                *last_post = n;
            }
            reply.code.get() == 250 && grew
        }
        Want::Listing => reply.code.get() == 250 && text.contains(BEGINNING),
        Want::Private => reply.code.get() == 250 && text.contains("rivate message"),
    };
    assert!(
        ok,
        "{who}: reply {k} {reply:?} does not answer request {k} ({want:?})"
    );
}

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("pipelined_requests", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(60)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    let creds: String = USERS.iter().map(|u| format!("{u} pw\n")).collect();
    disk.preload(DataFile::Credentials, &creds);
    ServerHost::new(sim_config(seed), disk, trace).install(&mut sim);

    let events = std::rc::Rc::new(std::cell::Cell::new(0usize));
    for (i, &who) in USERS.iter().enumerate() {
        let events = events.clone();
        sim.client(who, async move {
            let mut rng = Rng::new(seed, i as u64);
            let (script, wants) = session(i, &mut rng);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let stream = TcpStream::connect((SERVER, PORT)).await?;
            let (mut rd, mut wr) = stream.into_split();
            let writer = tokio::task::spawn_local(async move {
                let bytes = script;
                let mut at = 0;
                while at < bytes.len() {
                    let n = (rng.range(1, 200) as usize).min(bytes.len() - at);
                    wr.write_all(&bytes[at..at + n]).await?;
                    at += n;
                    tokio::time::sleep(Duration::from_millis(rng.range(0, 30))).await;
                }
                Ok::<_, std::io::Error>(wr)
            });
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match rd.read(&mut buf).await? {
                    0 => break,
                    n => received.extend_from_slice(&buf[..n]),
                }
            }
            drop(writer.await??);
            let text = String::from_utf8(received).expect("UTF-8 from the server");
            let mut asm = ReplyAssembler::new();
            let mut replies = Vec::new();
            for line in text.lines() {
                if is_event_line(line) {
                    assert!(
                        !asm.is_pending(),
                        "{who}: an event inside a multi-line reply: {line:?}"
                    );
                    assert!(parse_event(line).is_some(), "unparsable event {line:?}");
                    events.set(events.get() + 1);
                } else if let Some(r) = asm.push(line).expect("reply lines") {
                    replies.push(r);
                }
            }
            assert_eq!(
                replies.len(),
                wants.len(),
                "{who}: one reply per request: {replies:?}"
            );
            let mut last_post = 0;
            for (k, (r, w)) in replies.iter().zip(&wants).enumerate() {
                check(r, w, &mut last_post, who, k);
            }
            Ok(())
        });
    }
    sim::run(&mut sim, "pipelined_requests", seed);
    assert!(
        events.get() > 10,
        "few events interleaved: {}",
        events.get()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order_and_events_never_split_a_reply() {
    for seed in sim::seeds(7, 3, 20) {
        run_one(seed);
    }
}
