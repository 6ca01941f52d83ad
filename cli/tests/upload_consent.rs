//! Consent with the real binaries: a piped client decides by its flags (`--accept`,
//! `--max-upload`, `--trust`) and a script can answer the question; the presenter is told of
//! a decline at once. Both runtimes. (The interactive question is in `terminal.rs`.)

mod common;

use common::*;

fn file_of(len: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, vec![5u8; len]).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

#[test]
fn a_piped_client_declines_by_policy_and_the_presenter_is_told_at_once() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let luke = LiveClient::login_with(
            &server,
            rt,
            "luke",
            "r2d2",
            tempfile::tempdir().unwrap(),
            &["--accept", "never", "--trust", "leia", "--max-upload", "1M"],
        );
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let mut leia = LiveClient::login(&server, "leia", "alderaan");
        let (_small_dir, small) = file_of(100_000);
        let (_big_dir, big) = file_of(2 << 20);
        // Told at once: the decision timeout (2 minutes) is far beyond the wait's patience.
        yoda.command(
            &format!("UPD luke {small}"),
            "luke declined clip.mp4; nothing was sent",
        );
        luke.out.wait_for(
            "Declined clip.mp4 from yoda: this client takes uploads only from trusted presenters (--accept never); yoda was told",
        );
        leia.command(
            &format!("UPD luke {big}"),
            "luke's client declined clip.mp4 without asking: it is larger than luke takes (its --max-upload); nothing was sent",
        );
        luke.out
            .wait_for("Declined clip.mp4 from leia: it is larger than the 1.0 MiB this client takes (--max-upload)");
        leia.command(
            &format!("UPD luke {small}"),
            "clip.mp4 has been uploaded to luke",
        );
        luke.out.wait_for("saved as leia_clip.mp4");
        let saved: Vec<_> = std::fs::read_dir(luke.downloads.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(saved, vec!["leia_clip.mp4".to_string()], "{rt}");
    }
}

#[test]
fn a_script_answers_the_question_with_y_or_n() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login_with(
            &server,
            rt,
            "luke",
            "r2d2",
            tempfile::tempdir().unwrap(),
            &["--accept", "ask"],
        );
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let (_d, clip) = file_of(300_000);
        for (round, answer) in ["n", "y", "n", "y"].iter().enumerate() {
            let from = luke.out.len();
            yoda.send(&format!("UPD luke {clip}"));
            luke.out.wait_for_after(
                from,
                "Accept clip.mp4 (293.0 KiB) from yoda? Answer y or n; no answer within 2 min declines it.",
            );
            let from_yoda = yoda.out.len();
            luke.send(answer);
            let expect = if *answer == "y" {
                "clip.mp4 has been uploaded to luke"
            } else {
                "luke declined clip.mp4; nothing was sent"
            };
            yoda.out.wait_for_after(from_yoda, expect);
            assert!(
                !yoda.out.text().contains("failed"),
                "{rt} round {round}: {}",
                yoda.out.text()
            );
        }
        luke.out.wait_for("saved as yoda_clip (1).mp4");
        luke.command("OUT", "Goodbye");
        assert_eq!(luke.wait_exit(), 0);
        let names = std::fs::read_dir(luke.downloads.path()).unwrap().count();
        assert_eq!(names, 2, "{rt}: two accepted, two declined");
    }
}
