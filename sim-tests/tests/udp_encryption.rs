//! Uploads are end-to-end encrypted, as Sans-IO state driven by the simulator: two client
//! hosts over a lossy path, a tap on every datagram each sends. The file (a recognisable
//! repeating pattern) and its name never cross the wire in clear, the copy that arrives is
//! byte-identical, and the same seed replays the same handshake and the same ciphertexts.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use huddle_core::transfer::TransferConfig;
use huddle_core::transfer::netem::NetemConfig;
use huddle_sim_tests::client_host::{Files, SharedFiles, SimClient, UdpOptions};
use huddle_sim_tests::clock;
use huddle_sim_tests::server_host::upload_world;
use huddle_sim_tests::sim::{self, SeedGuard};

const PATTERN: &[u8] = b"SIM-VIDEO-PATTERN-0123456789";
const NAME: &str = "secret-plans.mp4";

fn video() -> Bytes {
    Bytes::from(PATTERN.repeat(300_000 / PATTERN.len()))
}

/// What crossed the wire, both ways, and whether the file arrived.
struct Wire {
    alice: Vec<Bytes>,
    bob: Vec<Bytes>,
    arrived: Option<Bytes>,
}

fn run_one(seed: u64) -> Wire {
    let _guard = SeedGuard::new("udp_encryption", seed);
    let (mut sim, trace) = upload_world(
        seed,
        Duration::from_secs(120),
        "alice wonder\nbob builder\n",
    );
    let files = |sources: &[(&str, Bytes)]| -> SharedFiles {
        let mut f = Files {
            record_wire: true,
            ..Files::default()
        };
        for (path, data) in sources {
            f.sources.insert((*path).into(), data.clone());
        }
        Rc::new(RefCell::new(f))
    };
    let alice_files = files(&[(NAME, video())]);
    let bob_files = files(&[]);
    let options = |files: &SharedFiles, stream: u64| UdpOptions {
        port: 6000,
        netem: NetemConfig {
            latency_ms: 0,
            jitter_ms: 5,
            loss: 0.05,
            reorder: 0.05,
            reorder_delay_ms: 20,
            seed: seed ^ stream,
            ..NetemConfig::default()
        },
        transfer: TransferConfig {
            seed,
            ..TransferConfig::default()
        },
        files: files.clone(),
        ..UdpOptions::default()
    };
    let ready = Rc::new(RefCell::new(false));
    let (t, o, r) = (trace.clone(), options(&bob_files, 2), ready.clone());
    sim.client("bob", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("bob", &t, Some(o)).await?;
        c.login("bob", "builder").await.expect("bob logs in");
        *r.borrow_mut() = true;
        let limit = clock::at(100_000);
        while !c.is_transferring() && clock::now() < limit {
            c.idle(Duration::from_millis(10)).await;
        }
        c.wait_transfers(limit).await;
        c.logout().await;
        Ok(())
    });
    let (t, o) = (trace.clone(), options(&alice_files, 1));
    sim.client("alice", async move {
        clock::sleep_until(clock::at(100)).await;
        let mut c = SimClient::connect_with("alice", &t, Some(o)).await?;
        c.login("alice", "wonder").await.expect("alice logs in");
        while !*ready.borrow() {
            c.idle(Duration::from_millis(10)).await;
        }
        let reply = c.command(&format!("UPD bob {NAME}")).await;
        assert_eq!(reply.map(|r| r.code.get()).ok(), Some(227));
        c.wait_transfers(clock::at(100_000)).await;
        c.logout().await;
        Ok(())
    });
    sim::run(&mut sim, "udp_encryption", seed);
    let arrived = bob_files
        .borrow()
        .saved
        .get(&format!("alice_{NAME}"))
        .cloned();
    let alice = alice_files.borrow().wire.clone();
    let bob = bob_files.borrow().wire.clone();
    Wire {
        alice,
        bob,
        arrived,
    }
}

fn windows() -> HashSet<Vec<u8>> {
    let thrice = PATTERN.repeat(3);
    (0..PATTERN.len())
        .map(|i| thrice[i..i + 12].to_vec())
        .collect()
}

#[test]
fn an_upload_crosses_the_simulated_wire_encrypted_and_arrives_whole() {
    let windows = windows();
    for seed in sim::seeds(41, 1, 4) {
        let w = run_one(seed);
        assert_eq!(w.arrived, Some(video()), "seed {seed}: the file arrives");
        assert!(w.alice.len() > 200 && !w.bob.is_empty(), "seed {seed}");
        for d in w.alice.iter().chain(&w.bob) {
            assert!(
                !d.windows(12).any(|x| windows.contains(x)),
                "seed {seed}: the file crossed the wire in clear"
            );
            assert!(
                !d.windows(NAME.len()).any(|x| x == NAME.as_bytes()),
                "seed {seed}: its name crossed the wire"
            );
        }
    }
}

#[test]
fn the_same_seed_replays_the_same_handshake_and_ciphertexts() {
    let (a, b) = (run_one(43), run_one(43));
    assert_eq!(a.arrived, Some(video()));
    assert!(
        a.alice == b.alice,
        "the presenter's datagrams differ between runs"
    );
    assert!(
        a.bob == b.bob,
        "the audience's datagrams differ between runs"
    );
    // Another seed: other keys, other ciphertexts.
    let c = run_one(44);
    assert!(
        a.alice[0] != c.alice[0],
        "the Hello should differ with the seed"
    );
}
