//! A connection that does not log in within the login timeout is closed by the server on its
//! own — the core asks to be woken (`poll_timeout`) and the driver wakes it — exactly when the
//! timeout ends, whether it stalls at the user name or at the password; a user who logged in
//! in time may stay idle for longer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::client::{ExitStatus, Prompt};
use huddle_core::server::{ConnId, Output, Server};
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::{SimClient, Step};
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::server_host::{InputSeen, Probe, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;
use huddle_sim_tests::views::BEGINNING;

const TIMEOUT_MS: u64 = 30_000;

/// When each connection was accepted, and when and on what input the server closed it.
#[derive(Debug, Default)]
struct Closings {
    opened: BTreeMap<ConnId, (IpAddr, u64)>,
    /// (peer, opened at, closed at, closed on a timer wake-up)
    closed: Vec<(IpAddr, u64, u64, bool)>,
}

impl Probe for Closings {
    fn after_input(&mut self, _server: &Server, input: &InputSeen<'_>, outputs: &[Output]) {
        let now = clock::elapsed_ms();
        if let InputSeen::Connect { conn, peer } = input {
            self.opened.insert(*conn, (peer.ip(), now));
        }
        for out in outputs {
            if let Output::Close { conn } = out {
                let (ip, at) = self.opened[conn];
                let by_timer = matches!(input, InputSeen::Timeout);
                self.closed.push((ip, at, now, by_timer));
            }
        }
    }
}

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("login_timeout", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(120)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    disk.preload(DataFile::Credentials, "ann pw\nbob pw\n");
    let closings = Rc::new(RefCell::new(Closings::default()));
    let mut config = sim_config(seed);
    config.login_timeout_millis = TIMEOUT_MS;
    ServerHost::new(config, disk, trace.clone())
        .with_probe(closings.clone())
        .install(&mut sim);

    let t = trace.clone();
    sim.client("lurker", async move {
        clock::sleep_until(clock::at(1_234)).await;
        let mut c = SimClient::connect("lurker", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        c.idle(Duration::from_millis(TIMEOUT_MS + 5_000)).await;
        assert_eq!(c.exit_status(), Some(&ExitStatus::ServerClosed));
        assert!(c.shown().iter().any(|(_, s)| s.contains("Login timed out")));
        Ok(())
    });
    let t = trace.clone();
    sim.client("halfway", async move {
        clock::sleep_until(clock::at(2_345)).await;
        let mut c = SimClient::connect("halfway", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        assert_eq!(c.say("ann").await.step, Step::Prompt(Prompt::Password));
        c.idle(Duration::from_millis(TIMEOUT_MS + 5_000)).await;
        assert_eq!(c.exit_status(), Some(&ExitStatus::ServerClosed));
        Ok(())
    });
    let t = trace.clone();
    sim.client("member", async move {
        clock::sleep_until(clock::at(3_456)).await;
        let mut c = SimClient::connect("member", &t).await?;
        c.login("bob", "pw").await.expect("login in time");
        c.idle(Duration::from_millis(3 * TIMEOUT_MS)).await;
        let r = c.command(&format!("RDM {BEGINNING}")).await;
        assert!(r.is_ok(), "a logged-in user is never timed out: {r:?}");
        c.logout().await;
        Ok(())
    });
    let ip = |h: &str| sim.lookup(h);
    let (lurker, halfway, member) = (ip("lurker"), ip("halfway"), ip("member"));
    sim::run(&mut sim, "login_timeout", seed);

    let c = closings.borrow();
    for who in [lurker, halfway] {
        let (_, opened, closed, by_timer) = c
            .closed
            .iter()
            .copied()
            .find(|(ip, ..)| *ip == who)
            .expect("the stalled connection was closed");
        assert_eq!(closed - opened, TIMEOUT_MS, "closed exactly at the timeout");
        assert!(by_timer, "closed by the server's own wake-up");
    }
    let (_, _, _, by_timer) = c
        .closed
        .iter()
        .copied()
        .find(|(ip, ..)| *ip == member)
        .expect("OUT closes the member's connection");
    assert!(!by_timer, "the member left by OUT, not by the timeout");
}

#[test]
fn a_connection_that_does_not_log_in_in_time_is_closed_exactly_at_the_timeout() {
    for seed in sim::seeds(8, 2, 10) {
        run_one(seed);
    }
}
