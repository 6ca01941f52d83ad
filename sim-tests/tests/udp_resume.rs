//! An upload cut by a partition that never heals, then sent again once the path is back: the
//! audience — asked this time, answering after a while — resumes from what it kept, over a
//! lossy path, and the file arrives byte-identical. The whole story runs through the client
//! cores, the server and turmoil's network, seeded.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::client::{AcceptPolicy, ConsentPolicy};
use huddle_core::transfer::TransferConfig;
use huddle_core::transfer::netem::NetemConfig;
use huddle_sim_tests::client_host::{Files, SharedFiles, SimClient, UdpOptions};
use huddle_sim_tests::clock;
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::upload_world;
use huddle_sim_tests::sim::{self, SeedGuard};

const SIZE: usize = 3 << 20;

fn video(seed: u64) -> Bytes {
    let mut rng = Rng::new(seed, 0xF11E);
    (0..SIZE).map(|_| rng.next_u64() as u8).collect()
}

struct Outcome {
    alice: Vec<(u64, String)>,
    bob: Vec<(u64, String)>,
    bob_files: SharedFiles,
}

fn run_one(seed: u64) -> Outcome {
    let _guard = SeedGuard::new("udp_resume", seed);
    let (mut sim, trace) = upload_world(
        seed,
        Duration::from_secs(240),
        "alice wonder\nbob builder\n",
    );
    let transfer = TransferConfig {
        idle_timeout_ms: 5_000,
        max_rate: Some(1_000_000),
        seed,
        ..TransferConfig::default()
    };
    let alice_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    alice_files
        .borrow_mut()
        .sources
        .insert("clip.mp4".into(), video(seed));
    let bob_files: SharedFiles = Rc::default();
    let options = |files: &SharedFiles, stream: u64| UdpOptions {
        port: 6000,
        netem: NetemConfig {
            latency_ms: 0,
            jitter_ms: 5,
            loss: 0.03,
            seed: seed ^ stream,
            ..NetemConfig::default()
        },
        transfer: transfer.clone(),
        consent: ConsentPolicy {
            accept: if stream == 2 {
                AcceptPolicy::Ask
            } else {
                AcceptPolicy::Always
            },
            ..ConsentPolicy::default()
        },
        files: files.clone(),
    };
    let shown_alice = Rc::new(RefCell::new(Vec::new()));
    let shown_bob = Rc::new(RefCell::new(Vec::new()));
    let phase = Rc::new(RefCell::new(0u8));

    let (t, o, shown, ph) = (
        trace.clone(),
        options(&bob_files, 2),
        shown_bob.clone(),
        phase.clone(),
    );
    sim.client("bob", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("bob", &t, Some(o)).await?;
        c.login("bob", "builder").await.expect("bob logs in");
        *ph.borrow_mut() = 1;
        // Two uploads come; each is asked about, and answered after twenty seconds.
        for _ in 0..2 {
            let limit = clock::now().plus_millis(120_000);
            while !c.is_transferring() && clock::now() < limit {
                c.idle(Duration::from_millis(10)).await;
            }
            c.idle(Duration::from_secs(20)).await;
            c.say("y").await;
            c.wait_transfers(clock::now().plus_millis(120_000)).await;
            *ph.borrow_mut() += 1;
        }
        c.logout().await;
        *shown.borrow_mut() = c.shown().to_vec();
        Ok(())
    });
    let (t, o, shown, ph) = (
        trace.clone(),
        options(&alice_files, 1),
        shown_alice.clone(),
        phase.clone(),
    );
    sim.client("alice", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("alice", &t, Some(o)).await?;
        c.login("alice", "wonder").await.expect("alice logs in");
        while *ph.borrow() < 1 {
            c.idle(Duration::from_millis(10)).await;
        }
        let reply = c.command("UPD bob clip.mp4").await.expect("UPD answered");
        assert_eq!(reply.code.get(), 227);
        c.wait_transfers(clock::now().plus_millis(120_000)).await;
        // The path is back (the driver below repairs it): send again.
        while *ph.borrow() < 2 {
            c.idle(Duration::from_millis(10)).await;
        }
        c.idle(Duration::from_secs(1)).await;
        let reply = c.command("UPD bob clip.mp4").await.expect("UPD answered");
        assert_eq!(reply.code.get(), 227);
        c.wait_transfers(clock::now().plus_millis(120_000)).await;
        c.logout().await;
        *shown.borrow_mut() = c.shown().to_vec();
        Ok(())
    });

    // Cut the path between the clients once a third of the file arrived; heal it once both
    // gave up.
    let received = || {
        bob_files
            .borrow()
            .parts
            .values()
            .map(|(_, d)| d.len())
            .sum::<usize>()
    };
    while received() < SIZE / 3 {
        assert!(sim.elapsed() < Duration::from_secs(120), "never got going");
        sim.step()
            .unwrap_or_else(|e| panic!("udp_resume seed {seed}: {e}"));
    }
    sim.partition("alice", "bob");
    while *phase.borrow() < 2 {
        assert!(sim.elapsed() < Duration::from_secs(200), "nobody gave up");
        sim.step()
            .unwrap_or_else(|e| panic!("udp_resume seed {seed}: {e}"));
    }
    sim.repair("alice", "bob");
    sim::run(&mut sim, "udp_resume", seed);
    Outcome {
        alice: shown_alice.borrow().clone(),
        bob: shown_bob.borrow().clone(),
        bob_files,
    }
}

fn said(shown: &[(u64, String)], what: &str) -> bool {
    shown.iter().any(|(_, s)| s.contains(what))
}

#[test]
fn a_cut_upload_sent_again_resumes_from_what_the_audience_kept() {
    for seed in sim::seeds(51, 1, 3) {
        let o = run_one(seed);
        let files = o.bob_files.borrow();
        assert_eq!(
            files.saved.get("alice_clip.mp4"),
            Some(&video(seed)),
            "seed {seed}: the file arrives whole; bob saw {:?}",
            o.bob
        );
        assert!(
            files.kept.is_empty() && files.parts.is_empty(),
            "seed {seed}"
        );
        assert!(
            said(&o.bob, "the peer went silent") && said(&o.bob, "received are kept"),
            "seed {seed}: {:?}",
            o.bob
        );
        assert!(said(&o.bob, "Resuming clip.mp4 from alice"), "{:?}", o.bob);
        assert!(
            said(&o.alice, "Waiting for bob to accept clip.mp4"),
            "{:?}",
            o.alice
        );
        assert!(
            said(&o.alice, "of it already"),
            "seed {seed}: {:?}",
            o.alice
        );
    }
}
