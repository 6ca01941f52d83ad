//! Consent: an incoming upload is taken, declined or asked about by the audience's policy; an
//! asked one holds its presenter (who does not time out) until the answer or the decision
//! time; a decline is told to the presenter at once. Virtual time (see `test_world`).

use super::test_world::*;
use super::*;
use crate::types::UserName;

fn asking() -> ClientConfig {
    ClientConfig {
        consent: ConsentPolicy {
            accept: AcceptPolicy::Ask,
            ..ConsentPolicy::default()
        },
        ..ClientConfig::default()
    }
}

fn world_with_asking_luke() -> (World, usize, usize) {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join_configured("luke", "r2d2", asking());
    (w, yoda, luke)
}

#[test]
fn an_asked_upload_holds_the_presenter_past_its_idle_timeout_until_accepted() {
    let (mut w, yoda, luke) = world_with_asking_luke();
    let file = video(300_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    assert!(
        w.shown(luke)
            .contains("Accept clip.mp4 (293.0 KiB) from yoda? Answer y or n; no answer within 2 min declines it."),
        "{}",
        w.shown(luke)
    );
    // Three idle timeouts pass while luke thinks.
    let idle = TransferConfig::default().idle_timeout_ms;
    let until = w.now + 3 * idle;
    w.run_until(until, |_| false);
    assert!(
        w.shown(yoda)
            .contains("Waiting for luke to accept clip.mp4…"),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.shown(yoda).contains("failed"), "{}", w.shown(yoda));
    assert!(w.peers[luke].parts.is_empty(), "no file before the answer");
    w.type_line(luke, "y");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(w.shown(luke).contains("Accepted clip.mp4 from yoda"));
    // The time and speed are of the bytes going, not of the 30 s luke thought.
    let line = w.line_with(yoda, "clip.mp4 has been uploaded to luke");
    let took = line
        .split(" in ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        took.ends_with(" ms")
            || took
                .trim_end_matches(" s")
                .parse::<f64>()
                .is_ok_and(|s| s < 5.0),
        "{line}"
    );
}

#[test]
fn a_decline_is_told_to_the_presenter_at_once_and_nothing_is_written() {
    let (mut w, yoda, luke) = world_with_asking_luke();
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(300_000));
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 500, |_| false);
    let asked_at = w.now;
    w.type_line(luke, "n");
    w.run_until(w.now + 5_000, |w| w.shown(yoda).contains("declined"));
    assert!(
        w.now - asked_at < 100,
        "told within a round trip, not after a timeout: {} ms",
        w.now - asked_at
    );
    assert!(
        w.shown(yoda)
            .contains("luke declined clip.mp4; nothing was sent"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Declined clip.mp4 from yoda; yoda was told")
    );
    assert!(w.peers[luke].parts.is_empty() && w.peers[luke].saved.is_empty());
    w.run_transfers();
    assert!(!w.peers[yoda].client.is_transferring());
}

#[test]
fn no_answer_within_the_decision_time_declines_for_the_user() {
    let (mut w, yoda, luke) = world_with_asking_luke();
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(10_000));
    w.type_line(yoda, "UPD luke clip.mp4");
    let decision = TransferConfig::default().decision_timeout_ms;
    let start = w.now;
    w.run_until(w.now + decision + 30_000, |w| {
        w.shown(yoda).contains("did not answer")
    });
    assert!(
        w.shown(luke)
            .contains("No answer about clip.mp4 from yoda within 2 min: declined; yoda was told"),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.shown(yoda)
            .contains("luke did not answer whether to take clip.mp4; nothing was sent"),
        "{}",
        w.shown(yoda)
    );
    assert!(w.now - start >= decision && w.now - start < decision + 1_000);
    // A late answer finds nothing to answer.
    w.type_line(luke, "y");
    assert!(!w.peers[luke].client.is_transferring());
}

#[test]
fn the_policy_decides_without_asking_trusted_too_large_and_never() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let leia = w.join("leia", "alderaan");
    let luke = w.join_configured(
        "luke",
        "r2d2",
        ClientConfig {
            consent: ConsentPolicy {
                accept: AcceptPolicy::Never,
                max_upload: Some(100_000),
                trusted: vec![UserName::new("yoda").unwrap()],
            },
            ..ClientConfig::default()
        },
    );
    let (small, big) = (video(50_000), video(200_000));
    w.peers[yoda]
        .sources
        .insert("small.mp4".into(), small.clone());
    w.peers[yoda].sources.insert("big.mp4".into(), big);
    w.peers[leia]
        .sources
        .insert("small.mp4".into(), small.clone());
    w.upload(yoda, "luke", "small.mp4");
    w.upload(yoda, "luke", "big.mp4");
    w.upload(leia, "luke", "small.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_small.mp4"), Some(&small));
    assert_eq!(w.peers[luke].saved.len(), 1);
    let luke_saw = w.shown(luke);
    assert!(
        !luke_saw.contains("Answer y or n"),
        "nobody was asked: {luke_saw}"
    );
    assert!(
        luke_saw.contains("Declined big.mp4 from yoda: it is larger than the 97.7 KiB this client takes (--max-upload); yoda was told"),
        "{luke_saw}"
    );
    assert!(
        luke_saw.contains("Declined small.mp4 from leia: this client takes uploads only from trusted presenters (--accept never)"),
        "{luke_saw}"
    );
    // The presenter hears why when it was the size (and only "declined" for a policy of
    // trust, which is luke's business).
    assert!(
        w.shown(yoda).contains("luke's client declined big.mp4 without asking: it is larger than luke takes (its --max-upload); nothing was sent"),
        "{}",
        w.shown(yoda)
    );
    assert!(w.shown(leia).contains("luke declined small.mp4"));
}

#[test]
fn several_questions_are_answered_by_name_or_oldest_first() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let leia = w.join("leia", "alderaan");
    let luke = w.join_configured("luke", "r2d2", asking());
    let (a, b) = (video(60_000), video(70_000));
    w.peers[yoda].sources.insert("a.mp4".into(), a.clone());
    w.peers[leia].sources.insert("b.mp4".into(), b.clone());
    w.type_line(yoda, "UPD luke a.mp4");
    w.type_line(leia, "UPD luke b.mp4");
    assert!(
        w.shown(luke)
            .contains("ACCEPT b.mp4 or DECLINE b.mp4: others wait too"),
        "{}",
        w.shown(luke)
    );
    w.type_line(luke, "ACCEPT b.mp4");
    w.type_line(luke, "DECLINE nope.mp4");
    assert!(
        w.shown(luke)
            .contains("No incoming upload waiting for an answer is named \"nope.mp4\"."),
        "{}",
        w.shown(luke)
    );
    w.type_line(luke, "n");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("leia_b.mp4"), Some(&b));
    assert!(!w.peers[luke].saved.contains_key("yoda_a.mp4"));
    assert!(w.shown(yoda).contains("luke declined a.mp4"));
    // Nothing is pending now: `y` is no answer (the server calls it an unknown command) and
    // an explicit ACCEPT says there is nothing to accept.
    w.type_line(luke, "ACCEPT");
    assert!(
        w.shown(luke)
            .contains("No incoming upload is waiting for an answer."),
        "{}",
        w.shown(luke)
    );
}

#[test]
fn hostile_or_stray_answers_change_nothing() {
    let (mut w, yoda, luke) = world_with_asking_luke();
    let file = video(80_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    // Answers for transfers that do not exist, a thousand times; absurd names and ids.
    let now = UnixMillis(w.now);
    for i in 0..1000u64 {
        w.peers[luke].client.handle_input(
            Input::Decision {
                id: TransferId(i),
                accept: i % 2 == 0,
            },
            now,
        );
    }
    for line in [
        "ACCEPT ../../etc/passwd",
        "DECLINE 0000",
        "ACCEPT ALL",
        &format!("ACCEPT {}", "x".repeat(5000)),
    ] {
        w.type_line(luke, line);
    }
    w.settle();
    assert!(w.peers[luke].parts.is_empty(), "nothing accepted by noise");
    assert!(
        w.peers[luke].client.is_transferring(),
        "the question still waits"
    );
    w.type_line(luke, "YES");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    // Answering again after it arrived does nothing.
    w.type_line(luke, "DECLINE clip.mp4");
    assert_eq!(w.peers[luke].saved.len(), 1);
}

#[test]
fn twenty_asked_uploads_in_a_row_alternately_declined_and_accepted() {
    let (mut w, yoda, luke) = world_with_asking_luke();
    for n in 0..20 {
        let name = format!("{n}.mp4");
        let file = video(40_000 + n * 1000);
        w.peers[yoda].sources.insert(name.clone(), file.clone());
        w.type_line(yoda, &format!("UPD luke {name}"));
        w.run_until(w.now + 300, |_| false);
        w.type_line(luke, if n % 2 == 0 { "n" } else { "y" });
        w.run_transfers();
        let saved = w.peers[luke].saved.get(&format!("yoda_{name}"));
        if n % 2 == 0 {
            assert!(saved.is_none());
            assert!(w.shown(yoda).contains(&format!("luke declined {name}")));
        } else {
            assert_eq!(saved, Some(&file), "upload {n}");
        }
    }
    assert_eq!(w.count_shown(yoda, "has been uploaded to luke"), 10);
    assert_eq!(w.count_shown(yoda, "declined"), 10);
}

#[test]
fn questions_count_against_the_download_limit() {
    let mut w = World::new();
    let luke = w.join_configured(
        "luke",
        "r2d2",
        ClientConfig {
            transfer: TransferConfig {
                max_incoming: 3,
                ..TransferConfig::default()
            },
            ..asking()
        },
    );
    let yoda = w.join("yoda", "jedi");
    for n in 0..5 {
        let name = format!("{n}.mp4");
        w.peers[yoda].sources.insert(name.clone(), video(10_000));
        w.type_line(yoda, &format!("UPD luke {name}"));
    }
    w.run_until(w.now + 1_000, |_| false);
    assert_eq!(w.count_shown(luke, "Answer y or n"), 3);
    assert_eq!(w.count_shown(yoda, "receiving too many files at once"), 2);
}

#[test]
fn a_taken_upload_whose_folder_is_slow_holds_the_presenter_without_saying_anyone_is_asked() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(300_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    // luke's client takes it by policy, but its download folder answers slowly.
    w.peers[luke].hold_finds = true;
    w.type_line(yoda, "UPD luke clip.mp4");
    let idle = TransferConfig::default().idle_timeout_ms;
    let until = w.now + 2 * idle;
    w.run_until(until, |_| false);
    assert_eq!(w.peers[luke].held_finds.len(), 1);
    assert!(
        !w.shown(yoda).contains("to accept"),
        "nobody is asked: {}",
        w.shown(yoda)
    );
    assert!(!w.shown(yoda).contains("failed"), "{}", w.shown(yoda));
    w.release_finds(luke);
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(w.shown(yoda).contains("clip.mp4 has been uploaded to luke"));

    // A folder that never answers ends it after the decision time, as luke's own fault.
    w.peers[luke].hold_finds = true;
    w.type_line(yoda, "UPD luke clip.mp4");
    let decide = TransferConfig::default().decision_timeout_ms;
    let until = w.now + decide + 2 * idle;
    w.run_until(until, |w| w.shown(yoda).contains("failed"));
    w.assert_shown(
        yoda,
        "Upload of clip.mp4 to luke failed: luke's client cannot save the file",
    );
    assert!(!w.shown(yoda).contains("to accept"), "{}", w.shown(yoda));
}
