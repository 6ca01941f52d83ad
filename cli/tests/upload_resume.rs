//! Cancel and resume with the real binaries, both runtimes: an upload cut at 30 % by the
//! audience's `CANCEL` (the presenter is told at once) leaves a `.part` and its `.resume`
//! sidecar, which survive the client's restart; sending the file again resumes from there and
//! the copy is byte-identical. A part cut at 99 %, and one damaged on disk, resume from what
//! can be trusted.

mod common;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn video(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The `.part` files in `dir`.
fn parts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".part"))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until the download being written in `dir` holds at least `bytes` on disk.
fn wait_for_part(dir: &Path, bytes: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let size: u64 = parts(dir)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if size >= bytes {
            return;
        }
        assert!(Instant::now() < deadline, "the part never reached {bytes}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// The number after `had ` in a presenter's closing line: what the audience already had.
fn had(line: &str) -> f64 {
    line.split(" had ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume in {line:?}"))
}

/// An upload from yoda (capped at `rate`) to luke, who saves into `folder`; returns both
/// clients, the source path and its bytes.
struct Session {
    _data: tempfile::TempDir,
    server: ServerProc,
    folder: tempfile::TempDir,
    src: tempfile::TempDir,
}

impl Session {
    fn new(rt: &'static str) -> Self {
        let data = data_dir();
        let server = ServerProc::start(rt, data.path(), &[]);
        Session {
            _data: data,
            server,
            folder: tempfile::tempdir().unwrap(),
            src: tempfile::tempdir().unwrap(),
        }
    }

    fn luke(&self, extra: &[&str]) -> LiveClient {
        let rt = self.server.runtime;
        LiveClient::login_in_folder(&self.server, rt, "luke", "r2d2", self.folder.path(), extra)
    }

    fn yoda(&self, extra: &[&str]) -> LiveClient {
        let rt = self.server.runtime;
        LiveClient::login_with(
            &self.server,
            rt,
            "yoda",
            "jedi*knight",
            tempfile::tempdir().unwrap(),
            extra,
        )
    }

    fn source(&self, data: &[u8]) -> String {
        let path = self.src.path().join("clip.mp4");
        std::fs::write(&path, data).unwrap();
        path.display().to_string()
    }

    fn kept(&self) -> Vec<PathBuf> {
        parts(self.folder.path())
    }
}

/// Upload `clip` to luke until luke's part holds `at` bytes, then have luke cancel; luke logs
/// out. Returns the kept part's path.
fn cut(s: &Session, yoda: &mut LiveClient, clip: &str, at: u64) -> PathBuf {
    let rt = s.server.runtime;
    let mut luke = s.luke(&[]);
    let from = yoda.out.len();
    yoda.send(&format!("UPD luke {clip}"));
    wait_for_part(s.folder.path(), at);
    luke.command(
        "CANCEL",
        "Cancelled clip.mp4 from yoda; yoda was told; the ",
    );
    yoda.out.wait_for_after(
        from,
        "luke cancelled it (or logged out); sending it again resumes",
    );
    // Told by the cancel itself, not by the idle timeout (which would say the peer went
    // silent): a cause, not a clock, so the load of the machine cannot decide it.
    assert!(
        !yoda.out.text().contains("went silent"),
        "{rt}: told at once, not after the idle timeout"
    );
    luke.command("OUT", "Goodbye");
    assert_eq!(luke.wait_exit(), 0);
    let kept = s.kept();
    assert_eq!(kept.len(), 1, "{rt}: the part is kept");
    let sidecar = PathBuf::from(format!("{}.resume", kept[0].display()));
    assert!(sidecar.exists(), "{rt}: with its sidecar");
    kept[0].clone()
}

/// Send `clip` again to a fresh luke client in the same folder; the presenter's closing line.
fn resend(s: &Session, yoda: &mut LiveClient, clip: &str, data: &[u8]) -> String {
    let rt = s.server.runtime;
    // A client starting in the folder keeps a part with a good, young sidecar.
    let luke = s.luke(&[]);
    assert_eq!(s.kept().len(), 1, "{rt}: kept across the restart");
    let line = yoda.command(
        &format!("UPD luke {clip}"),
        "clip.mp4 has been uploaded to luke",
    );
    luke.out.wait_for("Resuming clip.mp4 from yoda: ");
    luke.out
        .wait_for("Received clip.mp4 from yoda, saved as yoda_clip.mp4");
    let got = std::fs::read(s.folder.path().join("yoda_clip.mp4")).unwrap();
    assert!(got == data, "{rt}: the resumed file differs");
    assert!(s.kept().is_empty(), "{rt}: no part left behind");
    let sidecars = std::fs::read_dir(s.folder.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".resume"))
        .count();
    assert_eq!(sidecars, 0, "{rt}: no sidecar left behind");
    line
}

#[test]
fn a_cut_at_30_percent_keeps_the_part_across_a_restart_and_the_upload_resumes() {
    for &rt in RUNTIMES {
        let s = Session::new(rt);
        let data = video(12 << 20, 11);
        let clip = s.source(&data);
        let mut yoda = s.yoda(&["--max-rate", "6M"]);
        let part = cut(&s, &mut yoda, &clip, (data.len() as u64) * 3 / 10);
        let held = std::fs::metadata(&part).unwrap().len();
        assert!(held >= (data.len() as u64) * 3 / 10, "{rt}: {held}");
        let line = resend(&s, &mut yoda, &clip, &data);
        let mib = had(&line);
        assert!(
            mib >= 3.0 && mib * (1 << 20) as f64 <= held as f64,
            "{rt}: {line}"
        );
    }
}

#[test]
fn a_part_cut_at_99_percent_resumes_with_only_the_end_to_send() {
    for &rt in RUNTIMES {
        let s = Session::new(rt);
        let data = video(10 << 20, 13);
        let clip = s.source(&data);
        let mut yoda = s.yoda(&["--max-rate", "4M"]);
        let part = cut(&s, &mut yoda, &clip, 3 << 20);
        // The part holds 99 % of the file, as a cut there would have left it (the bytes and
        // the sidecar the client wrote, extended to the cut): it resumes from its last whole
        // block.
        let sidecar = PathBuf::from(format!("{}.resume", part.display()));
        let held = data.len() * 99 / 100;
        std::fs::write(&part, &data[..held]).unwrap();
        let text = std::fs::read_to_string(&sidecar).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("held ") {
                    format!("held {held}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&sidecar, text).unwrap();
        let line = resend(&s, &mut yoda, &clip, &data);
        assert_eq!(had(&line), 9.0, "{rt}: nine whole blocks kept: {line}");
    }
}

#[test]
fn a_part_damaged_on_disk_is_not_trusted_past_the_damage() {
    for &rt in RUNTIMES {
        let s = Session::new(rt);
        let data = video(12 << 20, 17);
        let clip = s.source(&data);
        let mut yoda = s.yoda(&["--max-rate", "6M"]);
        let part = cut(&s, &mut yoda, &clip, 5 << 20);
        // A byte of the third MiB rots.
        let mut bytes = std::fs::read(&part).unwrap();
        bytes[(2 << 20) + 777] ^= 0x01;
        std::fs::write(&part, bytes).unwrap();
        let line = resend(&s, &mut yoda, &clip, &data);
        assert_eq!(
            had(&line),
            2.0,
            "{rt}: only the blocks before the damage: {line}"
        );
    }
}
