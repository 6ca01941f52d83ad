//! Scenario 1 (issue 5): lockout timing, for every ATTEMPTS in 1..=5.
//!
//! After ATTEMPTS consecutive wrong passwords a user name is refused until exactly 10 s later —
//! at the name or at the password, right or wrong, from any address — and accepted from then
//! on. A success in between resets the count; failures of one name never block another.
//!
//! Links have a fixed latency, so a script can make the server *handle* a line at an exact
//! simulated instant; the server's [`ExchangeLog`] then proves when each decisive line was
//! handled and how it was answered.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::client::{ExitStatus, Prompt};
use huddle_core::server::Attempts;
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::{SimClient, Step};
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::exchanges::ExchangeLog;
use huddle_sim_tests::server_host::{ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;

/// One-way latency of every link.
const LATENCY_MS: u64 = 5;
const BLOCK_MS: u64 = 10_000;

/// Wait until the server has blocked yoda; returns the simulated ms at which it did.
async fn block_start(log: &Rc<RefCell<ExchangeLog>>, attempts: u8) -> u64 {
    let last_wrong = format!("wrong{attempts}");
    loop {
        if let Some(e) = log
            .borrow()
            .with_line(&last_wrong)
            .find(|e| e.codes == [435])
        {
            return e.at_ms;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Make the server handle `line` at `at_ms`: send it one latency earlier.
async fn say_at(c: &mut SimClient, at_ms: u64, line: &str) -> huddle_sim_tests::client_host::Turn {
    clock::sleep_until(clock::at(at_ms - LATENCY_MS)).await;
    c.say(line).await
}

fn run_one(attempts: u8, seed: u64) {
    let _guard = SeedGuard::new("lockout_timing", seed);
    let mut sim = sim::builder(seed, Duration::from_secs(60))
        .min_message_latency(Duration::from_millis(LATENCY_MS))
        .max_message_latency(Duration::from_millis(LATENCY_MS))
        .build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::All, seed);
    disk.preload(DataFile::Credentials, "yoda jedi\nluke r2d2\n");
    let log = Rc::new(RefCell::new(ExchangeLog::default()));
    let mut config = sim_config(seed);
    config.attempts = Attempts::new(attempts).unwrap();
    config.block_millis = BLOCK_MS;
    // The per-name lockout alone, to the millisecond: the per-address throttle (which would
    // slow these simulated hosts' many wrong passwords) is the core tests' subject.
    config.guess_free_failures = u32::MAX;
    ServerHost::new(config, disk, trace.clone())
        .with_probe(log.clone())
        .install(&mut sim);
    let n = attempts;
    let second_ready = Rc::new(RefCell::new(false));

    // The attacker: N-1 failures and a success, then N failures; later, another name.
    let (t, l, ready) = (trace.clone(), log.clone(), second_ready.clone());
    sim.client("attacker", async move {
        while !*ready.borrow() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut c = SimClient::connect("attacker", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        assert_eq!(c.say("yoda").await.code(), Some(332));
        for i in 1..n {
            assert_eq!(c.say(&format!("wrong{i}")).await.code(), Some(432));
        }
        let turn = c.say("jedi").await;
        assert_eq!(
            turn.code(),
            Some(230),
            "a right password within the limit logs in"
        );
        assert_eq!(c.logout().await.step, Step::Exit(ExitStatus::LoggedOut));

        let mut c = SimClient::connect("attacker", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        assert_eq!(c.say("yoda").await.code(), Some(332));
        for i in 1..n {
            let turn = c.say(&format!("wrong{i}")).await;
            assert_eq!(turn.code(), Some(432), "the success reset the count");
        }
        let turn = c.say(&format!("wrong{n}")).await;
        assert_eq!(turn.code(), Some(435));
        assert_eq!(turn.step, Step::Exit(ExitStatus::LockedOut));

        let block = block_start(&l, n).await;
        clock::sleep_until(clock::at(block + BLOCK_MS / 2)).await;
        let mut c = SimClient::connect("attacker", &t).await?;
        let welcome = c.login("luke", "r2d2").await;
        assert!(welcome.is_ok(), "yoda's failures block luke: {welcome:?}");
        c.logout().await;
        Ok(())
    });

    // Another address, already at the password prompt: the right password at 9.99 s.
    let (t, l, ready) = (trace.clone(), log.clone(), second_ready.clone());
    sim.client("second", async move {
        let mut c = SimClient::connect("second", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        assert_eq!(c.say("yoda").await.step, Step::Prompt(Prompt::Password));
        *ready.borrow_mut() = true;
        let block = block_start(&l, n).await;
        let turn = say_at(&mut c, block + BLOCK_MS - 10, "jedi").await;
        assert_eq!(
            turn.code(),
            Some(435),
            "the right password during the block"
        );
        assert_eq!(turn.step, Step::Exit(ExitStatus::LockedOut));
        Ok(())
    });

    // A third address: the name alone at 9.99 s.
    let (t, l) = (trace.clone(), log.clone());
    sim.client("third", async move {
        let block = block_start(&l, n).await;
        clock::sleep_until(clock::at(block + 1_000)).await;
        let mut c = SimClient::connect("third", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        let turn = say_at(&mut c, block + BLOCK_MS - 10, "yoda").await;
        assert_eq!(turn.code(), Some(435), "the name during the block");
        assert_eq!(turn.step, Step::Exit(ExitStatus::LockedOut));
        Ok(())
    });

    // A fourth address: the name at exactly 10.0 s, then the right password.
    let (t, l) = (trace.clone(), log.clone());
    sim.client("fourth", async move {
        let block = block_start(&l, n).await;
        clock::sleep_until(clock::at(block + 9_000)).await;
        let mut c = SimClient::connect("fourth", &t).await?;
        assert_eq!(c.step().await, Step::Prompt(Prompt::UserName));
        let turn = say_at(&mut c, block + BLOCK_MS, "yoda").await;
        assert_eq!(turn.code(), Some(332), "the name once the block is over");
        let turn = c.say("jedi").await;
        assert_eq!(turn.code(), Some(230));
        c.logout().await;
        Ok(())
    });

    let ip = |h: &str| sim.lookup(h);
    let (second, third, fourth) = (ip("second"), ip("third"), ip("fourth"));
    sim::run(&mut sim, "lockout_timing", seed);

    // The server's own view: the decisive lines were handled at the intended instants.
    let log = log.borrow();
    let block = log
        .with_line(&format!("wrong{n}"))
        .find(|e| e.codes == [435])
        .expect("the N-th failure blocks")
        .at_ms;
    let handled = |from: std::net::IpAddr, line: &str| {
        log.exchanges
            .iter()
            .find(|e| e.peer.map(|p| p.ip()) == Some(from) && e.line == line)
            .map(|e| (e.at_ms - block, e.codes.clone()))
    };
    assert_eq!(handled(second, "jedi"), Some((9_990, vec![435])));
    assert_eq!(handled(third, "yoda"), Some((9_990, vec![435])));
    assert_eq!(handled(fourth, "yoda"), Some((10_000, vec![332])));
    assert_eq!(
        handled(fourth, "jedi"),
        Some((10_000 + 2 * LATENCY_MS, vec![230]))
    );
}

#[test]
fn a_name_is_refused_until_exactly_the_block_time_after_attempts_failures_for_every_attempts() {
    for attempts in Attempts::MIN..=Attempts::MAX {
        for seed in sim::seeds(1, 1, 5) {
            run_one(attempts, seed + u64::from(attempts));
        }
    }
}
