//! Scenario 3 (issue 5): uploads between two client hosts over a lossy UDP path.
//!
//! Every datagram either client sends passes a seeded wrapper (the core's `netem`) that drops
//! (1 %, 10 %, 30 %), duplicates, delays and reorders it; turmoil's `fail_rate` would cut the
//! whole link instead, so it is not used. A `partition` between the two hosts mid-transfer
//! either heals (the transfer completes) or does not (both sides give up within their idle
//! timeout). Whatever happens, the file arrives byte-identical or both sides report the
//! failure and the partial file is removed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::transfer::TransferConfig;
use huddle_core::transfer::netem::NetemConfig;
use huddle_sim_tests::client_host::{Files, SharedFiles, SimClient, UdpOptions};
use huddle_sim_tests::clock;
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::upload_world;
use huddle_sim_tests::sim::{self, SeedGuard};

const SIZE: usize = 400_000;
const IDLE_TIMEOUT_MS: u64 = 10_000;

/// What the path does, besides the latency turmoil adds.
fn lossy(loss: f64, seed: u64) -> NetemConfig {
    NetemConfig {
        latency_ms: 0,
        jitter_ms: 15,
        loss,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay_ms: 40,
        seed,
        ..NetemConfig::default()
    }
}

fn video(seed: u64) -> Bytes {
    let mut rng = Rng::new(seed, 0xF11E);
    (0..SIZE).map(|_| rng.next_u64() as u8).collect()
}

/// How the partition, if any, behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    Heals,
    Never,
}

/// What each side saw.
struct Outcome {
    alice: Vec<(u64, String)>,
    bob: Vec<(u64, String)>,
    bob_files: SharedFiles,
    cut_at_ms: Option<u64>,
}

fn run_one(seed: u64, loss: f64, cut: Cut) -> Outcome {
    let _guard = SeedGuard::new("udp_loss", seed);
    let (mut sim, trace) = upload_world(
        seed,
        Duration::from_secs(180),
        "alice wonder\nbob builder\n",
    );

    let transfer = TransferConfig {
        idle_timeout_ms: IDLE_TIMEOUT_MS,
        // Slow enough that a cut lands in the middle of the transfer.
        max_rate: Some(200_000),
        seed,
        ..TransferConfig::default()
    };
    let alice_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    alice_files
        .borrow_mut()
        .sources
        .insert("videos/clip.mp4".into(), video(seed));
    let bob_files: SharedFiles = Rc::default();
    let shown_alice = Rc::new(RefCell::new(Vec::new()));
    let shown_bob = Rc::new(RefCell::new(Vec::new()));

    let options = |files: &SharedFiles, stream: u64| UdpOptions {
        port: 6000,
        netem: lossy(loss, seed ^ stream),
        transfer: transfer.clone(),
        files: files.clone(),
        ..UdpOptions::default()
    };
    let (t, o, shown) = (trace.clone(), options(&bob_files, 2), shown_bob.clone());
    let bob_ready = Rc::new(RefCell::new(false));
    let ready = bob_ready.clone();
    sim.client("bob", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("bob", &t, Some(o)).await?;
        c.login("bob", "builder").await.expect("bob logs in");
        *ready.borrow_mut() = true;
        // Wait for the upload to be announced, then for it to end either way.
        let limit = clock::at(150_000);
        while !c.is_transferring() && clock::now() < limit {
            c.idle(Duration::from_millis(10)).await;
        }
        c.wait_transfers(limit).await;
        c.logout().await;
        *shown.borrow_mut() = c.shown().to_vec();
        Ok(())
    });
    let (t, o, shown) = (trace.clone(), options(&alice_files, 1), shown_alice.clone());
    sim.client("alice", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("alice", &t, Some(o)).await?;
        c.login("alice", "wonder").await.expect("alice logs in");
        while !*bob_ready.borrow() {
            c.idle(Duration::from_millis(10)).await;
        }
        let reply = c
            .command("UPD bob videos/clip.mp4")
            .await
            .expect("UPD is answered");
        assert_eq!(reply.code.get(), 227, "the upload is approved: {reply:?}");
        c.wait_transfers(clock::at(150_000)).await;
        c.logout().await;
        *shown.borrow_mut() = c.shown().to_vec();
        Ok(())
    });

    let mut cut_at_ms = None;
    if cut != Cut::None {
        // Cut the path between the two clients once a third of the file has arrived.
        let received = || {
            bob_files
                .borrow()
                .parts
                .values()
                .map(|(_, d)| d.len())
                .sum::<usize>()
        };
        while received() < SIZE / 3 {
            assert!(
                sim.elapsed() < Duration::from_secs(60),
                "the transfer never got going"
            );
            sim.step()
                .unwrap_or_else(|e| panic!("udp_loss seed {seed}: {e}"));
        }
        sim.partition("alice", "bob");
        let at = sim.elapsed();
        cut_at_ms = Some(at.as_millis() as u64);
        trace.record_at(at.as_millis() as u64, "sim", "partition alice bob");
        if cut == Cut::Heals {
            while sim.elapsed() < at + Duration::from_millis(3_000) {
                sim.step()
                    .unwrap_or_else(|e| panic!("udp_loss seed {seed}: {e}"));
            }
            sim.repair("alice", "bob");
        }
    }
    sim::run(&mut sim, "udp_loss", seed);
    let alice = shown_alice.borrow().clone();
    let bob = shown_bob.borrow().clone();
    Outcome {
        alice,
        bob,
        bob_files,
        cut_at_ms,
    }
}

fn mentions(shown: &[(u64, String)], what: &str) -> Option<u64> {
    shown
        .iter()
        .find(|(_, s)| s.contains(what))
        .map(|(t, _)| *t)
}

fn assert_arrived_whole(o: &Outcome, seed: u64, what: &str) {
    let files = o.bob_files.borrow();
    assert_eq!(
        files.saved.get("alice_clip.mp4"),
        Some(&video(seed)),
        "{what}: the file arrives byte-identical; bob saw {:?}",
        o.bob
    );
    assert!(
        mentions(&o.alice, "clip.mp4 has been uploaded to bob").is_some(),
        "{what}: alice is told: {:?}",
        o.alice
    );
    assert!(
        mentions(
            &o.bob,
            "Received clip.mp4 from alice, saved as alice_clip.mp4"
        )
        .is_some(),
        "{what}: bob is told: {:?}",
        o.bob
    );
}

#[test]
fn an_upload_arrives_byte_identical_through_loss_duplication_and_reordering() {
    for seed in sim::seeds(3, 1, 5) {
        for loss in [0.01, 0.10, 0.30] {
            let o = run_one(seed, loss, Cut::None);
            assert_arrived_whole(&o, seed, &format!("{}% loss", loss * 100.0));
        }
    }
}

#[test]
fn an_upload_completes_after_a_partition_heals() {
    for seed in sim::seeds(31, 1, 5) {
        let o = run_one(seed, 0.05, Cut::Heals);
        assert_arrived_whole(&o, seed, "a healed partition");
    }
}

#[test]
fn both_sides_abort_within_their_timeout_when_a_partition_never_heals() {
    for seed in sim::seeds(32, 1, 5) {
        let o = run_one(seed, 0.05, Cut::Never);
        let cut = o.cut_at_ms.unwrap();
        let alice = mentions(&o.alice, "Upload of clip.mp4 to bob failed")
            .unwrap_or_else(|| panic!("alice is told the upload failed: {:?}", o.alice));
        let bob = mentions(&o.bob, "Upload of clip.mp4 from alice failed")
            .unwrap_or_else(|| panic!("bob is told the upload failed: {:?}", o.bob));
        for (who, at) in [("alice", alice), ("bob", bob)] {
            assert!(
                at > cut && at - cut <= IDLE_TIMEOUT_MS + 1_000,
                "{who} gave up {} ms after the cut (idle timeout {IDLE_TIMEOUT_MS} ms)",
                at - cut
            );
        }
        let files = o.bob_files.borrow();
        assert!(
            files.saved.is_empty() && files.parts.is_empty(),
            "no file is left behind"
        );
        assert_eq!(files.discarded, 1, "the partial file is removed");
    }
}
