//! End-to-end uploads: the real binaries, the server introducing two clients, the file
//! crossing real loopback UDP between them, for every runtime in `common::RUNTIMES`.

mod common;

use common::*;

fn video(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_multi_mib_upload_arrives_intact_as_presenter_underscore_name() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let luke = LiveClient::login(&server, "luke", "r2d2");
        let src = tempfile::tempdir().unwrap();
        let path = src.path().join("clip.mp4");
        let data = video(6 << 20);
        std::fs::write(&path, &data).unwrap();
        let upd = format!("UPD luke {}", path.display());
        let (code, out) = run_script(&server, &["yoda", "jedi*knight", &upd, "OUT"]);
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(
            out.contains("Uploading clip.mp4 (6.0 MiB) to luke"),
            "{out}"
        );
        assert!(out.contains("clip.mp4 has been uploaded to luke"), "{out}");
        luke.out
            .wait_for("Incoming upload: yoda sends clip.mp4 (6.0 MiB)");
        luke.out
            .wait_for("Received clip.mp4 from yoda, saved as yoda_clip.mp4");
        let got = std::fs::read(luke.downloads.path().join("yoda_clip.mp4")).unwrap();
        assert!(got == data, "{rt}: the received file differs");
        assert!(!luke.downloads.path().join("yoda_clip.mp4.part").exists());
        server
            .log
            .wait_for("yoda asked to upload clip.mp4 (6291456 bytes) to luke: approved");
    }
}

#[test]
fn upload_errors_are_explained_and_the_session_goes_on() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let mut hans = LiveClient::login(&server, "hans", "falcon*solo");
        hans.command("BLK yoda", "yoda is now blocked");
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("a.mp4");
        std::fs::write(&file, b"tiny").unwrap();
        let missing = format!("UPD hans {}", src.path().join("missing.mp4").display());
        let folder = format!("UPD hans {}", src.path().display());
        let blocked = format!("UPD hans {}", file.display());
        let offline = format!("UPD leia {}", file.display());
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                &missing,
                &folder,
                &blocked,
                &offline,
                "UPD",
                "MSG still here",
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("missing.mp4: no such file"), "{out}");
        assert!(out.contains("it is a directory, not a file"), "{out}");
        assert!(out.contains("hans has blocked you"), "{out}");
        assert!(out.contains("leia is offline"), "{out}");
        assert!(out.contains("Usage: UPD user file"), "{out}");
        assert!(out.contains("Message #1 posted"), "{out}");
    }
}
