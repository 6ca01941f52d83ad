//! Progress as the core reports it (see `progress`): rate and ETA while bytes move, "stalled"
//! when they stop, a report at least every 200 ms either way, what each side waits for, and a
//! last report with the bytes really done and the outcome. Virtual time (see `test_world`).

use super::test_world::*;
use super::*;
use crate::UnixMillis;
use crate::transfer::netem::NetemConfig;

const MIB: usize = 1 << 20;

fn paced(rate: u64) -> World {
    let mut w = World::new();
    w.link = NetemConfig {
        latency_ms: 5,
        rate: Some(rate),
        queue_bytes: 1 << 20,
        ..NetemConfig::default()
    };
    w
}

/// The reports of transfer direction `dir` at peer `i`.
fn reports(w: &World, i: usize, dir: Direction) -> Vec<(u64, Progress)> {
    w.peers[i]
        .progress
        .iter()
        .filter(|(_, p)| p.direction == dir)
        .cloned()
        .collect()
}

#[test]
fn a_moving_transfer_reports_its_rate_and_eta_from_the_core() {
    let mut w = paced(10_000_000);
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(20 * MIB));
    w.type_line(yoda, "UPD luke clip.mp4");
    let t = w.now;
    w.run_until(t + 1_000, |_| false);
    for (i, dir) in [(yoda, Direction::Upload), (luke, Direction::Download)] {
        let (_, last) = reports(&w, i, dir).pop().expect("reports");
        assert_eq!(last.phase, Phase::Moving);
        let rate = last.rate.expect("a rate after a second");
        assert!(
            (8_000_000..=11_000_000).contains(&rate),
            "{dir:?}: {rate} B/s on a 10 MB/s path"
        );
        let eta = last.eta_ms.expect("an ETA");
        let expect = (last.total - last.done) * 1000 / rate;
        assert!(eta.abs_diff(expect) <= 1, "{eta} vs {expect}");
        assert_eq!(last.stalled_for_ms, None);
    }
}

#[test]
fn a_stalled_transfer_is_reported_every_200_ms_and_says_stalled() {
    let mut w = paced(10_000_000);
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(20 * MIB));
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 500, |_| false);
    // The path goes dead (a cut longer than the test): nothing moves.
    let cut = w.now;
    w.link.cuts = vec![(UnixMillis(cut), UnixMillis(u64::MAX))];
    for link in w.links.values_mut() {
        link.config_mut().cuts = w.link.cuts.clone();
    }
    w.run_until(cut + 6_000, |_| false);
    for (i, dir) in [(yoda, Direction::Upload), (luke, Direction::Download)] {
        let during: Vec<_> = reports(&w, i, dir)
            .into_iter()
            .filter(|(t, _)| *t >= cut + 500)
            .collect();
        assert!(
            during.len() >= 24,
            "{dir:?}: {} reports in 5.5 s",
            during.len()
        );
        for pair in during.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 <= 200,
                "{dir:?}: a gap of {} ms between reports",
                pair[1].0 - pair[0].0
            );
        }
        let (t, last) = during.last().cloned().unwrap();
        let stalled = last.stalled_for_ms.expect("stalled");
        assert!(stalled >= 5_000 && stalled <= t - cut + 200, "{stalled}");
        assert_eq!((last.rate, last.eta_ms), (None, None));
        let (_, early) = &during[0];
        assert_eq!(early.stalled_for_ms, None, "not before the threshold");
    }
}

#[test]
fn a_cancelled_transfer_ends_with_the_bytes_really_done_and_its_outcome() {
    let mut w = paced(20_000_000);
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(10 * MIB));
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 10_000, |w| {
        w.peers[luke]
            .parts
            .values()
            .map(|p| p.1.len())
            .sum::<usize>()
            >= 3 * MIB
    });
    w.type_line(luke, "CANCEL");
    w.run_transfers();
    for (i, dir) in [(yoda, Direction::Upload), (luke, Direction::Download)] {
        let (_, last) = reports(&w, i, dir).pop().unwrap();
        assert_eq!(last.phase, Phase::Ended(Outcome::Cancelled), "{dir:?}");
        assert!(last.is_finished());
        assert!(
            last.done >= 2 * MIB as u64 && last.done < last.total,
            "{dir:?}: the real bytes done, not the total: {}",
            last.done
        );
    }
    let kept = w.peers[luke].kept.values().next().unwrap().0.len() as u64;
    let (_, last) = reports(&w, luke, Direction::Download).pop().unwrap();
    assert_eq!(last.done, kept, "what was kept is what the report says");
}

#[test]
fn each_side_is_told_what_it_waits_for_and_a_complete_transfer_ends_complete() {
    let mut w = World::new();
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
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(300_000));
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 20_000, |_| false);
    let (_, asked) = reports(&w, luke, Direction::Download).pop().unwrap();
    assert_eq!(asked.phase, Phase::Asking);
    assert_eq!(asked.stalled_for_ms, None, "asking is not a stall");
    let (_, waiting) = reports(&w, yoda, Direction::Upload).pop().unwrap();
    assert_eq!(waiting.phase, Phase::Waiting);
    assert_eq!(waiting.stalled_for_ms, None);
    w.type_line(luke, "y");
    w.run_transfers();
    for (i, dir) in [(yoda, Direction::Upload), (luke, Direction::Download)] {
        let (_, last) = reports(&w, i, dir).pop().unwrap();
        assert_eq!(last.phase, Phase::Ended(Outcome::Complete));
        assert_eq!(last.done, last.total);
    }
}

#[test]
fn a_declined_upload_ends_declined_on_both_sides() {
    let mut w = World::new();
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
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), video(300_000));
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_until(w.now + 1_000, |_| false);
    w.type_line(luke, "n");
    w.run_transfers();
    for (i, dir) in [(yoda, Direction::Upload), (luke, Direction::Download)] {
        let (_, last) = reports(&w, i, dir).pop().unwrap();
        assert_eq!(last.phase, Phase::Ended(Outcome::Declined), "{dir:?}");
        assert_eq!(last.done, 0);
    }
}
