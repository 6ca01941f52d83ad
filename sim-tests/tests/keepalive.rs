//! The keepalive over a simulated network (issue 10, item 3): a client whose link goes silent
//! (turmoil holds every segment, as for a stopped process or a half-open connection) is logged
//! out by the server within idle + timeout of its last byte, its name logs in again from
//! elsewhere, and when the link comes back the old client reads why it was disconnected.
//! A client that answers by itself stays however long its user idles.

use std::time::Duration;

use huddle_core::client::ExitStatus;
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::SimClient;
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::server_host::{SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;

const IDLE_MS: u64 = 30_000;
const TIMEOUT_MS: u64 = 20_000;
const HOLD_AT_MS: u64 = 1_000;
const RELEASE_AT_MS: u64 = 70_000;

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("keepalive", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(200)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    disk.preload(DataFile::Credentials, "ann pw\nbob pw\n");
    let mut config = sim_config(seed);
    config.keepalive_idle_millis = IDLE_MS;
    config.keepalive_timeout_millis = TIMEOUT_MS;
    ServerHost::new(config, disk.clone(), trace.clone()).install(&mut sim);

    let t = trace.clone();
    sim.client("ann-laptop", async move {
        let mut c = SimClient::connect_retrying("ann-laptop", &t, Duration::from_millis(10)).await;
        c.login("ann", "pw").await.expect("login");
        // The link is held from HOLD_AT_MS to RELEASE_AT_MS: this client hears nothing, the
        // server hears nothing from it.
        c.idle_until(clock::at(RELEASE_AT_MS + 5_000)).await;
        assert_eq!(c.exit_status(), Some(&ExitStatus::ServerClosed));
        assert!(
            c.shown()
                .iter()
                .any(|(_, s)| s.contains("No answer to the server's keepalive")),
            "{:?}",
            c.shown()
        );
        Ok(())
    });
    let t = trace.clone();
    sim.client("ann-phone", async move {
        // While the old connection still counts, the name is taken...
        clock::sleep_until(clock::at(HOLD_AT_MS + IDLE_MS + TIMEOUT_MS - 3_000)).await;
        let mut c = SimClient::connect("ann-phone", &t).await?;
        let refused = c.login("ann", "pw").await.expect_err("already logged in");
        assert!(
            refused
                .replies
                .iter()
                .any(|r| r.text().contains("already logged in")),
            "{refused:?}"
        );
        // ...and within idle + timeout of the last byte it is free again.
        clock::sleep_until(clock::at(HOLD_AT_MS + IDLE_MS + TIMEOUT_MS + 1_000)).await;
        let mut c = SimClient::connect("ann-phone", &t).await?;
        c.login("ann", "pw").await.expect("the name is free again");
        Ok(())
    });
    let t = trace.clone();
    sim.client("bob", async move {
        let mut c = SimClient::connect_retrying("bob", &t, Duration::from_millis(10)).await;
        c.login("bob", "pw").await.expect("login");
        // Bob only ever answers pings: 3 minutes of silence from his user.
        c.idle(Duration::from_secs(180)).await;
        assert_eq!(c.exit_status(), None, "bob is still logged in");
        c.command("ATU").await.expect("bob is served");
        Ok(())
    });

    while sim.elapsed() < Duration::from_millis(HOLD_AT_MS) {
        sim.step()
            .unwrap_or_else(|e| panic!("keepalive seed {seed}: {e}"));
    }
    sim.hold("ann-laptop", SERVER);
    while sim.elapsed() < Duration::from_millis(RELEASE_AT_MS) {
        sim.step()
            .unwrap_or_else(|e| panic!("keepalive seed {seed}: {e}"));
    }
    sim.release("ann-laptop", SERVER);
    sim.run()
        .unwrap_or_else(|e| panic!("keepalive seed {seed}: {e}"));
    let log = trace.lines().join("\n");
    assert!(log.contains("no answer to a keepalive"), "{log}");
}

#[test]
fn a_silent_client_is_logged_out_within_the_timeout_and_an_answering_one_stays() {
    for seed in sim::seeds(23, 2, 20) {
        run_one(seed);
    }
}
