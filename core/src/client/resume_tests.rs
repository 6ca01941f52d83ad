//! Cancel and resume through the client core, in virtual time (see `test_world`): either side
//! cancels with `CANCEL` (or quits), the other is told at once, the audience keeps what it
//! received with a sidecar, and the next upload of the same file between the same two users
//! resumes from there — checked block by block, so a damaged part costs only its damage.

use super::test_world::*;
use super::*;
use crate::transfer::netem::NetemConfig;
use crate::transfer::resume::Sidecar;
use crate::transfer::tree::BLOCK;
use crate::types::UserName;

const MIB: usize = 1 << 20;

/// A world whose paths run at 20 MB/s, so a transfer can be cut where a test wants.
fn paced_world() -> World {
    let mut w = World::new();
    w.link = NetemConfig {
        latency_ms: 5,
        rate: Some(20_000_000),
        queue_bytes: 1 << 20,
        ..NetemConfig::default()
    };
    w
}

/// Bytes peer `i` has in order in its running downloads (written, or a block about to be).
fn received(w: &World, i: usize) -> usize {
    w.peers[i].parts.keys().map(|&id| w.in_order(i, id)).sum()
}

/// Run until peer `i` received at least `bytes`.
fn run_until_received(w: &mut World, i: usize, bytes: usize) {
    let limit = w.now + 60_000;
    w.run_until(limit, |w| received(w, i) >= bytes);
    assert!(received(w, i) >= bytes, "{}", w.shown(i));
}

#[test]
fn the_audience_cancels_keeps_the_part_and_the_next_upload_resumes_from_it() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(8 * MIB + 4321);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 3 * MIB);
    let cancelled_at = w.now;
    w.type_line(luke, "CANCEL");
    w.run_until(w.now + 5_000, |w| w.shown(yoda).contains("cancelled it"));
    assert!(w.now - cancelled_at < 100, "the presenter is told at once");
    assert!(
        w.shown(yoda)
            .contains("Upload of clip.mp4 to luke failed: luke cancelled it (or logged out); sending it again resumes where it stopped"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Cancelled clip.mp4 from yoda; yoda was told; the "),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.shown(luke)
            .contains("received are kept: if yoda sends it again")
    );
    w.run_transfers();
    assert_eq!(
        w.peers[luke].kept.len(),
        1,
        "the part is kept with its sidecar"
    );
    let (part, sidecar) = w.peers[luke].kept.values().next().unwrap().clone();
    let s = Sidecar::parse(&sidecar).expect("a sidecar the core can read back");
    assert_eq!(s.held, part.len() as u64);
    assert!(part.len() >= 3 * MIB && file.starts_with(&part));
    assert_eq!((s.from.as_str(), s.to.as_str()), ("yoda", "luke"));

    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(w.peers[luke].kept.is_empty(), "the kept part was taken");
    assert!(
        w.shown(luke).contains("Resuming clip.mp4 from yoda: "),
        "{}",
        w.shown(luke)
    );
    let resumed = part.len() as u64 / BLOCK * BLOCK;
    let held = crate::client::human_bytes(resumed);
    assert!(
        w.shown(luke)
            .contains(&format!("; {held} of it was already here")),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.shown(yoda)
            .contains(&format!("luke had {held} of it already")),
        "{}",
        w.shown(yoda)
    );
    // The speed is of what travelled: never above the 20 MB/s path, kept bytes or not.
    let line = w.line_with(yoda, "has been uploaded to luke");
    let speed = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(&format!("; luke had {held} of it already)")))
        .and_then(|s| s.strip_suffix(" MiB/s"))
        .and_then(|s| s.parse::<f64>().ok())
        .expect("a speed in MiB/s");
    assert!(speed * MIB as f64 <= 20_000_000.0, "{line}");
}

#[test]
fn the_presenter_cancels_and_sending_again_resumes() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(6 * MIB);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 2 * MIB);
    w.type_line(yoda, "CANCEL clip.mp4");
    w.run_transfers();
    assert!(
        w.shown(yoda)
            .contains("Cancelled the upload of clip.mp4 to luke; luke was told"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("yoda cancelled clip.mp4 (or left); the "),
        "{}",
        w.shown(luke)
    );
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(w.shown(yoda).contains("Resuming clip.mp4 for luke: "));
}

#[test]
fn a_damaged_kept_part_resumes_from_before_the_damage_and_the_file_is_whole() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(8 * MIB);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 6 * MIB);
    w.type_line(luke, "CANCEL");
    w.run_transfers();
    // A byte of the third MiB goes bad on disk.
    let (part, _) = w.peers[luke].kept.values_mut().next().unwrap();
    part[2 * MIB + 99] ^= 0xff;
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    let kept_line = w.peers[yoda]
        .shown
        .iter()
        .rev()
        .find(|l| l.contains("has been uploaded to luke"))
        .cloned()
        .unwrap_or_default();
    assert!(
        kept_line.contains("luke had 2.0 MiB of it already"),
        "only the blocks before the damage are kept: {kept_line}"
    );
}

#[test]
fn a_part_kept_for_another_user_or_file_is_not_resumed() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(3 * MIB);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    // Kept parts that look right by name but are not this transfer's.
    let junk = vec![0u8; 2 * MIB];
    let sidecar = |to: &str, size: u64| {
        bytes::Bytes::from(
            Sidecar {
                from: UserName::new("yoda").unwrap(),
                to: UserName::new(to).unwrap(),
                name: "clip.mp4".into(),
                size,
                held: junk.len() as u64,
                kept_at: UnixMillis(w.now),
            }
            .render(),
        )
    };
    let entries = [
        (
            "yoda_clip.mp4.00000000000000a1.part",
            sidecar("leia", 3 * MIB as u64),
        ),
        (
            "yoda_clip.mp4.00000000000000a2.part",
            sidecar("luke", 5 * MIB as u64),
        ),
        (
            "yoda_clip.mp4.00000000000000a3.part",
            bytes::Bytes::from_static(b"damaged"),
        ),
    ];
    for (name, s) in entries {
        w.peers[luke].kept.insert(name.into(), (junk.clone(), s));
    }
    w.upload(yoda, "luke", "clip.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(!w.shown(luke).contains("Resuming"), "{}", w.shown(luke));
    assert_eq!(
        w.peers[luke].kept.len(),
        3,
        "someone else's parts are left alone"
    );
}

#[test]
fn a_kept_part_that_cannot_be_read_is_sent_again_whole() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(5 * MIB);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 3 * MIB);
    w.type_line(luke, "CANCEL");
    w.run_transfers();
    w.peers[luke].failing_part_reads = true;
    w.upload(yoda, "luke", "clip.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(!w.shown(yoda).contains("had "), "{}", w.shown(yoda));
}

#[test]
fn an_interrupted_client_tells_its_peers_at_once_and_keeps_what_it_received() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(6 * MIB));
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 2 * MIB);
    let at = w.now;
    w.peers[luke]
        .client
        .handle_input(Input::Interrupt, UnixMillis(w.now));
    w.run_until(w.now + 5_000, |w| w.shown(yoda).contains("cancelled it"));
    assert!(w.now - at < 100, "told at once, not after a timeout");
    assert_eq!(w.peers[luke].exit, Some(ExitStatus::Interrupted));
    assert_eq!(ExitStatus::Interrupted.code(), 130);
    assert!(
        w.shown(luke)
            .contains("Interrupted. The running transfers were cancelled and their peers told"),
        "{}",
        w.shown(luke)
    );
    assert_eq!(w.peers[luke].kept.len(), 1);
}

#[test]
fn cancel_answers_clearly_when_there_is_nothing_or_too_much_to_cancel() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let leia = w.join("leia", "alderaan");
    w.type_line(luke, "CANCEL");
    assert!(w.shown(luke).contains("No transfer is running."));
    for (i, name) in [(yoda, "a.mp4"), (leia, "b.mp4")] {
        w.peers[i].sources.insert(name.into(), video(4 * MIB));
        w.type_line(i, &format!("UPD luke {name}"));
    }
    // Enough of each to be worth keeping (a block).
    run_until_received(&mut w, luke, 3 * MIB);
    w.type_line(luke, "CANCEL");
    assert!(
        w.shown(luke).contains(
            "Several transfers are running (a.mp4 from yoda, b.mp4 from leia): CANCEL <file>, or CANCEL ALL"
        ),
        "{}",
        w.shown(luke)
    );
    w.type_line(luke, "CANCEL nothing.mp4");
    assert!(
        w.shown(luke)
            .contains("No running transfer is named \"nothing.mp4\".")
    );
    for _ in 0..1000 {
        w.type_line(luke, "CANCEL zzzz");
    }
    assert!(
        w.peers[luke].client.is_transferring(),
        "noise cancels nothing"
    );
    w.type_line(luke, "CANCEL ALL");
    w.run_transfers();
    assert!(w.shown(yoda).contains("luke cancelled it"));
    assert!(w.shown(leia).contains("luke cancelled it"));
    assert_eq!(w.peers[luke].kept.len(), 2);
}

#[test]
fn twenty_uploads_in_a_row_each_cut_then_resumed() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    for n in 0..20usize {
        let name = format!("{n}.mp4");
        let file = video(2 * MIB + n * 10_000);
        w.peers[yoda].sources.insert(name.clone(), file.clone());
        w.type_line(yoda, &format!("UPD luke {name}"));
        run_until_received(&mut w, luke, MIB + n * 30_000);
        // Alternately the audience and the presenter cut it.
        let who = if n % 2 == 0 { luke } else { yoda };
        w.type_line(who, "CANCEL");
        w.run_transfers();
        w.type_line(yoda, &format!("UPD luke {name}"));
        w.run_transfers();
        assert_eq!(
            w.peers[luke].saved.get(&format!("yoda_{name}")),
            Some(&file),
            "upload {n}"
        );
    }
    assert_eq!(w.count_shown(yoda, "of it already"), 20);
    assert!(w.peers[luke].kept.is_empty());
}

#[test]
fn cancel_then_send_again_then_accept_when_asked() {
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join_configured(
        "luke",
        "r2d2",
        ClientConfig {
            consent: ConsentPolicy {
                accept: AcceptPolicy::Ask,
                ..ConsentPolicy::default()
            },
            ..ClientConfig::default()
        },
    );
    let file = video(4 * MIB);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    for round in 0..5 {
        w.type_line(yoda, "UPD luke clip.mp4");
        w.run_until(w.now + 300, |_| false);
        w.type_line(luke, "y");
        if round < 4 {
            run_until_received(&mut w, luke, (round + 1) * 600_000);
            w.type_line(luke, "CANCEL clip.mp4");
        }
        w.run_transfers();
    }
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert_eq!(
        w.peers[luke].saved.len(),
        1,
        "one file, resumed, never a second copy"
    );
}

#[test]
fn a_download_cancelled_while_its_kept_part_is_checked_keeps_the_part() {
    // Found by hand: luke kept a part, yoda sent the file again, and luke logged out (or
    // cancelled) while the kept part was still being checked with yoda: the part, whose
    // bytes had not been counted as received yet, was removed.
    let mut w = paced_world();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(8 * MIB + 4321);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    run_until_received(&mut w, luke, 3 * MIB);
    w.type_line(luke, "CANCEL");
    w.run_transfers();
    let (part, _) = w.peers[luke].kept.values().next().unwrap().clone();
    assert!(part.len() >= 3 * MIB);

    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 5_000, |w| {
        w.shown(luke).contains("checking them with yoda")
    });
    assert!(w.peers[luke].client.is_transferring(), "{}", w.shown(luke));
    w.type_line(luke, "CANCEL");
    w.run_transfers();
    assert!(
        !w.shown(luke).contains("the partial file was removed"),
        "{}",
        w.shown(luke)
    );
    assert_eq!(w.peers[luke].kept.len(), 1, "{}", w.shown(luke));
    let (again, _) = w.peers[luke].kept.values().next().unwrap().clone();
    assert_eq!(again, part, "kept as it was");

    // And the next upload still resumes from it.
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    let held = crate::client::human_bytes(part.len() as u64 / BLOCK * BLOCK);
    assert!(
        w.shown(luke)
            .contains(&format!("; {held} of it was already here")),
        "{}",
        w.shown(luke)
    );
}
