//! Uploads end to end in one process, in virtual time (see `test_world`).

use super::test_world::*;
use super::upload_queue::MAX_QUEUED_UPLOADS;
use super::*;

#[test]
fn an_upload_arrives_whole_under_the_presenter_underscore_name() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(300_000);
    w.peers[yoda]
        .sources
        .insert("videos/clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke videos/clip.mp4");
    assert!(
        w.shown(yoda)
            .contains("Uploading clip.mp4 (293.0 KiB) to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Incoming upload: yoda sends clip.mp4 (293.0 KiB)")
    );
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(
        w.shown(yoda).contains("clip.mp4 has been uploaded to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Received clip.mp4 from yoda, saved as yoda_clip.mp4"),
        "{}",
        w.shown(luke)
    );
}

#[test]
fn an_upload_survives_loss_and_never_overwrites_an_existing_file() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[luke]
        .saved
        .insert("yoda_clip.mp4".into(), b"older".to_vec());
    let file = video(200_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.drop_every = 7;
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(
        w.peers[luke].saved.get("yoda_clip.mp4"),
        Some(&b"older".to_vec())
    );
    assert_eq!(w.peers[luke].saved.get("yoda_clip (1).mp4"), Some(&file));
    assert!(w.shown(luke).contains("saved as yoda_clip (1).mp4"));
}

#[test]
fn a_client_receives_from_two_presenters_while_sending() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let leia = w.join("leia", "alderaan");
    let (a, b, c) = (video(120_000), video(90_000), video(150_000));
    w.peers[yoda].sources.insert("a.mp4".into(), a.clone());
    w.peers[leia].sources.insert("b.mp4".into(), b.clone());
    w.peers[luke].sources.insert("c.mp4".into(), c.clone());
    w.type_line(yoda, "UPD luke a.mp4");
    w.type_line(leia, "UPD luke b.mp4");
    w.type_line(luke, "UPD yoda c.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&a));
    assert_eq!(w.peers[luke].saved.get("leia_b.mp4"), Some(&b));
    assert_eq!(w.peers[yoda].saved.get("luke_c.mp4"), Some(&c));
}

#[test]
fn a_missing_file_or_unsafe_name_is_refused_before_asking_the_server() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    w.join("luke", "r2d2");
    w.type_line(yoda, "UPD luke nothere.mp4");
    assert!(
        w.shown(yoda)
            .contains("Cannot upload nothere.mp4: no such file"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(yoda, "UPD luke videos/");
    assert!(
        w.shown(yoda).contains("Cannot upload videos/"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(yoda, "UPD luke");
    assert!(
        w.shown(yoda).contains("Usage: UPD user file"),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.server_log_has("asked to upload"));
}

#[test]
fn an_upload_to_an_offline_user_is_refused_with_a_reason() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    w.peers[yoda].sources.insert("a.mp4".into(), video(10));
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(
        w.shown(yoda).contains("luke is offline"),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.peers[yoda].client.is_transferring());
}

#[test]
fn when_the_audience_vanishes_the_presenter_gives_up_and_says_why() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(500_000));
    w.type_line(yoda, "UPD luke a.mp4");
    // luke's machine is unplugged: every datagram from now on is lost.
    w.drop_every = 1;
    w.run_transfers();
    assert!(
        w.shown(yoda).contains("Upload of a.mp4 to luke failed"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke).contains("Upload of a.mp4 from yoda failed"),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );
}

#[test]
fn the_server_narrates_each_uploads_outcome_once() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(300_000));
    w.peers[yoda].sources.insert("b.mp4".into(), video(500_000));
    w.type_line(yoda, "UPD luke a.mp4");
    w.run_transfers();
    let id = |w: &World, name: &str| {
        w.server_log
            .iter()
            .find(|l| l.contains(&format!("asked to upload {name}")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
            .unwrap()
    };
    let a = id(&w, "a.mp4");
    assert_eq!(
        w.server_log
            .iter()
            .filter(|l| l.contains(&format!("transfer {a}")))
            .map(|l| l.split_once("  ").map_or(l.as_str(), |(_, t)| t))
            .collect::<Vec<_>>(),
        vec![
            format!("yoda asked to upload a.mp4 (300000 bytes) to luke: approved as transfer {a}"),
            format!(
                "yoda's upload of a.mp4 (300000 bytes) to luke, transfer {a}: delivered to luke, verified"
            ),
        ]
    );
    // A failure is narrated once too, with how far it came.
    w.type_line(yoda, "UPD luke b.mp4");
    w.drop_every = 1;
    w.run_transfers();
    let b = id(&w, "b.mp4");
    let ends: Vec<_> = w
        .server_log
        .iter()
        .filter(|l| l.contains(&format!("transfer {b}:")))
        .collect();
    assert_eq!(ends.len(), 1, "{:?}", w.server_log);
    assert!(ends[0].contains(": failed after "), "{}", ends[0]);
    assert!(
        !w.server_log.iter().any(|l| l.contains("UPD answered")),
        "an approval is said once: {:?}",
        w.server_log
    );
    assert!(!w.shown(yoda).contains("Transfer report ignored"));
    let _ = luke;
}

impl World {
    fn server_log_has(&self, needle: &str) -> bool {
        self.server_log.iter().any(|l| l.contains(needle))
    }
}

#[test]
fn out_waits_for_running_transfers_then_logs_out() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(250_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    w.type_line(yoda, "OUT");
    assert!(
        w.shown(yoda)
            .contains("Logging out once the running transfers finish")
    );
    assert_eq!(w.peers[yoda].exit, None);
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert_eq!(w.peers[yoda].exit, Some(ExitStatus::LoggedOut));
}

impl World {
    /// Bytes of the download saved (or being saved) as `name` at peer `i`.
    /// Bytes of the download saved (or being saved) as `name` at peer `i` that it has in
    /// order, written or not yet (writes come a block at a time).
    fn delivered(&self, i: usize, name: &str) -> usize {
        let p = &self.peers[i];
        p.parts
            .iter()
            .find(|(_, (n, _))| n == name)
            .map_or_else(|| self.received(i, name), |(id, _)| self.in_order(i, *id))
    }

    fn received(&self, i: usize, name: &str) -> usize {
        let p = &self.peers[i];
        p.saved.get(name).map(Vec::len).unwrap_or_else(|| {
            p.parts
                .values()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, d)| d.len())
        })
    }
}

#[test]
fn fifty_uploads_in_a_row_then_twenty_received_on_one_client_session() {
    let mut w = World::new();
    w.link.loss = 0.02;
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    for n in 0..50 {
        let file = video(20_000 + n * 997);
        w.peers[yoda]
            .sources
            .insert("clip.mp4".into(), file.clone());
        w.upload(yoda, "luke", "clip.mp4");
        let name = match n {
            0 => "yoda_clip.mp4".to_string(),
            n => format!("yoda_clip ({n}).mp4"),
        };
        assert!(
            w.peers[luke].saved.get(&name) == Some(&file),
            "upload {} did not arrive as {name}:\n{}",
            n + 1,
            w.shown(yoda)
        );
    }
    assert_eq!(
        w.count_shown(yoda, "clip.mp4 has been uploaded to luke"),
        50
    );
    for n in 0..20 {
        let file = video(30_000 + n * 131);
        let path = format!("reply{n}.mp4");
        w.peers[luke].sources.insert(path.clone(), file.clone());
        w.upload(luke, "yoda", &path);
        assert!(
            w.peers[yoda].saved.get(&format!("luke_reply{n}.mp4")) == Some(&file),
            "download {} did not arrive:\n{}",
            n + 1,
            w.shown(yoda)
        );
    }
    assert_eq!(w.count_shown(yoda, "Received reply"), 20);
    assert_eq!(w.count_shown(yoda, "failed"), 0, "{}", w.shown(yoda));
    assert!(!w.peers[yoda].client.is_transferring());
}

#[test]
fn uploads_in_both_directions_at_once_arrive_again_and_again() {
    let mut w = World::new();
    w.link.loss = 0.05;
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    for round in 0..5 {
        let (a, b) = (video(150_000 + round), video(120_000 + round * 3));
        w.peers[yoda]
            .sources
            .insert(format!("a{round}.mp4"), a.clone());
        w.peers[luke]
            .sources
            .insert(format!("b{round}.mp4"), b.clone());
        w.type_line(yoda, &format!("UPD luke a{round}.mp4"));
        w.type_line(luke, &format!("UPD yoda b{round}.mp4"));
        w.run_transfers();
        assert_eq!(
            w.peers[luke].saved.get(&format!("yoda_a{round}.mp4")),
            Some(&a)
        );
        assert_eq!(
            w.peers[yoda].saved.get(&format!("luke_b{round}.mp4")),
            Some(&b)
        );
    }
}

#[test]
fn eight_concurrent_transfers_on_one_socket_each_progress_every_round_trip() {
    let mut w = World::new();
    // Each path is a 2 MB/s link, so a 600 kB file takes many round trips.
    w.link.rate = Some(2_000_000);
    w.link.queue_bytes = 1 << 20;
    let yoda = w.join("yoda", "jedi");
    let others = [("luke", "r2d2"), ("leia", "alderaan"), ("hans", "solo")];
    let mut peers = vec![];
    for (name, password) in others.into_iter().chain([("obiwan", "kenobi")]) {
        peers.push((w.join(name, password), name));
    }
    let size = 600_000;
    // (receiving peer, saved name)
    let mut watched = vec![];
    for &(i, name) in &peers {
        w.peers[yoda]
            .sources
            .insert(format!("to_{name}.mp4"), video(size + i));
        w.peers[i]
            .sources
            .insert(format!("from_{name}.mp4"), video(size - i));
        w.type_line(yoda, &format!("UPD {name} to_{name}.mp4"));
        w.type_line(i, &format!("UPD yoda from_{name}.mp4"));
        watched.push((i, format!("yoda_to_{name}.mp4"), size + i));
        watched.push((yoda, format!("{name}_from_{name}.mp4"), size - i));
    }
    let rtt = 2 * w.link.latency_ms;
    let mut last = vec![0usize; watched.len()];
    let mut round = 0;
    while watched.iter().any(|(i, n, len)| w.received(*i, n) < *len) {
        let until = w.now + rtt;
        w.run_until(until, |w| w.now >= until);
        round += 1;
        for (k, (i, name, len)) in watched.iter().enumerate() {
            let got = w.delivered(*i, name);
            // The first rounds open the transfers (UPD, Hello, the first ACK).
            if round > 3 && last[k] < *len {
                assert!(
                    got > last[k],
                    "{name} made no progress in round trip {round} ({got} of {len} bytes)"
                );
            }
            last[k] = got;
        }
        assert!(round < 1_000, "the transfers never finished");
    }
    w.run_transfers();
    for &(i, name) in &peers {
        assert_eq!(
            w.peers[i].saved.get(&format!("yoda_to_{name}.mp4")),
            Some(&video(size + i))
        );
        assert_eq!(
            w.peers[yoda].saved.get(&format!("{name}_from_{name}.mp4")),
            Some(&video(size - i))
        );
    }
}

#[test]
fn a_new_upload_works_right_after_one_that_was_refused_aborted_or_failed() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(80_000);
    w.peers[yoda].sources.insert("a.mp4".into(), file.clone());

    // Refused by the server: luke blocks yoda.
    w.type_line(luke, "BLK yoda");
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(
        w.shown(yoda).contains("luke has blocked you"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(luke, "UNB yoda");
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&file));

    // Aborted: reading the source fails under the running upload.
    w.peers[yoda]
        .sources
        .insert("broken.mp4".into(), video(500_000));
    w.peers[yoda].failing_reads.insert("broken.mp4".into());
    w.upload(yoda, "luke", "broken.mp4");
    assert!(
        w.shown(yoda)
            .contains("Cannot read broken.mp4 for the upload to luke: input/output error"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke).contains(
            "Upload of broken.mp4 from yoda failed: yoda's client could not read the file on"
        ),
        "{}",
        w.shown(luke)
    );
    assert!(w.peers[luke].parts.is_empty());
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a (1).mp4"), Some(&file));

    // Failed: the path loses everything until both sides give up; then it heals.
    w.drop_every = 1;
    w.upload(yoda, "luke", "a.mp4");
    // Nothing ever got through: each side says the other may be unreachable, not that it
    // "went silent".
    assert!(
        w.shown(yoda).contains(
            "Upload of a.mp4 to luke failed: no answer at all came from luke's client at "
        ),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke).contains(
            "Upload of a.mp4 from yoda failed: nothing at all arrived from yoda's client at "
        ),
        "{}",
        w.shown(luke)
    );
    w.drop_every = 0;
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a (2).mp4"), Some(&file));
    assert_eq!(w.count_shown(yoda, "a.mp4 has been uploaded to luke"), 3);
}

#[test]
fn timers_run_after_inputs_so_a_flood_of_forged_datagrams_cannot_keep_a_dead_download_alive() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(300_000));
    // yoda's machine is unplugged before anything gets through.
    w.drop_every = 1;
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(w.peers[luke].client.is_transferring());
    // Then luke's socket gets a forged datagram every millisecond, and the driver hands it
    // nothing else: never an `Input::Timeout`.
    let from: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    for k in 0..12_000u64 {
        w.now += 1;
        let mut forged = b"HU\x01\x02".to_vec();
        forged.extend_from_slice(&k.to_be_bytes());
        forged.extend_from_slice(&[0xA5; 60]);
        let input = Input::Datagram {
            from,
            bytes: Bytes::from(forged),
        };
        w.peers[luke].client.handle_input(input, UnixMillis(w.now));
        while let Some(o) = w.peers[luke].client.poll_output() {
            w.carry_out(luke, o, UnixMillis(w.now));
        }
    }
    assert!(
        w.shown(luke).contains("Upload of a.mp4 from yoda failed"),
        "{}",
        w.shown(luke)
    );
    assert!(!w.peers[luke].client.is_transferring());
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );
}

#[test]
fn a_client_takes_a_bounded_number_of_downloads_and_tells_the_next_presenter_why_at_once() {
    let mut w = World::new();
    let limited = TransferConfig {
        max_incoming: 2,
        ..TransferConfig::default()
    };
    let luke = w.join_with("luke", "r2d2", limited);
    let presenters: Vec<usize> = [("yoda", "jedi"), ("leia", "alderaan"), ("hans", "solo")]
        .into_iter()
        .map(|(n, p)| w.join(n, p))
        .collect();
    for &i in &presenters {
        w.peers[i]
            .sources
            .insert("big.mp4".into(), video(2_000_000));
    }
    w.link.rate = Some(1_000_000);
    for &i in &presenters {
        w.type_line(i, "UPD luke big.mp4");
    }
    let asked = w.now;
    let hans = presenters[2];
    w.run_until(w.now + 5_000, |w| {
        w.shown(hans).contains("Upload of big.mp4 to luke failed")
    });
    assert!(
        w.shown(hans).contains(
            "luke's client is receiving too many files at once; try again when one has finished"
        ),
        "{}",
        w.shown(hans)
    );
    assert!(w.now - asked < 1_000, "told at once, not after a timeout");
    assert!(
        w.shown(luke)
            .contains("Refused the upload of big.mp4 from hans: already receiving 2 files at once"),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.peers[luke].parts.len() <= 2,
        "no part file for the refused one"
    );
    w.run_transfers();
    assert!(w.peers[luke].saved.contains_key("yoda_big.mp4"));
    assert!(w.peers[luke].saved.contains_key("leia_big.mp4"));
    // Once they are done, hans's next try works.
    w.upload(hans, "luke", "big.mp4");
    assert_eq!(
        w.peers[luke].saved.get("hans_big.mp4"),
        Some(&video(2_000_000))
    );
}

#[test]
fn a_presenter_is_told_at_once_when_the_audience_cannot_create_or_write_the_file() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(500_000));
    w.peers[luke].failing_creates = true;
    w.type_line(yoda, "UPD luke a.mp4");
    let asked = w.now;
    w.run_until(w.now + 20_000, |w| w.shown(yoda).contains("failed"));
    assert!(
        w.shown(yoda)
            .contains("Upload of a.mp4 to luke failed: luke's client cannot save the file"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.now - asked < 1_000,
        "told at once, not after the idle timeout"
    );
    assert!(
        w.shown(luke)
            .contains("Cannot save yoda_a.mp4 from yoda: permission denied")
    );

    // Writing fails half way (the disk filled up).
    w.peers[luke].failing_creates = false;
    w.peers[luke].failing_writes = true;
    w.type_line(yoda, "UPD luke a.mp4");
    let asked = w.now;
    w.run_until(w.now + 20_000, |w| w.count_shown(yoda, "failed") == 2);
    assert!(w.now - asked < 1_000, "told at once");
    assert_eq!(
        w.count_shown(yoda, "luke's client cannot save the file"),
        2,
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );

    // And when the disk is fine again, the next upload works.
    w.peers[luke].failing_writes = false;
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&video(500_000)));
}

/// A presenter limited to `max` uploads at once, and luke; `files` sources of `len` bytes
/// (`0.mp4`, `1.mp4`, …) each different.
/// yoda's upload of a 4 MB `0.mp4` to luke over a 1 MB/s path, a second into its data.
fn upload_under_way() -> (World, usize, usize) {
    let (mut w, yoda, luke) = limited_world(4, 1, 4_000_000);
    w.type_line(yoda, "UPD luke 0.mp4");
    w.run_until(w.now + 60_000, |w| !w.peers[luke].parts.is_empty());
    w.run_until(w.now + 1_000, |_| false);
    (w, yoda, luke)
}

fn limited_world(max: usize, files: usize, len: usize) -> (World, usize, usize) {
    let mut w = World::new();
    let limited = TransferConfig {
        max_outgoing: max,
        ..TransferConfig::default()
    };
    let yoda = w.join_with("yoda", "jedi", limited);
    let luke = w.join("luke", "r2d2");
    w.link.rate = Some(1_000_000);
    for n in 0..files {
        let mut data = video(len);
        data[0] = n as u8;
        w.peers[yoda].sources.insert(format!("{n}.mp4"), data);
    }
    (w, yoda, luke)
}

/// The server was asked for `n.mp4` for each `n` of `files`, in that order.
#[track_caller]
fn assert_asked_in_order(w: &World, files: &[usize]) {
    let asked: Vec<usize> = files
        .iter()
        .map(|n| {
            w.server_log
                .iter()
                .position(|l| l.contains(&format!("asked to upload {n}.mp4")))
                .expect("asked")
        })
        .collect();
    assert!(asked.windows(2).all(|p| p[0] < p[1]), "in order: {asked:?}");
}

#[test]
fn uploads_beyond_the_limit_wait_their_turn_and_every_one_arrives_in_the_order_asked() {
    let (mut w, yoda, luke) = limited_world(2, 7, 300_000);
    // As a script types them: each line once the previous one was answered.
    for n in 0..7 {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    assert_eq!(w.peers[yoda].prompts, 7 + 1, "every line answered at once");
    w.assert_shown(
        yoda,
        "2.mp4 to luke waits its turn: 2 uploads are running (the most at once); it goes next",
    );
    assert!(w.shown(yoda).contains(
        "6.mp4 to luke waits its turn: 2 uploads are running (the most at once); 4 go before it"
    ));
    assert!(
        !w.server_log_has("asked to upload 2.mp4"),
        "the server is asked only when its turn comes"
    );
    let mut most = 0;
    w.run_until(w.now + 120_000, |w| {
        most = most.max(w.peers[yoda].client.transfers.uploads_running());
        w.count_shown(yoda, "has been uploaded to luke") == 7
    });
    assert_eq!(most, 2, "never more than the limit at once");
    for n in 0..7 {
        let saved = match n {
            0 => "yoda_0.mp4".to_string(),
            n => format!("yoda_{n}.mp4"),
        };
        assert_eq!(
            w.peers[luke].saved.get(&saved),
            w.peers[yoda].sources.get(&format!("{n}.mp4")),
            "{n}.mp4"
        );
    }
    assert_asked_in_order(&w, &[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(w.peers[yoda].prompts, 7 + 1, "no prompt of its own");
}

#[test]
fn a_line_typed_while_a_queued_upload_starts_is_answered_after_it_and_nothing_is_lost() {
    let (mut w, yoda, _luke) = limited_world(1, 3, 200_000);
    w.type_line(yoda, "UPD luke 0.mp4");
    w.type_line(yoda, "UPD luke 1.mp4");
    assert_eq!(w.peers[yoda].prompts, 3);
    // 0.mp4 ends while the disk is slow: 1.mp4's file check hangs, the prompt stays open.
    w.peers[yoda].hold_inspections = true;
    w.run_until(w.now + 60_000, |w| {
        !w.peers[yoda].held_inspections.is_empty()
    });
    assert_eq!(w.peers[yoda].held_inspections, vec!["1.mp4".to_string()]);
    // The user answers the open prompt meanwhile; then ends the input (a script's last line).
    w.type_line(yoda, "MSG typed while 1.mp4 starts");
    assert!(!w.shown(yoda).contains("Please wait"), "{}", w.shown(yoda));
    assert!(
        !w.server_log_has("typed while"),
        "held until the start is done"
    );
    w.release_inspections(yoda);
    w.assert_shown(yoda, "Message #1 posted");
    assert_eq!(
        w.peers[yoda].prompts, 4,
        "one prompt for the line, none for the background start"
    );
    // End of input while the next one starts: it still logs out, after every upload.
    w.type_line(yoda, "UPD luke 2.mp4");
    w.peers[yoda].hold_inspections = true;
    w.run_until(w.now + 60_000, |w| {
        !w.peers[yoda].held_inspections.is_empty()
    });
    w.peers[yoda]
        .client
        .handle_input(Input::InputClosed, UnixMillis(w.now));
    w.release_inspections(yoda);
    w.run_until(w.now + 60_000, |w| w.peers[yoda].exit.is_some());
    assert_eq!(w.peers[yoda].exit, Some(ExitStatus::LoggedOut));
    assert_eq!(w.count_shown(yoda, "has been uploaded to luke"), 3);
}

#[test]
fn logging_out_lets_the_queued_uploads_run_first() {
    let (mut w, yoda, luke) = limited_world(1, 4, 200_000);
    for n in 0..4 {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    w.type_line(yoda, "OUT");
    w.assert_shown(
        yoda,
        "Logging out once the 3 queued uploads have run and the running transfers finish",
    );
    w.run_until(w.now + 120_000, |w| w.peers[yoda].exit.is_some());
    assert_eq!(w.peers[yoda].exit, Some(ExitStatus::LoggedOut));
    assert_eq!(w.count_shown(yoda, "has been uploaded to luke"), 4);
    assert_eq!(w.peers[luke].saved.len(), 4);
    let out = w.shown(yoda);
    let last = out
        .find("3.mp4 has been uploaded")
        .expect("the last one went");
    let bye = out.find("Goodbye").expect("logged out");
    assert!(last < bye, "{out}");
}

#[test]
fn cancel_takes_queued_uploads_out_of_line_and_a_failed_start_does_not_hold_the_rest() {
    let (mut w, yoda, luke) = limited_world(1, 6, 400_000);
    w.peers[yoda].sources.remove("2.mp4");
    for n in 0..5 {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    // A file that is not there is said at once, not when its turn would come.
    let out = w.shown(yoda);
    let missing = out.find("Cannot upload 2.mp4: no such file").expect("said");
    assert!(
        missing < out.find("3.mp4 to luke waits its turn").expect("queued"),
        "{out}"
    );
    assert!(!out.contains("2.mp4 to luke waits"), "{out}");
    w.type_line(yoda, "UPD luke 5.mp4");
    w.type_line(yoda, "CANCEL 3.mp4");
    w.assert_shown(
        yoda,
        "3.mp4 to luke will not be sent (it was waiting its turn)",
    );
    w.type_line(yoda, "CANCEL 3.mp4");
    w.assert_shown(yoda, "No running transfer");
    // 4.mp4 vanishes while it waits: said when its turn comes, and 5.mp4 still goes.
    w.peers[yoda].sources.remove("4.mp4");
    w.run_until(w.now + 120_000, |w| {
        w.count_shown(yoda, "has been uploaded to luke") == 3
    });
    w.assert_shown(yoda, "Cannot upload 4.mp4: no such file");
    let saved: Vec<&String> = w.peers[luke].saved.keys().collect();
    assert_eq!(saved, ["yoda_0.mp4", "yoda_1.mp4", "yoda_5.mp4"]);

    // CANCEL ALL stops the running one and empties the line.
    for n in [0, 1, 5] {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    w.type_line(yoda, "CANCEL ALL");
    w.assert_shown(
        yoda,
        "2 queued uploads will not be sent: 1.mp4 to luke, 5.mp4 to luke",
    );
    w.run_transfers();
    w.assert_shown(yoda, "Cancelled the upload of 0.mp4 to luke");
    assert_eq!(w.peers[luke].saved.len(), 3, "nothing more arrived");
    assert!(w.peers[yoda].client.queued.is_empty());
}

#[test]
fn the_queue_is_bounded_and_a_line_beyond_it_is_refused_clearly() {
    let (mut w, yoda, _luke) = limited_world(1, 1, 2_000_000);
    for _ in 0..=MAX_QUEUED_UPLOADS {
        w.type_line(yoda, "UPD luke 0.mp4");
    }
    assert_eq!(w.peers[yoda].client.queued.len(), MAX_QUEUED_UPLOADS);
    w.type_line(yoda, "UPD luke 0.mp4");
    w.assert_shown(yoda, "Cannot upload 0.mp4: 1 upload is running and 256 more wait their turn (the most); wait for one to finish");
    assert_eq!(w.peers[yoda].client.queued.len(), MAX_QUEUED_UPLOADS);
    // Interrupted: what waited is said to be unsent.
    w.peers[yoda]
        .client
        .handle_input(Input::Interrupt, UnixMillis(w.now));
    w.settle();
    w.assert_shown(
        yoda,
        "256 queued uploads were not sent: 0.mp4 to luke, 0.mp4 to luke",
    );
}

#[test]
fn an_audience_that_logs_out_right_after_a_download_still_confirms_it_to_the_presenter() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(200_000);
    w.peers[yoda].sources.insert("a.mp4".into(), file.clone());
    // luke's first two confirmations (`Done`, 44 bytes) are lost on the way.
    w.drop_sized = Some((44, 2));
    w.type_line(yoda, "UPD luke a.mp4");
    w.run_until(w.now + 10_000, |w| w.shown(luke).contains("Received a.mp4"));
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&file));
    // luke leaves at once; its client stays until yoda surely knows.
    w.type_line(luke, "OUT");
    w.run_until(w.now + 10_000, |w| w.peers[luke].exit.is_some());
    assert_eq!(w.peers[luke].exit, Some(ExitStatus::LoggedOut));
    w.run_transfers();
    assert!(
        w.shown(yoda).contains("a.mp4 has been uploaded to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        !w.shown(luke).contains("Logging out once"),
        "nothing was running"
    );
    assert_eq!(w.drop_sized, Some((44, 0)), "both confirmations were lost");
}

#[test]
fn three_thousand_pipelined_announcements_open_at_most_the_limit_of_part_files() {
    // A hostile (or broken) server pushes 3,000 upload announcements at once.
    let mut w = World::new();
    let luke = w.join("luke", "r2d2");
    let now = UnixMillis(w.now);
    let mut lines = String::new();
    for i in 0..3_000u64 {
        let grant = crate::proto::upload::UploadGrant {
            id: TransferId(0x1000 + i),
            secret: crate::transfer::TransferSecret([i as u8; 32]),
            peer: "127.0.0.1:9000".parse().unwrap(),
            user: UserName::new("yoda").unwrap(),
            size: 1_000_000,
            name: format!("v{i}.mp4"),
        };
        lines.push_str(&format!("* {grant}\n"));
    }
    let p = &mut w.peers[luke];
    p.client
        .handle_input(Input::ServerBytes(Bytes::from(lines)), now);
    let (mut creates, mut refusals, mut aborts) = (0, 0, 0);
    while let Some(o) = p.client.poll_output() {
        match o {
            // No part kept from before: each accepted download creates one.
            ClientOutput::File(FileOp::FindResumable { id, .. }) => {
                let result = FileResult::Resumable(Vec::new());
                p.client.handle_input(Input::File { id, result }, now);
            }
            ClientOutput::File(FileOp::CreatePart { .. }) => creates += 1,
            ClientOutput::Show(d) if d.text.contains("already receiving 16 files at once") => {
                refusals += 1
            }
            ClientOutput::Transmit { .. } => aborts += 1,
            _ => {}
        }
    }
    let max = TransferConfig::default().max_incoming;
    assert_eq!(creates, max, "one part file per accepted download, no more");
    assert_eq!(refusals, 3_000 - max);
    assert_eq!(aborts, 3_000 - max, "each refused presenter is told");
    // The refusals linger briefly to repeat themselves, then are gone.
    assert_eq!(w.peers[luke].client.transfers.held(), 3_000);
    w.run_until(w.now + 5_000, |_| false);
    assert_eq!(w.peers[luke].client.transfers.held(), max);
}

/// One upload of 400 KB with the first datagram of `len` bytes dropped; returns the
/// presenter's closing line.
fn upload_dropping_first(len: usize) -> (u64, String) {
    let mut w = World::new();
    let cfg = ClientConfig {
        transfer_stats: true,
        ..ClientConfig::default()
    };
    let yoda = w.join_configured("yoda", "jedi", cfg.clone());
    let luke = w.join_configured("luke", "r2d2", cfg);
    let data = video(400_000);
    w.peers[yoda]
        .sources
        .insert("a.mp4".to_string(), data.clone());
    w.drop_sized = Some((len, 1));
    let started = w.now;
    w.type_line(yoda, "UPD luke a.mp4");
    let limit = w.now + 60_000;
    w.run_until(limit, |w| w.count_shown(yoda, "has been uploaded") == 1);
    assert_eq!(
        w.drop_sized,
        Some((len, 0)),
        "a {len}-byte datagram was dropped\n{}",
        w.shown(yoda)
    );
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&data));
    (w.now - started, w.shown(yoda))
}

#[test]
fn a_lost_start_or_first_ack_costs_round_trips_not_the_initial_probe_timeout() {
    // On a 5 ms path (the world's latency) the upload takes well under 100 ms; the initial
    // probe timeout, before any RTT is known, is 602 ms. `Start` is 44 bytes, the first ACK
    // 56, a `Hello` 81 and a `Welcome` 78 (each sent twice at first).
    for len in [44, 56, 81, 78] {
        let (took, shown) = upload_dropping_first(len);
        assert!(
            took < 300,
            "dropping a {len}-byte datagram: {took} ms\n{shown}"
        );
    }
}

#[test]
fn sixty_uploads_at_five_percent_loss_never_wait_the_initial_probe_timeout() {
    // Before the first RTT sample a probe timeout is 602 ms; one lost handshake datagram that
    // was sent only once used to cost that in about one upload in fifteen.
    let mut w = World::new();
    w.link.loss = 0.05;
    let cfg = ClientConfig {
        transfer_stats: true,
        ..ClientConfig::default()
    };
    let yoda = w.join_configured("yoda", "jedi", cfg.clone());
    let _luke = w.join_configured("luke", "r2d2", cfg);
    for round in 0..60 {
        w.peers[yoda]
            .sources
            .insert(format!("a{round}.mp4"), video(200_000 + round));
        w.type_line(yoda, &format!("UPD luke a{round}.mp4"));
        w.run_transfers();
    }
    let done: Vec<&String> = w.peers[yoda]
        .shown
        .iter()
        .filter(|l| l.contains("has been uploaded"))
        .collect();
    assert_eq!(done.len(), 60);
    for l in done {
        let wait: u64 = l
            .rsplit("longest wait ")
            .next()
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(wait < 600, "{l}");
    }
}

#[test]
fn a_queued_upload_the_server_refuses_says_which_it_was_and_the_next_is_still_asked_for() {
    let (mut w, yoda, luke) = limited_world(1, 3, 300_000);
    for n in 0..3 {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    // luke blocks yoda while 0.mp4 runs and 1.mp4 and 2.mp4 wait: the block stops 0.mp4 too.
    w.type_line(luke, "BLK yoda");
    w.run_transfers();
    let out = w.shown(yoda);
    assert!(
        out.contains("Upload of 0.mp4 to luke failed: luke's client refused the file"),
        "{out}"
    );
    for n in [1, 2] {
        assert!(
            out.contains(&format!(
                "Cannot upload {n}.mp4 to luke: luke has blocked you"
            )),
            "{out}"
        );
    }
    // Unblocked, the same file goes: nothing of the refused start is left behind.
    w.type_line(luke, "UNB yoda");
    w.upload(yoda, "luke", "2.mp4");
    assert_eq!(
        w.peers[luke].saved.get("yoda_2.mp4"),
        w.peers[yoda].sources.get("2.mp4")
    );
    assert_eq!(w.peers[yoda].prompts, 3 + 1 + 1);
}

#[test]
fn an_upload_asked_for_while_others_wait_goes_behind_them_even_when_slots_are_free() {
    let (mut w, yoda, _luke) = limited_world(2, 5, 300_000);
    w.peers[yoda].sources.insert("9.mp4".into(), video(100_000));
    for n in 0..5 {
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    // 2.mp4's file check hangs when its turn comes; meanwhile 0 and 1 both end.
    w.peers[yoda].hold_inspections = true;
    w.run_until(w.now + 60_000, |w| {
        w.peers[yoda].client.transfers.uploads_running() == 0
    });
    assert_eq!(w.peers[yoda].held_inspections, vec!["2.mp4".to_string()]);
    w.type_line(yoda, "UPD luke 9.mp4");
    w.release_inspections(yoda);
    w.run_until(w.now + 120_000, |w| {
        w.count_shown(yoda, "has been uploaded to luke") == 6
    });
    w.assert_shown(yoda, "9.mp4 to luke waits its turn: 2 go before it");
    assert_asked_in_order(&w, &[0, 1, 2, 3, 4, 9]);
}

#[test]
fn a_peer_whose_client_dies_ends_its_transfers_when_the_server_says_it_went_offline() {
    // luke's client dies in the middle of yoda's upload.
    let (mut w, yoda, luke) = upload_under_way();
    let died = w.now;
    w.crash(luke);
    w.assert_shown(yoda, "luke went offline");
    w.assert_shown(
        yoda,
        "Upload of 0.mp4 to luke failed: luke went offline (its client stopped)",
    );
    // A client that died keeps nothing (its next start removes the part): no resume promised.
    w.assert_shown(yoda, "sending it again once luke is back starts over");
    assert_eq!(w.now, died, "at once, not after the idle timeout");
    assert!(!w.peers[yoda].client.is_transferring());

    // And the other way: yoda's client dies while luke, back, receives from it.
    let luke = w.join("luke", "r2d2");
    w.type_line(yoda, "UPD luke 0.mp4");
    w.run_until(w.now + 60_000, |w| {
        w.peers[luke]
            .parts
            .values()
            .any(|(_, b)| b.len() >= 2 << 20)
    });
    let died = w.now;
    w.crash(yoda);
    w.assert_shown(luke, "Upload of 0.mp4 from yoda failed: yoda went offline");
    w.assert_shown(
        luke,
        "are kept: if yoda sends it again, it resumes from there",
    );
    assert_eq!(w.now, died, "at once");
    assert_eq!(w.peers[luke].kept.len(), 1, "the part is kept for resuming");
}

/// What a person or a script does to a client with queued uploads, for the property below.
#[derive(Debug, Clone)]
enum QueueOp {
    /// `UPD luke u<k>.mp4` for the next k.
    Upd,
    /// `CANCEL u<k>.mp4` for an upload asked for before (running, waiting or over).
    Cancel(usize),
    CancelAll,
    /// Let virtual time pass.
    Run(u64),
}

fn queue_op() -> impl proptest::strategy::Strategy<Value = QueueOp> {
    use proptest::prelude::*;
    prop_oneof![
        4 => Just(QueueOp::Upd),
        1 => (0usize..12).prop_map(QueueOp::Cancel),
        1 => Just(QueueOp::CancelAll),
        3 => (0u64..400).prop_map(QueueOp::Run),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 64,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever is typed, in any order: never more than the limit at once, uploads start in the
    /// order they were asked for, every one ends in exactly one way the presenter is told, and
    /// what arrives is what was sent; `OUT` still logs out.
    #[test]
    fn every_queued_upload_ends_once_in_order_and_the_limit_holds(
        ops in proptest::collection::vec(queue_op(), 1..24),
        lossy in proptest::bool::ANY,
    ) {
        let (mut w, yoda, luke) = limited_world(2, 0, 0);
        if lossy {
            w.link.loss = 0.05;
            w.link.duplicate = 0.02;
        }
        let mut asked = 0usize;
        let mut most = 0;
        for op in ops {
            match op {
                QueueOp::Upd => {
                    let mut data = video(30_000 + asked * 7_001);
                    data[0] = asked as u8;
                    w.peers[yoda].sources.insert(format!("u{asked}.mp4"), data);
                    w.type_line(yoda, &format!("UPD luke u{asked}.mp4"));
                    asked += 1;
                }
                QueueOp::Cancel(k) if k < asked => w.type_line(yoda, &format!("CANCEL u{k}.mp4")),
                QueueOp::Cancel(_) => {}
                QueueOp::CancelAll => w.type_line(yoda, "CANCEL ALL"),
                QueueOp::Run(ms) => w.run_until(w.now + ms, |w| {
                    most = most.max(w.peers[yoda].client.transfers.uploads_running());
                    false
                }),
            }
            most = most.max(w.peers[yoda].client.transfers.uploads_running());
        }
        w.type_line(yoda, "OUT");
        w.run_until(w.now + 600_000, |w| {
            most = most.max(w.peers[yoda].client.transfers.uploads_running());
            w.peers[yoda].exit.is_some()
        });
        proptest::prop_assert_eq!(w.peers[yoda].exit.clone(), Some(ExitStatus::LoggedOut));
        proptest::prop_assert!(most <= 2, "{} at once", most);
        let shown = w.peers[yoda].shown.clone();
        let mut started = Vec::new();
        for k in 0..asked {
            let name = format!("u{k}.mp4");
            let ends = [
                format!("{name} has been uploaded to luke"),
                format!("Cancelled the upload of {name} to luke"),
                format!("{name} to luke will not be sent"),
                format!(", {name} to luke"),
                format!(": {name} to luke"),
            ];
            let outcomes: usize = shown
                .iter()
                .map(|l| ends.iter().filter(|e| l.contains(e.as_str())).count())
                .sum();
            proptest::prop_assert_eq!(outcomes, 1, "{} ended {} times:\n{}", name, outcomes, shown.join("\n"));
            if let Some(at) = shown.iter().position(|l| l.starts_with(&format!("Uploading {name} "))) {
                started.push((at, k));
            }
            // What the presenter was told about arrival is what happened: uploaded, or a
            // cancel that came too late and said so.
            let arrived = w.peers[luke].saved.get(&format!("yoda_{name}"));
            let too_late = format!("{name} had reached luke before that");
            let told = shown.iter().any(|l| l.contains(&ends[0]) || l.contains(&too_late));
            if told {
                proptest::prop_assert_eq!(arrived, w.peers[yoda].sources.get(&name));
            } else {
                proptest::prop_assert!(arrived.is_none(), "{} arrived, the presenter was not told:\n{}", name, shown.join("\n"));
            }
        }
        started.sort();
        proptest::prop_assert!(
            started.windows(2).all(|p| p[0].1 < p[1].1),
            "started out of order: {:?}", started
        );
    }
}

#[test]
fn a_cancel_that_comes_too_late_says_the_file_arrived_anyway() {
    // Found by the property above: the last bytes and the hash are out when the user cancels;
    // luke has the whole file before yoda's Abort reaches it.
    let (mut w, yoda, luke) = limited_world(2, 1, 30_000);
    w.type_line(yoda, "UPD luke 0.mp4");
    w.run_until(w.now + 60_000, |w| {
        let set = w.peers[yoda].client.transfers.set();
        set.ids()
            .any(|id| matches!(set.get(id), Some(crate::transfer::Role::Send(s)) if s.hash_sent()))
    });
    w.type_line(yoda, "CANCEL ALL");
    w.type_line(yoda, "OUT");
    w.run_until(w.now + 60_000, |w| w.peers[yoda].exit.is_some());
    w.assert_shown(yoda, "Cancelled the upload of 0.mp4 to luke");
    assert_eq!(
        w.peers[luke].saved.get("yoda_0.mp4"),
        w.peers[yoda].sources.get("0.mp4"),
        "it did arrive"
    );
    w.assert_shown(
        yoda,
        "0.mp4 had reached luke before that: luke has the whole file",
    );
    let out = w.shown(yoda);
    let told = out.find("had reached luke").expect("told");
    let bye = out.find("Goodbye").expect("logged out");
    assert!(told < bye, "OUT waited to hear it: {out}");
}

#[test]
fn an_upload_whose_done_is_lost_after_backed_off_probes_still_completes() {
    // Found by the property above with loss: u1's data and `Fin` arrived (luke kept the file)
    // but its `Done`s were lost while the sender's probe timeout had backed off past the
    // receiver's linger; luke left, and yoda gave up after the idle timeout: "the peer went
    // silent" for a file that had arrived.
    let (mut w, yoda, luke) = limited_world(2, 0, 0);
    w.link.loss = 0.05;
    w.link.duplicate = 0.02;
    for k in 0..6usize {
        let mut data = video(30_000 + k * 7_001);
        data[0] = k as u8;
        w.peers[yoda].sources.insert(format!("u{k}.mp4"), data);
        w.type_line(yoda, &format!("UPD luke u{k}.mp4"));
        if k == 1 {
            w.run_until(w.now + 111, |_| false);
        }
    }
    w.type_line(yoda, "OUT");
    w.run_until(w.now + 600_000, |w| w.peers[yoda].exit.is_some());
    let out = w.shown(yoda);
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(w.count_shown(yoda, "has been uploaded to luke"), 6, "{out}");
    for k in 0..6 {
        assert_eq!(
            w.peers[luke].saved.get(&format!("yoda_u{k}.mp4")),
            w.peers[yoda].sources.get(&format!("u{k}.mp4"))
        );
    }
}

#[test]
fn blocking_a_presenter_stops_its_download_and_its_question_at_once() {
    // yoda sends luke a file on a slow path; luke blocks yoda half-way.
    let (mut w, yoda, luke) = upload_under_way();
    w.type_line(luke, "BLK yoda");
    w.assert_shown(
        luke,
        "Stopped 0.mp4 from yoda: you blocked yoda; yoda was told; the partial file was removed",
    );
    w.run_transfers();
    w.assert_shown(
        yoda,
        "Upload of 0.mp4 to luke failed: luke's client refused the file",
    );
    assert!(w.peers[luke].parts.is_empty() && w.peers[luke].kept.is_empty());
    assert!(w.peers[luke].saved.is_empty());
    assert!(!w.peers[luke].client.is_transferring());
    // And the server refuses the next one: the block holds.
    w.type_line(yoda, "UPD luke 0.mp4");
    w.assert_shown(yoda, "luke has blocked you");
}

#[test]
fn a_server_shutdown_mid_upload_says_why_the_transfers_stop_and_never_that_a_client_died() {
    let (mut w, yoda, luke) = upload_under_way();
    w.server.shutdown(UnixMillis(w.now));
    w.settle();
    w.run_transfers();
    for (me, other) in [(yoda, "luke"), (luke, "yoda")] {
        w.assert_shown(
            me,
            "Disconnected by the server: The server is shutting down",
        );
        w.assert_shown(
            me,
            "The running transfers stop now: this client exits because the server closed the connection",
        );
        assert!(
            !w.shown(me).contains(&format!("{other} went offline")),
            "{}",
            w.shown(me)
        );
        assert_eq!(w.peers[me].exit, Some(ExitStatus::ServerClosed));
    }
}
