//! Issue 10 item 2: the disk fills up mid-session and is freed again.
//!
//! Clients post as fast as their replies come. At 3 s the simulated disk turns full (every
//! write fails), at 8 s it is freed. The server must neither stop nor acknowledge what it did
//! not store: every `250` post is on disk at the end, no post answered `452` (or cut short by `421`) is, posts are
//! refused while the disk is full and accepted again after it is freed — by itself, through
//! the core's probe.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::SimClient;
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::server_host::{ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;

const USERS: [(&str, &str); 3] = [("yoda", "jedi"), ("luke", "r2d2"), ("leia", "alderaan")];
const FULL_AT_MS: u64 = 3_000;
const FREE_AT_MS: u64 = 8_000;
const STOP_MS: u64 = 12_000;

#[derive(Debug, Default)]
struct Ledger {
    acknowledged: Vec<String>,
    refused: Vec<String>,
    /// Posts whose connection was closed instead of an answer.
    cut_short: Vec<String>,
    acknowledged_after_free: usize,
    reconnects: usize,
}

async fn poster(i: usize, trace: Trace, ledger: Rc<RefCell<Ledger>>) -> turmoil::Result {
    let (user, password) = USERS[i];
    let host = format!("client{i}");
    let mut n = 0;
    while clock::elapsed_ms() < STOP_MS {
        let mut c = SimClient::connect_retrying(&host, &trace, Duration::from_millis(10)).await;
        if c.login(user, password).await.is_err() {
            continue;
        }
        while clock::elapsed_ms() < STOP_MS {
            n += 1;
            let text = format!("{user} post {n}");
            let Ok(reply) = c.command(&format!("MSG {text}")).await else {
                // Closed (421) after a batch that could not be stored: not acknowledged, and
                // not stored either; log in again.
                ledger.borrow_mut().cut_short.push(text);
                break;
            };
            {
                let mut l = ledger.borrow_mut();
                match reply.code.get() {
                    250 => {
                        l.acknowledged.push(text);
                        if clock::elapsed_ms() > FREE_AT_MS {
                            l.acknowledged_after_free += 1;
                        }
                    }
                    452 => l.refused.push(text),
                    other => panic!("{user}: unexpected {other}: {reply:?}"),
                }
            }
            let r = c.command("RDM 01 Jan 2000 00:00:00").await;
            if r.is_err() {
                break;
            }
            c.idle(Duration::from_millis(50)).await;
        }
        ledger.borrow_mut().reconnects += 1;
    }
    Ok(())
}

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("full_disk", seed);
    let mut sim = sim::builder(seed, Duration::from_millis(STOP_MS + 30_000))
        .tick_duration(Duration::from_millis(2))
        .build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    let creds: String = USERS.iter().map(|(u, p)| format!("{u} {p}\n")).collect();
    disk.preload(DataFile::Credentials, &creds);
    ServerHost::new(sim_config(seed), disk.clone(), trace.clone()).install(&mut sim);
    let ledger: Rc<RefCell<Ledger>> = Rc::default();
    for i in 0..USERS.len() {
        sim.client(
            format!("client{i}").as_str(),
            poster(i, trace.clone(), ledger.clone()),
        );
    }
    let switch = disk.clone();
    sim.client("operator", async move {
        clock::sleep_until(clock::at(FULL_AT_MS)).await;
        switch.set_full(true);
        clock::sleep_until(clock::at(FREE_AT_MS)).await;
        switch.set_full(false);
        Ok(())
    });
    sim::run(&mut sim, "full_disk", seed);

    let l = ledger.borrow();
    let log = disk.durable(DataFile::MessageLog);
    for text in &l.acknowledged {
        assert!(
            log.contains(&format!("; {text};")),
            "acknowledged, lost: {text}"
        );
    }
    for text in l.refused.iter().chain(&l.cut_short) {
        assert!(
            !log.contains(&format!("; {text};")),
            "refused, stored: {text}"
        );
    }
    assert!(!l.refused.is_empty(), "posts refused while full: {l:?}");
    assert!(l.acknowledged_after_free > 0, "posts accepted after: {l:?}");
    assert!(
        l.reconnects >= 1,
        "the failed batch's connections were closed"
    );
}

#[test]
fn a_full_disk_refuses_posts_acknowledges_nothing_unstored_and_recovers() {
    for seed in sim::seeds(3, 2, 5) {
        run_one(seed);
    }
}
