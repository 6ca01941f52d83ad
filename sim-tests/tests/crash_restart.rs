//! Scenario 4 (issue 5): the server host crashes mid-session and restarts.
//!
//! Clients post, send private messages to offline users, block users and sign up while the
//! server crashes at a random instant — possibly in the middle of an fsync, whose unsynced
//! writes the disk then keeps only as a random, possibly torn, prefix. Every client reports
//! the lost connection (`ExitStatus::ConnectionLost`). Clients also list the board and delete
//! their own posts by id (`DLT @id`). After the restart an auditor checks that everything that
//! was *acknowledged* survived: every post (with the id it was listed with before the crash;
//! no id twice), every delete, every stored private message (delivered at the recipient's
//! next login, in order), every block and every account.
//!
//! The repair path: while the server is down its files are also damaged (a bad disk, a careless
//! editor). The restart refuses, naming the lines; the operator restarts with a repair, which
//! moves them byte for byte to `<file>.rejected`, keeps copies, keeps the damaged account's
//! name reserved, and again loses nothing acknowledged.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use huddle_core::client::ExitStatus;
use huddle_core::proto::event::Event;
use huddle_core::server::{OnDamage, Server, StartError};
use huddle_core::store::DataFile;
use huddle_sim_tests::client_host::{SimClient, Step, Turn};
use huddle_sim_tests::clock;
use huddle_sim_tests::disk::{CrashLoss, Disk};
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::server_host::{SERVER, ServerHost, sim_config};
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::trace::Trace;
use huddle_sim_tests::views::{BEGINNING, parse_rdm};

const USERS: [(&str, &str); 3] = [("yoda", "jedi"), ("luke", "r2d2"), ("leia", "alderaan")];
const GHOSTS: [&str; 2] = ["ghost1", "ghost2"];
const SIGNUPS: usize = 2;
const AUDIT_AT_MS: u64 = 15_000;

/// What the server acknowledged (a 2xx reply reached the client) — and what was only tried.
#[derive(Debug, Default, Clone)]
struct Ledger {
    accounts: Vec<(String, String)>,
    posts: Vec<(String, String)>,
    /// (text, id) of posts as a listing showed them before the crash.
    ids: Vec<(String, u64)>,
    /// Texts of posts whose delete was acknowledged.
    deleted: Vec<String>,
    /// (from, to, text), in the order acknowledged.
    letters: Vec<(String, String, String)>,
    tried_letters: Vec<String>,
    blocks: Vec<(String, String)>,
    lost_connections: usize,
}

type Shared = Rc<RefCell<Ledger>>;

/// One client's session until the server goes away.
async fn session(i: usize, seed: u64, trace: Trace, ledger: Shared) -> turmoil::Result {
    let mut rng = Rng::new(seed, i as u64);
    let host = format!("client{i}");
    let (user, password) = match USERS.get(i) {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (format!("newbie{i}"), format!("pw{i}x{seed}")),
    };
    let mut c = SimClient::connect_retrying(&host, &trace, Duration::from_millis(10)).await;
    match c.login(&user, &password).await {
        Ok(_) => {
            if i >= USERS.len() {
                ledger.borrow_mut().accounts.push((user.clone(), password));
            }
        }
        Err(t) => return lost(&mut c, t, &ledger),
    }
    let everyone: Vec<String> = USERS
        .iter()
        .map(|(u, _)| u.to_string())
        .chain(GHOSTS.iter().map(|g| g.to_string()))
        .filter(|u| *u != user)
        .collect();
    // This user's posts as last listed: (text, id, timestamp).
    let mut mine: Vec<(String, u64, String)> = Vec::new();
    for seq in 0.. {
        c.idle(Duration::from_millis(rng.range(5, 150))).await;
        let roll = rng.range(0, 100);
        let result = if roll < 8 {
            let r = c.command(&format!("RDM {BEGINNING}")).await;
            if let Ok(reply) = &r {
                mine = parse_rdm(reply)
                    .into_iter()
                    .filter(|l| l.author == user)
                    .map(|l| (l.text, l.id, l.at))
                    .collect();
                let mut led = ledger.borrow_mut();
                for (text, id, _) in &mine {
                    led.ids.push((text.clone(), *id));
                }
            }
            r
        } else if roll < 12 && !mine.is_empty() {
            let (text, id, at) = mine.remove(rng.index(mine.len()));
            let r = c.command(&format!("DLT @{id} {at}")).await;
            if matches!(&r, Ok(reply) if reply.code.get() == 250) {
                ledger.borrow_mut().deleted.push(text);
            }
            r
        } else if roll < 50 {
            let text = format!("m{i}-{seq} from {user}; crash me if you can");
            let r = c.command(&format!("MSG {text}")).await;
            if matches!(&r, Ok(reply) if reply.code.get() == 250) {
                ledger.borrow_mut().posts.push((user.clone(), text));
            }
            r
        } else if roll < 85 {
            let to = GHOSTS[rng.index(GHOSTS.len())];
            let text = format!("p{i}-{seq} for {to}");
            ledger.borrow_mut().tried_letters.push(text.clone());
            let r = c.command(&format!("PVT {to} {text}")).await;
            if matches!(&r, Ok(reply) if reply.code.get() == 250) {
                let letter = (user.clone(), to.to_string(), text);
                ledger.borrow_mut().letters.push(letter);
            }
            r
        } else {
            let target = everyone[rng.index(everyone.len())].clone();
            if GHOSTS.contains(&target.as_str()) {
                // Blocking a ghost would hide nothing we check; block a living user instead.
                continue;
            }
            let r = c.command(&format!("BLK {target}")).await;
            if matches!(&r, Ok(reply) if reply.code.get() == 250) {
                ledger.borrow_mut().blocks.push((user.clone(), target));
            }
            r
        };
        if let Err(t) = result {
            return lost(&mut c, t, &ledger);
        }
    }
    Ok(())
}

/// The only way a session may end here: the client core reports the lost connection.
fn lost(c: &mut SimClient, t: Turn, ledger: &Shared) -> turmoil::Result {
    assert_eq!(
        t.step,
        Step::Exit(ExitStatus::ConnectionLost),
        "{}: the session ended otherwise than by the crash: {t:?}",
        c.name()
    );
    ledger.borrow_mut().lost_connections += 1;
    Ok(())
}

/// Lines a test writes into the files while the server is down (the repair path), and the
/// name whose account line is among them.
const DAMAGE: [(DataFile, &[u8]); 3] = [
    (DataFile::Credentials, b"vader\tdarkside"),
    (
        DataFile::MessageLog,
        b"1; 21 Nov 2026 25:61:00; yoda; \xff never posted; no",
    ),
    (DataFile::Blocks, b"luke;leia"),
];
const DAMAGED_NAME: &str = "vader";

/// After the restart: log in as each user concerned and look.
async fn audit(trace: Trace, ledger: Shared, repaired: bool) -> turmoil::Result {
    clock::sleep_until(clock::at(AUDIT_AT_MS)).await;
    let every = Duration::from_millis(100);
    if repaired {
        // The name of the damaged account line stays reserved: nobody can sign up as it.
        let mut c = SimClient::connect_retrying("squatter", &trace, every).await;
        assert_eq!(
            c.step().await,
            Step::Prompt(huddle_core::client::Prompt::UserName)
        );
        let t = c.say(DAMAGED_NAME).await;
        assert_eq!(t.code(), Some(431), "{DAMAGED_NAME} is not reserved: {t:?}");
    }
    // Every session ended with the crash: the ledger is final.
    let led = ledger.borrow().clone();

    let mut c = SimClient::connect_retrying("auditor", &trace, every).await;
    c.login("auditor", "audit").await.expect("auditor logs in");
    let board = c.command(&format!("RDM {BEGINNING}")).await.expect("RDM");
    let listed = parse_rdm(&board);
    for (author, text) in &led.posts {
        let on_board = listed
            .iter()
            .any(|l| &l.author == author && &l.text == text);
        let deleted = led.deleted.contains(text);
        assert!(
            on_board != deleted,
            "acknowledged post {text:?} by {author}: on the board {on_board}, its delete acknowledged {deleted}"
        );
    }
    for (text, id) in &led.ids {
        if let Some(l) = listed.iter().find(|l| &l.text == text) {
            assert_eq!(l.id, *id, "{text:?} was listed as @{id} before the crash");
        }
    }
    let mut ids: Vec<u64> = listed.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "an id given twice: {listed:?}");
    c.logout().await;

    for ghost in GHOSTS {
        let mut c = SimClient::connect_retrying(ghost, &trace, every).await;
        c.login(ghost, "boo").await.expect("ghost logs in");
        // Stored letters are pushed right after the welcome; a reply marks their end.
        c.command("ATU").await.expect("ATU");
        let got: Vec<String> = c
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Private { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        // Order is promised per sender (acknowledgements of different senders race).
        let senders = led.letters.iter().map(|(from, _, _)| from);
        for sender in senders {
            let acked: Vec<&String> = led
                .letters
                .iter()
                .filter(|(from, to, _)| to == ghost && from == sender)
                .map(|(_, _, t)| t)
                .collect();
            let delivered: Vec<&String> = got.iter().filter(|t| acked.contains(t)).collect();
            assert_eq!(
                delivered, acked,
                "{ghost}: every acknowledged private message from {sender}, once, in order"
            );
        }
        for (k, t) in got.iter().enumerate() {
            assert!(
                led.tried_letters.contains(t),
                "{ghost} got a letter nobody sent: {t}"
            );
            assert!(!got[..k].contains(t), "{ghost} got {t} twice");
        }
        c.logout().await;
    }

    for (blocker, blocked) in &led.blocks {
        let password = USERS
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .chain(led.accounts.iter().cloned())
            .find(|(u, _)| u == blocker)
            .map(|(_, p)| p)
            .expect("a blocker is a known user");
        let mut c = SimClient::connect_retrying(blocker, &trace, every).await;
        c.login(blocker, &password).await.expect("blocker logs in");
        let r = c.command(&format!("BLK {blocked}")).await.expect("BLK");
        assert!(
            r.text().contains("was already blocked"),
            "{blocker}'s acknowledged block of {blocked} is gone: {r:?}"
        );
        c.logout().await;
    }

    for (user, password) in &led.accounts {
        let mut c = SimClient::connect_retrying(user, &trace, every).await;
        let t = c.step().await;
        assert_eq!(t, Step::Prompt(huddle_core::client::Prompt::UserName));
        let t = c.say(user).await;
        assert_eq!(t.code(), Some(332), "{user}'s acknowledged sign-up is gone");
        let t = c.say(password).await;
        assert_eq!(
            t.code(),
            Some(230),
            "{user} cannot log in after the restart"
        );
        c.logout().await;
    }
    Ok(())
}

fn run_one(seed: u64, damage: bool) {
    let _guard = SeedGuard::new("crash_restart", seed);
    let mut rng = Rng::new(seed, 999);
    let mut sim = sim::builder(seed, Duration::from_secs(120)).build();
    let trace = Trace::new();
    let disk = Disk::new(CrashLoss::TornTail, seed);
    let mut creds: String = USERS.iter().map(|(u, p)| format!("{u} {p}\n")).collect();
    for g in GHOSTS {
        creds.push_str(&format!("{g} boo\n"));
    }
    creds.push_str("auditor audit\n");
    disk.preload(DataFile::Credentials, &creds);
    // The operator's restart after a refusal: the same server, with a repair. (A repair does
    // nothing to a clean folder, so the first boot is as ever.)
    let config = if damage {
        huddle_core::server::ServerConfig {
            on_damage: OnDamage::Repair,
            ..sim_config(seed)
        }
    } else {
        sim_config(seed)
    };
    ServerHost::new(config, disk.clone(), trace.clone()).install(&mut sim);

    let ledger: Shared = Rc::default();
    let clients = USERS.len() + SIGNUPS;
    for i in 0..clients {
        let (t, l) = (trace.clone(), ledger.clone());
        sim.client(format!("client{i}"), session(i, seed, t, l));
    }
    sim.client("auditor", audit(trace.clone(), ledger.clone(), damage));

    let crash_at = Duration::from_millis(rng.range(1_000, 6_000));
    let restart_at = crash_at + Duration::from_millis(rng.range(100, 3_000));
    let step = |sim: &mut turmoil::Sim<'_>, until: Duration| {
        while sim.elapsed() < until {
            sim.step()
                .unwrap_or_else(|e| panic!("crash_restart seed {seed}: {e}"));
        }
    };
    step(&mut sim, crash_at);
    sim.crash(SERVER);
    trace.record_at(sim.elapsed().as_millis() as u64, "sim", "server crashed");
    step(&mut sim, restart_at);
    if damage {
        for (file, line) in DAMAGE {
            disk.damage(file, line);
        }
        // Without a repair the server refuses, naming every damaged line.
        let files = disk.boot();
        let now = huddle_core::UnixMillis(clock::EPOCH_MILLIS);
        let Err(StartError::Damaged(refusal)) = Server::new(sim_config(seed), &files, now) else {
            panic!("seed {seed}: a damaged folder is refused for its damage");
        };
        let named: Vec<(DataFile, usize)> =
            refusal.lines.iter().map(|w| (w.file, w.line)).collect();
        for (file, _) in DAMAGE {
            assert!(
                named.contains(&(file, 1)),
                "seed {seed}: {file} line 1 not named: {refusal}"
            );
        }
    }
    sim.bounce(SERVER);
    sim::run(&mut sim, "crash_restart", seed);

    let l = ledger.borrow();
    assert_eq!(l.lost_connections, clients, "every client saw the crash");
    let boots = if damage { 3 } else { 2 };
    assert_eq!(
        disk.boots(),
        boots,
        "the server booted twice (plus the refused look)"
    );
    if damage {
        for (file, line) in DAMAGE {
            let mut kept = line.to_vec();
            kept.push(b'\n');
            let rejected = disk.rejected(file);
            assert!(
                rejected.windows(kept.len()).any(|w| w == kept),
                "seed {seed}: {file}'s damaged line is not in {file}.rejected byte for byte"
            );
            assert!(
                !disk
                    .durable_bytes(file)
                    .windows(line.len())
                    .any(|w| w == line),
                "seed {seed}: {file} still holds its damaged line"
            );
            assert!(
                disk.backups()
                    .keys()
                    .any(|name| name.starts_with(file.file_name())),
                "seed {seed}: no copy of {file} as it was"
            );
        }
    }
    assert!(
        !l.posts.is_empty() && !l.letters.is_empty(),
        "the workload did something before the crash: {l:?}"
    );
    eprintln!(
        "crash_restart seed {seed}: {} posts, {} deleted by id, {} ids checked",
        l.posts.len(),
        l.deleted.len(),
        l.ids.len()
    );
}

#[test]
fn every_acknowledged_post_letter_block_and_account_survives_a_crash() {
    for seed in sim::seeds(4, 4, 25) {
        run_one(seed, false);
    }
}

#[test]
fn after_a_crash_and_damaged_files_a_repair_loses_nothing_acknowledged() {
    for seed in sim::seeds(41, 3, 25) {
        run_one(seed, true);
    }
}
