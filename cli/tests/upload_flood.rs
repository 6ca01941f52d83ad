//! A client whose UDP port is flooded while it receives an upload, with the real binaries over
//! loopback on every runtime: the upload arrives intact and the client's memory stays bounded
//! (its UDP reader waits for the core instead of queueing whatever arrives).

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use common::*;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn an_upload_arrives_intact_through_a_flood_of_junk_and_memory_stays_bounded() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return; // the memory figures come from Linux's /proc
    }
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let port = free_port();
        let mut luke = LiveClient::login_on_port(
            &server,
            rt,
            "luke",
            "r2d2",
            tempfile::tempdir().unwrap(),
            port,
            &[],
        );
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let before = status_kib(luke.pid(), "VmRSS:");

        // The flood: the largest datagrams, junk and huddle-looking headers for no transfer.
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let flooder = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut junk = vec![0xA5u8; 65_000];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 40_000 {
                    junk[..8].copy_from_slice(&n.to_be_bytes());
                    let _ = s.send_to(&junk, ("127.0.0.1", port));
                    n += 1;
                }
                sent.store(n, Ordering::Relaxed);
            })
        };

        let data = pattern(6 << 20);
        let src = tempfile::tempdir().unwrap();
        let path = src.path().join("clip.mp4");
        std::fs::write(&path, &data).unwrap();
        yoda.command(
            &format!("UPD luke {}", path.display()),
            "clip.mp4 has been uploaded to luke",
        );
        luke.out.wait_for("saved as yoda_clip.mp4");
        stop.store(true, Ordering::Relaxed);
        flooder.join().unwrap();
        let peak = status_kib(luke.pid(), "VmHWM:");
        let got = std::fs::read(luke.downloads.path().join("yoda_clip.mp4")).unwrap();
        assert!(got == data, "{rt}: the upload arrived changed");
        // Relative growth. Bounded, the client grew 12-15 MiB here (receive blocks, the 6 MiB
        // file held out of order at worst, the stage); with the reader queueing without
        // bound it grew 31 MiB (std) and 77 MiB (smol).
        assert!(
            peak < before + 28 * 1024,
            "{rt}: peak {peak} KiB against {before} KiB before {} junk datagrams",
            sent.load(Ordering::Relaxed)
        );
        // And the client still answers.
        luke.command("OUT", "Goodbye, luke!");
    }
}
