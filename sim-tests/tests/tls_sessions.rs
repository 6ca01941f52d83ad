//! Issue 11: whole sessions over TLS in simulated time — the server core's `STARTTLS` path
//! driven by the same loop as the runtimes, the client core upgrading as the real client does.
//!
//! The server requires TLS (turmoil's hosts are not on loopback, so the default rule applies:
//! no login in clear). Three users, each with their own known-hosts file, log in over TLS
//! twice — pinned on first use, then accepted by the pin — post and send private messages;
//! a fourth tries in clear and is refused with `530` before any password. The server crashes
//! and restarts with the same certificate: the pins still hold. Then the operator replaces the
//! certificate: a pinned client is refused with the changed-certificate warning and sends
//! nothing; a client that never met the server pins the new one.
//!
//! Two runs with one seed must agree on everything observable, including the digest of every
//! byte the server wrote on every connection (TLS records included); another seed must give
//! other bytes.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::client::ExitStatus;
use huddle_core::server::PlaintextLogin;
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::{SimClient, SimTls};
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::server_host::{SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::tls::Cert;
use huddle_sim_tests::trace::Trace;

const USERS: [(&str, &str); 3] = [("yoda", "jedi"), ("luke", "r2d2"), ("leia", "alderaan")];

/// Connect over TLS, retrying while the server is down (around a restart).
async fn connect(host: &str, trace: &Trace, tls: &SimTls) -> SimClient {
    loop {
        match SimClient::connect_tls(host, trace, tls).await {
            Ok(c) => return c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One user: two visits over TLS, then (after the restart) a third.
async fn user(i: usize, seed: u64, trace: Trace) -> turmoil::Result {
    let (name, password) = USERS[i];
    let host = format!("client{i}");
    let tls = SimTls::new(seed ^ (i as u64 + 1) << 40);
    for visit in 0..2 {
        let mut c = connect(&host, &trace, &tls).await;
        let welcome = c.login(name, password).await;
        assert!(welcome.is_ok(), "{name} visit {visit}: {welcome:?}");
        let other = USERS[(i + 1) % USERS.len()].0;
        c.command(&format!("MSG {name} visit {visit}"))
            .await
            .map_err(|t| format!("{name}: MSG {t:?}"))?;
        c.command(&format!("PVT {other} psst from {name} {visit}"))
            .await
            .map_err(|t| format!("{name}: PVT {t:?}"))?;
        c.idle(Duration::from_millis(200 + 50 * i as u64)).await;
        c.logout().await;
        let pins = tls.known_hosts.borrow().lines().count();
        assert_eq!(pins, 1, "{name}: pinned once, on first use");
    }
    // After the crash and restart (same certificate): the pin still holds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut c = loop {
        let mut c = connect(&host, &trace, &tls).await;
        match c.login(name, password).await {
            Ok(_) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    c.command(&format!("MSG {name} after the restart"))
        .await
        .map_err(|t| format!("{name}: MSG {t:?}"))?;
    c.logout().await;
    // After the certificate was replaced: refused, nothing sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut c = connect(&host, &trace, &tls).await;
    let refused = c.login(name, password).await;
    assert!(refused.is_err(), "{name} trusted a replaced certificate");
    assert_eq!(c.exit_status(), Some(&ExitStatus::Untrusted), "{name}");
    assert!(
        c.shown()
            .iter()
            .any(|(_, l)| l.contains("WARNING: THE CERTIFICATE OF server:4000 HAS CHANGED!")),
        "{name}: {:?}",
        c.shown()
    );
    Ok(())
}

/// A client that tries in clear, and one that meets the server only after the replacement.
async fn outsiders(seed: u64, trace: Trace) -> turmoil::Result {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut clear = SimClient::connect("clear", &trace).await?;
    let turn = clear
        .login("han", "solo")
        .await
        .expect_err("a login in clear must be refused");
    assert_eq!(turn.code(), Some(530), "{turn:?}");
    assert_eq!(clear.exit_status(), Some(&ExitStatus::LoginFailed));
    tokio::time::sleep(Duration::from_secs(9)).await;
    let fresh = SimTls::new(seed ^ 0xf0f0);
    let mut c = connect("newcomer", &trace, &fresh).await;
    c.login("han", "solo")
        .await
        .map_err(|t| format!("han: {t:?}"))?;
    c.logout().await;
    assert_eq!(fresh.known_hosts.borrow().lines().count(), 1);
    Ok(())
}

/// Everything observable in one run.
fn run(seed: u64) -> (Vec<String>, String) {
    let _guard = SeedGuard::new("tls_sessions", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(60)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::TornTail, seed);
    let mut creds: String = USERS.iter().map(|(u, p)| format!("{u} {p}\n")).collect();
    creds.push_str("han solo\n");
    disk.preload(DataFile::Credentials, &creds);
    let cert = Rc::new(Cell::new(Cert::A));
    let mut host = ServerHost::new(
        huddle_core::server::ServerConfig {
            plaintext_login: PlaintextLogin::LoopbackOnly,
            ..sim_config(seed)
        },
        disk.clone(),
        trace.clone(),
    );
    host.record_wire = true;
    host.cert = Some(cert.clone());
    host.install(&mut sim);
    for i in 0..USERS.len() {
        sim.client(format!("client{i}"), user(i, seed, trace.clone()));
    }
    sim.client("outsiders", outsiders(seed, trace.clone()));
    // The crash, between the second visits and the third.
    while sim.elapsed() < Duration::from_millis(2_500) {
        sim.step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    sim.crash(SERVER);
    trace.record_at(sim.elapsed().as_millis() as u64, "sim", "server crashed");
    sim.bounce(SERVER);
    // The replacement, after the third visits.
    while sim.elapsed() < Duration::from_millis(8_000) {
        sim.step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    cert.set(Cert::B);
    sim.bounce(SERVER);
    trace.record_at(
        sim.elapsed().as_millis() as u64,
        "sim",
        "server restarted with another certificate",
    );
    sim::run(&mut sim, "tls_sessions", seed);
    (trace.lines(), disk.durable(DataFile::MessageLog))
}

#[test]
fn sessions_over_tls_pin_refuse_and_replay_byte_for_byte() {
    for seed in sim::seeds(53, 2, 20) {
        let first = run(seed);
        let lines = &first.0;
        let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
        assert!(has("TLS established (TLS13_"), "{lines:#?}");
        assert!(has("refused a user name sent in clear"));
        assert!(has("TLS failed"), "the server saw the refusals");
        assert!(has(" wrote "), "wire digests recorded");
        let pinned = lines
            .iter()
            .filter(|l| l.contains(": pinned server:4000 SHA256:"))
            .count();
        assert_eq!(pinned, 4, "three users once each, the newcomer once");
        for (name, _) in USERS {
            assert!(
                first.1.contains(&format!("{name} after the restart")),
                "{}",
                first.1
            );
        }
        assert_eq!(first, run(seed), "seed {seed}: two runs differ");
        let other = run(seed + 1);
        let digests = |t: &[String]| -> Vec<String> {
            t.iter()
                .filter(|l| l.contains(" wrote "))
                .map(|l| l.split(" wrote ").nth(1).unwrap_or("").to_string())
                .collect()
        };
        assert_ne!(
            digests(&first.0),
            digests(&other.0),
            "seed {seed}: another seed gave the same bytes"
        );
    }
}
