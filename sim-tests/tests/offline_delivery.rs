//! Scenario 5 (issue 5): offline delivery under churn.
//!
//! Users log in and out at random while the others send them private messages. A message to
//! an online user is pushed at once; to an offline one it is stored and pushed at the next
//! login. Whatever the timing, every acknowledged private message reaches its recipient
//! exactly once, and the messages of one sender arrive in the order they were sent.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::proto::event::Event;
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::{SimClient, Step};
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::{SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;

const USERS: usize = 8;

fn user(i: usize) -> String {
    format!("u{i}")
}

/// What was sent (acknowledged) and what arrived.
#[derive(Debug, Default)]
struct Mail {
    /// (from, to) → texts in the order the sender's requests were acknowledged.
    sent: BTreeMap<(String, String), Vec<String>>,
    /// (from, to) → texts in the order the recipient was shown them.
    received: BTreeMap<(String, String), Vec<String>>,
    live: u32,
    stored: u32,
}

async fn churn(
    i: usize,
    seed: u64,
    stop_ms: u64,
    trace: Trace,
    mail: Rc<RefCell<Mail>>,
) -> turmoil::Result {
    let mut rng = Rng::new(seed, i as u64);
    let me = user(i);
    let host = format!("h{i}");
    let mut counts = [0u32; USERS];
    let mut last_round = false;
    loop {
        let mut c = SimClient::connect_retrying(&host, &trace, Duration::from_millis(10)).await;
        c.login(&me, "pw").await.expect("login");
        if last_round {
            // Stored letters are pushed right after the welcome; a reply marks their end.
            c.command("ATU").await.expect("ATU");
        } else {
            let leave = clock::now().plus_millis(rng.range(200, 5_000));
            while clock::now() < leave && clock::elapsed_ms() < stop_ms {
                c.idle(Duration::from_millis(rng.range(20, 800))).await;
                let mut to = rng.index(USERS);
                if to == i {
                    to = (to + 1) % USERS;
                }
                counts[to] += 1;
                let text = format!("{me}->{} no. {}", user(to), counts[to]);
                let reply = c
                    .command(&format!("PVT {} {text}", user(to)))
                    .await
                    .unwrap_or_else(|t| panic!("{me}: PVT got no reply: {t:?}"));
                assert_eq!(reply.code.get(), 250, "{me}: {reply:?}");
                let mut m = mail.borrow_mut();
                if reply.text().contains("is offline") {
                    m.stored += 1;
                } else {
                    m.live += 1;
                }
                m.sent.entry((me.clone(), user(to))).or_default().push(text);
            }
        }
        let turn = c.logout().await;
        assert_eq!(
            turn.step,
            Step::Exit(huddle_core::client::ExitStatus::LoggedOut)
        );
        {
            let mut m = mail.borrow_mut();
            for e in c.take_events() {
                if let Event::Private { from, text, .. } = e {
                    let key = (from.as_str().to_string(), me.clone());
                    m.received.entry(key).or_default().push(text);
                }
            }
        }
        if last_round {
            return Ok(());
        }
        c.idle(Duration::ZERO).await;
        let back = clock::now().plus_millis(rng.range(200, 5_000));
        clock::sleep_until(back).await;
        if clock::elapsed_ms() >= stop_ms {
            // Everyone has stopped sending by now; one last login collects what waits.
            clock::sleep_until(clock::at(stop_ms + 10_000)).await;
            last_round = true;
        }
    }
}

fn run_one(seed: u64, stop_ms: u64) {
    let _guard = SeedGuard::new("offline_delivery", seed);
    let mut sim = sim::builder(seed, Duration::from_millis(stop_ms + 60_000))
        .tick_duration(Duration::from_millis(2))
        .build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    let creds: String = (0..USERS).map(|i| format!("{} pw\n", user(i))).collect();
    disk.preload(DataFile::Credentials, &creds);
    ServerHost::new(sim_config(seed), disk.clone(), trace.clone()).install(&mut sim);
    let mail: Rc<RefCell<Mail>> = Rc::default();
    let mut rng = Rng::new(seed, 555);
    for i in 0..USERS {
        let host = format!("h{i}");
        sim.client(
            host.as_str(),
            churn(i, seed, stop_ms, trace.clone(), mail.clone()),
        );
        let latency = Duration::from_millis(rng.range(1, 150));
        sim.set_link_max_message_latency(host.as_str(), SERVER, latency);
    }
    sim::run(&mut sim, "offline_delivery", seed);

    let m = mail.borrow();
    for (pair, sent) in &m.sent {
        let got = m.received.get(pair).cloned().unwrap_or_default();
        assert_eq!(
            &got, sent,
            "{} → {}: every message exactly once, in the order sent",
            pair.0, pair.1
        );
    }
    for pair in m.received.keys() {
        assert!(m.sent.contains_key(pair), "{pair:?}: received, never sent");
    }
    assert!(
        m.live > 20 && m.stored > 20,
        "both paths exercised: {} live, {} stored",
        m.live,
        m.stored
    );
    assert!(
        disk.durable(DataFile::Inbox).is_empty(),
        "nothing is left waiting after everyone logged in"
    );
}

#[test]
fn every_private_message_is_delivered_exactly_once_in_order_per_sender_under_churn() {
    let stop_ms = if sim::soak() > 0 { 600_000 } else { 60_000 };
    for seed in sim::seeds(5, 2, 5) {
        run_one(seed, stop_ms);
    }
}
