//! Long client sessions with uploads, with the real binaries over loopback, on every runtime:
//! the 1st and the 50th upload of one session work, in both directions, several at once on
//! one socket, and right after one that was refused or failed.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn video(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// `UPD to path` at `from`, waiting until the presenter says it is done.
fn upload(from: &mut LiveClient, to: &str, path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    from.command(
        &format!("UPD {to} {}", path.display()),
        &format!("{name} has been uploaded to {to}"),
    );
}

fn saved(client: &LiveClient, name: &str) -> Vec<u8> {
    std::fs::read(client.downloads.path().join(name)).unwrap_or_default()
}

#[test]
fn fifty_uploads_in_a_row_then_twenty_received_on_one_session() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let src = tempfile::tempdir().unwrap();
        let mut sent = Vec::new();
        for n in 0..50u64 {
            let data = video(8_000 + n as usize * 613, n);
            let path = write(src.path(), "clip.mp4", &data);
            upload(&mut yoda, "luke", &path);
            sent.push(data);
        }
        luke.out.wait_for("saved as yoda_clip (49).mp4");
        for (n, data) in sent.iter().enumerate() {
            let name = match n {
                0 => "yoda_clip.mp4".to_string(),
                n => format!("yoda_clip ({n}).mp4"),
            };
            assert!(
                saved(&luke, &name) == *data,
                "{rt}: upload {} changed",
                n + 1
            );
        }
        for n in 0..20u64 {
            let data = video(12_000 + n as usize * 101, 100 + n);
            let path = write(src.path(), &format!("reply{n}.mp4"), &data);
            upload(&mut luke, "yoda", &path);
            yoda.out.wait_for(&format!("saved as luke_reply{n}.mp4"));
            assert!(
                saved(&yoda, &format!("luke_reply{n}.mp4")) == data,
                "{rt}: download {} changed",
                n + 1
            );
        }
        assert!(
            !yoda.out.text().contains("failed"),
            "{rt}: {}",
            yoda.out.text()
        );
        yoda.command("OUT", "Goodbye, yoda!");
        assert_eq!(yoda.wait_exit(), 0);
    }
}

#[test]
fn uploads_in_both_directions_at_once() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let src = tempfile::tempdir().unwrap();
        for round in 0..3u64 {
            let a = video(400_000, round);
            let b = video(300_000, 10 + round);
            let pa = write(src.path(), &format!("a{round}.mp4"), &a);
            let pb = write(src.path(), &format!("b{round}.mp4"), &b);
            let (fy, fl) = (yoda.out.len(), luke.out.len());
            yoda.send(&format!("UPD luke {}", pa.display()));
            luke.send(&format!("UPD yoda {}", pb.display()));
            yoda.out
                .wait_for_after(fy, &format!("a{round}.mp4 has been uploaded to luke"));
            luke.out
                .wait_for_after(fl, &format!("b{round}.mp4 has been uploaded to yoda"));
            luke.out
                .wait_for_after(fl, &format!("saved as yoda_a{round}.mp4"));
            yoda.out
                .wait_for_after(fy, &format!("saved as luke_b{round}.mp4"));
            assert!(saved(&luke, &format!("yoda_a{round}.mp4")) == a, "{rt}");
            assert!(saved(&yoda, &format!("luke_b{round}.mp4")) == b, "{rt}");
        }
    }
}

#[test]
fn a_script_that_pipes_forty_uploads_then_out_sends_every_one() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let luke = LiveClient::login(&server, "luke", "r2d2");
        let src = tempfile::tempdir().unwrap();
        let mut script = vec!["yoda".to_string(), "jedi*knight".to_string()];
        let mut sent = Vec::new();
        for n in 0..40u64 {
            let data = video(200_000 + n as usize * 977, 300 + n);
            let path = write(src.path(), &format!("c{n}.mp4"), &data);
            script.push(format!("UPD luke {}", path.display()));
            sent.push(data);
        }
        script.push("OUT".to_string());
        let lines: Vec<&str> = script.iter().map(String::as_str).collect();
        // Two at a time, each at most 4 MB/s: the lines come much faster than uploads end.
        let (code, out) = run_script_with(
            &server,
            rt,
            &["--max-uploads", "2", "--max-rate", "4M"],
            &lines,
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert_eq!(
            out.matches("has been uploaded to luke").count(),
            40,
            "{rt}: {out}"
        );
        // How many waited depends on the machine's speed; that the queue was used does not.
        assert!(out.contains("to luke waits its turn"), "{rt}: {out}");
        assert!(!out.contains("Cannot upload"), "{rt}: {out}");
        let last = out
            .find("c39.mp4 has been uploaded")
            .expect("the last one went");
        let bye = out.find("Goodbye, yoda!").expect("logged out");
        assert!(last < bye, "{rt}: OUT waited for the queue: {out}");
        for (n, data) in sent.iter().enumerate() {
            luke.out.wait_for(&format!("saved as yoda_c{n}.mp4"));
            assert!(
                saved(&luke, &format!("yoda_c{n}.mp4")) == *data,
                "{rt}: c{n}.mp4 changed"
            );
        }
    }
}

#[test]
fn an_audience_killed_mid_upload_ends_it_at_once_and_the_next_one_works() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let folder = tempfile::tempdir().unwrap();
        let mut luke = LiveClient::login_in_folder(&server, rt, "luke", "r2d2", folder.path(), &[]);
        let mut yoda = LiveClient::login_with(
            &server,
            rt,
            "yoda",
            "jedi*knight",
            tempfile::tempdir().unwrap(),
            &["--max-rate", "2M"],
        );
        let src = tempfile::tempdir().unwrap();
        let data = video(4 << 20, 77);
        let path = write(src.path(), "long.mp4", &data);
        yoda.command(
            &format!("UPD luke {}", path.display()),
            "Uploading long.mp4",
        );
        // Some of it is on luke's disk: the upload is under way.
        let part_has_bytes = || {
            std::fs::read_dir(folder.path())
                .unwrap()
                .flatten()
                .any(|e| {
                    e.file_name().to_string_lossy().ends_with(".part")
                        && e.metadata().is_ok_and(|m| m.len() > 0)
                })
        };
        while !part_has_bytes() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        luke.signal(libc::SIGKILL);
        let _ = luke.wait_exit();
        yoda.out
            .wait_for("Upload of long.mp4 to luke failed: luke went offline (its client stopped)");
        assert!(
            !yoda.out.text().contains("went silent"),
            "{rt}: told by the server, not by the idle timeout: {}",
            yoda.out.text()
        );
        // luke is back in the same folder; the same file goes again, whole.
        let luke = LiveClient::login_in_folder(&server, rt, "luke", "r2d2", folder.path(), &[]);
        yoda.command(
            &format!("UPD luke {}", path.display()),
            "long.mp4 has been uploaded to luke",
        );
        luke.out.wait_for("saved as yoda_long.mp4");
        assert!(
            std::fs::read(folder.path().join("yoda_long.mp4")).unwrap_or_default() == data,
            "{rt}: the second upload arrives whole"
        );
    }
}

#[test]
fn eight_concurrent_transfers_on_one_socket_four_out_four_in() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let mut others: Vec<(LiveClient, &str)> = vec![
            (LiveClient::login(&server, "luke", "r2d2"), "luke"),
            (LiveClient::login(&server, "leia", "alderaan"), "leia"),
            (LiveClient::login(&server, "hans", "falcon*solo"), "hans"),
            // Signs up: a fourth peer.
            (
                LiveClient::login(&server, "obiwan", "hello*there"),
                "obiwan",
            ),
        ];
        let src = tempfile::tempdir().unwrap();
        let size = 1 << 20;
        let start = yoda.out.len();
        for (k, (peer, name)) in others.iter_mut().enumerate() {
            let out = write(
                src.path(),
                &format!("to_{name}.mp4"),
                &video(size, k as u64),
            );
            let back = write(
                src.path(),
                &format!("from_{name}.mp4"),
                &video(size, 50 + k as u64),
            );
            yoda.command(
                &format!("UPD {name} {}", out.display()),
                &format!("Uploading to_{name}.mp4"),
            );
            peer.command(
                &format!("UPD yoda {}", back.display()),
                &format!("Uploading from_{name}.mp4"),
            );
        }
        for (k, (peer, name)) in others.iter().enumerate() {
            yoda.out
                .wait_for_after(start, &format!("to_{name}.mp4 has been uploaded to {name}"));
            yoda.out
                .wait_for_after(start, &format!("saved as {name}_from_{name}.mp4"));
            peer.out.wait_for(&format!("saved as yoda_to_{name}.mp4"));
            assert!(
                saved(peer, &format!("yoda_to_{name}.mp4")) == video(size, k as u64),
                "{rt}: to {name}"
            );
            assert!(
                saved(&yoda, &format!("{name}_from_{name}.mp4")) == video(size, 50 + k as u64),
                "{rt}: from {name}"
            );
        }
    }
}

#[test]
fn a_new_upload_works_right_after_a_refused_one() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let src = tempfile::tempdir().unwrap();
        let data = video(200_000, 7);
        let path = write(src.path(), "a.mp4", &data);
        luke.command("BLK yoda", "yoda is now blocked");
        yoda.command(
            &format!("UPD luke {}", path.display()),
            "luke has blocked you",
        );
        yoda.command(&format!("UPD leia {}", path.display()), "leia is offline");
        luke.command("UNB yoda", "unblocked");
        upload(&mut yoda, "luke", &path);
        luke.out.wait_for("saved as yoda_a.mp4");
        assert!(saved(&luke, "yoda_a.mp4") == data, "{rt}");
    }
}

#[test]
fn the_presenter_is_told_why_when_the_audience_cannot_save_and_the_next_upload_works() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let src = tempfile::tempdir().unwrap();
        let data = video(300_000, 9);
        let path = write(src.path(), "a.mp4", &data);
        // luke's download folder is replaced by a plain file: nothing can be created there.
        let folder = luke.downloads.path().to_path_buf();
        std::fs::remove_dir_all(&folder).unwrap();
        std::fs::write(&folder, b"not a folder").unwrap();
        let line = yoda.command(
            &format!("UPD luke {}", path.display()),
            "Upload of a.mp4 to luke failed",
        );
        assert!(
            line.contains("luke's client cannot save the file"),
            "{rt}: told why, not that luke went silent: {line}"
        );
        luke.out.wait_for("Cannot save yoda_a.mp4 from yoda");
        // The folder is back: the same session's next upload works.
        std::fs::remove_file(&folder).unwrap();
        std::fs::create_dir(&folder).unwrap();
        upload(&mut yoda, "luke", &path);
        luke.out.wait_for("saved as yoda_a.mp4");
        assert!(saved(&luke, "yoda_a.mp4") == data, "{rt}");
    }
}

#[test]
fn a_part_file_left_by_a_crash_is_removed_when_a_client_starts_in_that_folder() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let downloads = tempfile::tempdir().unwrap();
        let stale = downloads.path().join("yoda_clip.mp4.00000000deadbeef.part");
        std::fs::write(&stale, vec![0u8; 10_000]).unwrap();
        std::fs::write(downloads.path().join("keep.mp4"), b"mine").unwrap();
        let mut luke = LiveClient::login_in(&server, rt, "luke", "r2d2", downloads);
        assert!(!stale.exists(), "{rt}: the crash's part file is gone");
        assert!(luke.downloads.path().join("keep.mp4").exists());
        luke.command("OUT", "Goodbye, luke!");
    }
}

#[test]
fn uploads_through_emulated_loss_arrive_intact_and_say_what_they_repeated() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let lossy = ["--emulate-loss", "20", "--transfer-stats"];
        let luke = LiveClient::login_with(
            &server,
            rt,
            "luke",
            "r2d2",
            tempfile::tempdir().unwrap(),
            &lossy,
        );
        let mut yoda = LiveClient::login_with(
            &server,
            rt,
            "yoda",
            "jedi*knight",
            tempfile::tempdir().unwrap(),
            &lossy,
        );
        let src = tempfile::tempdir().unwrap();
        let data = video(2 << 20, 3);
        let path = write(src.path(), "lossy.mp4", &data);
        let line = yoda.command(
            &format!("UPD luke {}", path.display()),
            "lossy.mp4 has been uploaded to luke",
        );
        let repeated: u64 = line
            .split(", ")
            .find(|f| f.ends_with(" repeated"))
            .and_then(|f| f.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            repeated > 0,
            "{rt}: a fifth of the datagrams were lost: {line}"
        );
        luke.out.wait_for("saved as yoda_lossy.mp4");
        assert!(saved(&luke, "yoda_lossy.mp4") == data, "{rt}");
    }
}

#[test]
fn a_client_with_max_downloads_refuses_one_more_and_its_presenter_is_told_why() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let luke = LiveClient::login_with(
            &server,
            rt,
            "luke",
            "r2d2",
            tempfile::tempdir().unwrap(),
            &["--max-downloads", "1"],
        );
        // yoda's path loses almost everything, so its upload stays running.
        let mut yoda = LiveClient::login_with(
            &server,
            rt,
            "yoda",
            "jedi*knight",
            tempfile::tempdir().unwrap(),
            &["--emulate-loss", "99"],
        );
        let mut leia = LiveClient::login(&server, "leia", "alderaan");
        let src = tempfile::tempdir().unwrap();
        let slow = write(src.path(), "slow.mp4", &video(1 << 20, 1));
        let next = write(src.path(), "next.mp4", &video(100_000, 2));
        yoda.command(
            &format!("UPD luke {}", slow.display()),
            "Uploading slow.mp4",
        );
        luke.out.wait_for("Incoming upload: yoda sends slow.mp4");
        let line = leia.command(
            &format!("UPD luke {}", next.display()),
            "Upload of next.mp4 to luke failed",
        );
        assert!(
            line.contains("luke's client is receiving too many files at once"),
            "{rt}: {line}"
        );
        luke.out
            .wait_for("Refused the upload of next.mp4 from leia: already receiving 1 file at once");
    }
}
