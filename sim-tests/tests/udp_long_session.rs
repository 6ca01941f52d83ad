//! Issue 8: a long client session with uploads under seeded loss, over turmoil.
//!
//! alice and bob stay logged in while alice sends a series of files to bob, one after the
//! other and sometimes two at once, and bob sends files back meanwhile, on the same sockets.
//! Every datagram passes the core's seeded `netem` (loss, duplication, reordering). Every
//! upload arrives byte-identical under its own name, and both sides are told.

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

/// Uploads alice makes; every third round she starts two at once.
const ALICE_ROUNDS: u64 = 12;
/// Uploads bob makes meanwhile.
const BOB_UPLOADS: u64 = 6;

fn lossy(seed: u64) -> NetemConfig {
    NetemConfig {
        latency_ms: 0,
        jitter_ms: 5,
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.03,
        reorder_delay_ms: 20,
        seed,
        ..NetemConfig::default()
    }
}

/// The UDP side of a client of these scenarios: port 6000, its own stream of `lossy` paths.
fn udp(seed: u64, transfer: &TransferConfig, files: &SharedFiles, stream: u64) -> UdpOptions {
    UdpOptions {
        port: 6000,
        netem: lossy(seed ^ stream),
        transfer: transfer.clone(),
        files: files.clone(),
        ..UdpOptions::default()
    }
}

fn video(seed: u64, n: u64) -> Bytes {
    let mut rng = Rng::new(seed, 0xC11F ^ n);
    let len = 30_000 + (rng.next_u64() % 90_000) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// What one side shows, and the files it ended with.
#[derive(Default)]
struct Side {
    shown: Vec<(u64, String)>,
    /// Logged in: an upload to this side finds it online.
    logged_in: bool,
    done: bool,
}

fn count(shown: &[(u64, String)], what: &str) -> usize {
    shown.iter().filter(|(_, s)| s.contains(what)).count()
}

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("udp_long_session", seed);
    let (mut sim, trace) = upload_world(
        seed,
        Duration::from_secs(600),
        "alice wonder\nbob builder\n",
    );

    let transfer = TransferConfig {
        idle_timeout_ms: 10_000,
        seed,
        ..TransferConfig::default()
    };
    let alice_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    let bob_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    for n in 0..2 * ALICE_ROUNDS {
        alice_files
            .borrow_mut()
            .sources
            .insert(format!("a{n}.mp4"), video(seed, n));
    }
    for n in 0..BOB_UPLOADS {
        bob_files
            .borrow_mut()
            .sources
            .insert(format!("b{n}.mp4"), video(seed, 1000 + n));
    }
    let alice = Rc::new(RefCell::new(Side::default()));
    let bob = Rc::new(RefCell::new(Side::default()));
    let options = |files: &SharedFiles, stream: u64| udp(seed, &transfer, files, stream);

    let (t, o, me, other) = (
        trace.clone(),
        options(&bob_files, 2),
        bob.clone(),
        alice.clone(),
    );
    sim.client("bob", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("bob", &t, Some(o)).await?;
        c.login("bob", "builder").await.expect("bob logs in");
        me.borrow_mut().logged_in = true;
        c.idle(Duration::from_millis(500)).await;
        for n in 0..BOB_UPLOADS {
            let reply = c
                .command(&format!("UPD alice b{n}.mp4"))
                .await
                .expect("UPD is answered");
            assert_eq!(
                reply.code.get(),
                227,
                "bob's upload {n} is approved: {reply:?}"
            );
            // Let it run alongside alice's for a while, sometimes to the end.
            if n % 2 == 0 {
                c.wait_transfers(clock::at(500_000)).await;
            } else {
                c.idle(Duration::from_millis(300)).await;
            }
        }
        me.borrow_mut().done = true;
        while !other.borrow().done {
            c.idle(Duration::from_millis(20)).await;
        }
        c.wait_transfers(clock::at(500_000)).await;
        me.borrow_mut().shown = c.shown().to_vec();
        c.logout().await;
        Ok(())
    });
    let (t, o, me, other) = (
        trace.clone(),
        options(&alice_files, 1),
        alice.clone(),
        bob.clone(),
    );
    sim.client("alice", async move {
        clock::sleep_until(clock::at(200)).await;
        let mut c = SimClient::connect_with("alice", &t, Some(o)).await?;
        c.login("alice", "wonder").await.expect("alice logs in");
        while !other.borrow().logged_in {
            c.idle(Duration::from_millis(20)).await;
        }
        let mut n = 0;
        for round in 0..ALICE_ROUNDS {
            let at_once = if round % 3 == 2 { 2 } else { 1 };
            for _ in 0..at_once {
                let reply = c
                    .command(&format!("UPD bob a{n}.mp4"))
                    .await
                    .expect("UPD is answered");
                assert_eq!(reply.code.get(), 227, "alice's upload {n}: {reply:?}");
                n += 1;
            }
            c.wait_transfers(clock::at(500_000)).await;
        }
        me.borrow_mut().done = true;
        while !other.borrow().done {
            c.idle(Duration::from_millis(20)).await;
        }
        c.wait_transfers(clock::at(500_000)).await;
        me.borrow_mut().shown = c.shown().to_vec();
        c.logout().await;
        Ok(())
    });
    sim::run(&mut sim, "udp_long_session", seed);

    let alice_uploads = (0..ALICE_ROUNDS)
        .map(|r| if r % 3 == 2 { 2 } else { 1 })
        .sum::<u64>();
    let (a, b) = (alice.borrow(), bob.borrow());
    let saved_at_bob = bob_files.borrow();
    for n in 0..alice_uploads {
        assert_eq!(
            saved_at_bob.saved.get(&format!("alice_a{n}.mp4")),
            Some(&video(seed, n)),
            "seed {seed}: alice's upload {n} arrives whole; bob saw {:?}",
            b.shown
        );
    }
    let saved_at_alice = alice_files.borrow();
    for n in 0..BOB_UPLOADS {
        assert_eq!(
            saved_at_alice.saved.get(&format!("bob_b{n}.mp4")),
            Some(&video(seed, 1000 + n)),
            "seed {seed}: bob's upload {n} arrives whole; alice saw {:?}",
            a.shown
        );
    }
    assert_eq!(
        count(&a.shown, "has been uploaded to bob"),
        alice_uploads as usize
    );
    assert_eq!(
        count(&b.shown, "has been uploaded to alice"),
        BOB_UPLOADS as usize
    );
    assert_eq!(count(&a.shown, "failed"), 0, "{:?}", a.shown);
    assert_eq!(count(&b.shown, "failed"), 0, "{:?}", b.shown);
    assert!(saved_at_bob.parts.is_empty() && saved_at_alice.parts.is_empty());
}

#[test]
fn a_long_session_of_sequential_and_overlapping_uploads_under_loss() {
    for seed in sim::seeds(81, 1, 5) {
        run_one(seed);
    }
}

/// Uploads alice pipes in one go, beyond her limit of two at once: the rest wait their turn.
const QUEUED_UPLOADS: u64 = 10;

fn run_queued(seed: u64) {
    let _guard = SeedGuard::new("udp_queued_uploads", seed);
    let (mut sim, trace) = upload_world(
        seed,
        Duration::from_secs(600),
        "alice wonder\nbob builder\n",
    );

    let transfer = TransferConfig {
        idle_timeout_ms: 10_000,
        max_outgoing: 2,
        seed,
        ..TransferConfig::default()
    };
    let alice_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    let bob_files: SharedFiles = Rc::new(RefCell::new(Files::default()));
    for n in 0..QUEUED_UPLOADS {
        alice_files
            .borrow_mut()
            .sources
            .insert(format!("q{n}.mp4"), video(seed, 2000 + n));
    }
    let alice = Rc::new(RefCell::new(Side::default()));
    let bob = Rc::new(RefCell::new(Side::default()));
    let options = |files: &SharedFiles, stream: u64| udp(seed, &transfer, files, stream);

    let (t, o, alice_done, me) = (
        trace.clone(),
        options(&bob_files, 2),
        alice.clone(),
        bob.clone(),
    );
    sim.client("bob", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("bob", &t, Some(o)).await?;
        c.login("bob", "builder").await.expect("bob logs in");
        me.borrow_mut().logged_in = true;
        while !alice_done.borrow().done {
            c.idle(Duration::from_millis(20)).await;
        }
        c.wait_transfers(clock::at(500_000)).await;
        c.logout().await;
        Ok(())
    });
    let (t, o, me) = (trace.clone(), options(&alice_files, 1), alice.clone());
    sim.client("alice", async move {
        clock::sleep_until(clock::at(200)).await;
        let mut c = SimClient::connect_with("alice", &t, Some(o)).await?;
        c.login("alice", "wonder").await.expect("alice logs in");
        while !bob.borrow().logged_in {
            c.idle(Duration::from_millis(20)).await;
        }
        for n in 0..QUEUED_UPLOADS {
            let turn = c.say(&format!("UPD bob q{n}.mp4")).await;
            assert!(
                turn.step.is_command_prompt(),
                "seed {seed}: UPD {n} is answered at once: {turn:?}"
            );
        }
        // OUT lets the queue run first.
        let out = c.logout().await;
        me.borrow_mut().shown = c.shown().to_vec();
        me.borrow_mut().done = true;
        assert!(
            c.exit_status().is_some(),
            "seed {seed}: alice logged out: {out:?}"
        );
        Ok(())
    });
    sim::run(&mut sim, "udp_queued_uploads", seed);

    let a = alice.borrow();
    let saved_at_bob = bob_files.borrow();
    for n in 0..QUEUED_UPLOADS {
        assert!(
            saved_at_bob.saved.get(&format!("alice_q{n}.mp4")) == Some(&video(seed, 2000 + n)),
            "seed {seed}: queued upload {n} arrives whole; alice saw {:?}",
            a.shown
        );
    }
    assert_eq!(
        count(&a.shown, "has been uploaded to bob"),
        QUEUED_UPLOADS as usize
    );
    assert_eq!(
        count(&a.shown, "waits its turn"),
        QUEUED_UPLOADS as usize - 2,
        "{:?}",
        a.shown
    );
    assert_eq!(count(&a.shown, "failed"), 0, "{:?}", a.shown);
    assert!(saved_at_bob.parts.is_empty());
}

#[test]
fn uploads_queued_beyond_the_limit_under_loss_all_arrive_before_out() {
    for seed in sim::seeds(82, 1, 5) {
        run_queued(seed);
    }
}
