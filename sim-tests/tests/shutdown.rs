//! A graceful stop (what a runtime does on SIGTERM) logs everyone out before it goes: every
//! client — logged in or halfway through the login — is told the server is shutting down and
//! stops with `ServerClosed` (exit 7), `userlog.txt` is left empty, every user's logout is recorded,
//! and the server starts again from that folder.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_core::UnixMillis;
use huddle_core::client::{ExitStatus, Prompt};
use huddle_core::server::{DataFiles, Output, Server};
use huddle_core::store::{DataFile, parse_logins};
use huddle_core::time::Zone;
use huddle_sim_tests::client_host::{SimClient, Step};
use huddle_sim_tests::clock::{self, EPOCH_MILLIS};
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::server_host::{SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;

const STOP_MS: u64 = 5_000;

fn run_one(seed: u64) {
    let _guard = SeedGuard::new("shutdown", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(60)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    disk.preload(DataFile::Credentials, "ann pw\nbob pw\ncat pw\n");
    let mut host = ServerHost::new(sim_config(seed), disk.clone(), trace.clone());
    host.stop_at = Some(clock::at(STOP_MS));
    host.install(&mut sim);

    for (name, logs_in) in [("ann", true), ("bob", true), ("cat", false)] {
        let t = trace.clone();
        sim.client(name, async move {
            let mut c = SimClient::connect_retrying(name, &t, Duration::from_millis(10)).await;
            if logs_in {
                c.login(name, "pw").await.expect("login");
                c.command(&format!("MSG {name} was here"))
                    .await
                    .expect("MSG");
            } else {
                assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
                assert_eq!(c.say(name).await.step, Step::Prompt(Prompt::Password));
            }
            c.idle(Duration::from_millis(2 * STOP_MS)).await;
            assert_eq!(c.exit_status(), Some(&ExitStatus::ServerClosed), "{name}");
            assert!(
                c.shown().iter().any(|(_, s)| s.contains("shutting down")),
                "{name} is told why: {:?}",
                c.shown()
            );
            Ok(())
        });
    }
    while sim.elapsed() < Duration::from_millis(STOP_MS + 1_000) {
        sim.step()
            .unwrap_or_else(|e| panic!("shutdown seed {seed}: {e}"));
    }
    assert!(!sim.is_host_running(SERVER), "the server stopped by itself");
    assert_eq!(disk.durable(DataFile::UserLog), "", "nobody is left online");
    let mut warnings = Vec::new();
    let logins = parse_logins(disk.durable(DataFile::Logins), Zone::UTC, &mut warnings);
    assert_eq!(logins.len(), 2, "{logins:?}");
    for l in &logins {
        let stop = UnixMillis(EPOCH_MILLIS + STOP_MS).timestamp();
        assert_eq!(l.logout, Some(stop), "{}'s logout is the stop", l.user);
    }

    sim.bounce(SERVER);
    let t = trace.clone();
    sim.client("ann-again", async move {
        let mut c = SimClient::connect_retrying("ann-again", &t, Duration::from_millis(10)).await;
        c.login("ann", "pw").await.expect("the server is back");
        c.logout().await;
        Ok(())
    });
    if let Err(e) = sim.run() {
        panic!("shutdown seed {seed}: {e}\n{}", trace.tail(30));
    }
}

#[test]
fn a_graceful_stop_logs_everyone_out_tells_every_client_and_restarts_cleanly() {
    for seed in sim::seeds(9, 2, 10) {
        run_one(seed);
    }
}

#[test]
fn a_shutdown_sends_nothing_on_a_connection_the_server_already_closed() {
    let now = UnixMillis(EPOCH_MILLIS);
    let mut files = DataFiles::new();
    files.insert(DataFile::Credentials, "ann pw\n");
    let mut config = sim_config(1);
    config.attempts = huddle_core::server::Attempts::new(1).unwrap();
    let mut server = Server::new(config, &files, now).expect("a clean folder");
    let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let conn = server.handle_connect(peer, now);
    server.handle_bytes(conn, b"ann\nwrong\n", now);
    let mut closed = false;
    while let Some(out) = server.poll_output() {
        closed |= out == Output::Close { conn };
    }
    assert!(closed, "the lockout closes the connection");
    // The driver has not yet seen the socket go (handle_disconnect) when the stop comes.
    server.shutdown(now);
    while let Some(out) = server.poll_output() {
        match out {
            Output::Send { conn: c, bytes } if c == conn => {
                panic!(
                    "sent {:?} on a connection already closed",
                    String::from_utf8_lossy(&bytes)
                )
            }
            Output::Close { conn: c } if c == conn => panic!("closed {conn} twice"),
            _ => {}
        }
    }
}
