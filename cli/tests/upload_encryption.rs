//! End-to-end encrypted uploads, seen from the wire: a UDP relay between the two real
//! clients (each tells the server the relay's port with `--public-udp-port`) records every
//! datagram both ways, and may flip a bit of some. The file is a recognisable repeating
//! pattern; no datagram may carry any of it, nor its name, and the copy that arrives is
//! byte-identical. Both runtimes.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

/// Every 16-byte window of a file made by repeating `pattern` (one per phase).
fn windows_of(pattern: &[u8]) -> HashSet<[u8; 16]> {
    let twice = pattern.repeat(3);
    (0..pattern.len())
        .map(|i| {
            let mut w = [0u8; 16];
            w.copy_from_slice(&twice[i..i + 16]);
            w
        })
        .collect()
}

/// Datagrams between two clients, relayed: `a` is where one client's peers send to reach it,
/// `b` the other's. What arrives on `a` goes to the client behind `a` (its real address is
/// given), from `b`; what that client sends to `b`'s side arrives on `a`… — in short each
/// side sees the other at the address the server named.
struct Relay {
    a: SocketAddr,
    b: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    tampered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// A relay for a receiver listening on `receiver_real`; flips one bit in every
    /// `tamper_every`-th data datagram towards it (0: never).
    fn start(receiver_real: SocketAddr, tamper_every: u64) -> Self {
        // `a`: the presenter's public side (the receiver sees datagrams from here); `b`: the
        // receiver's public side (the presenter sends here).
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tampered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let presenter: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (a, b) = (Arc::new(a), Arc::new(b));
        {
            // Presenter → receiver: arrives on `b`, leaves from `a`.
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            let (seen, tampered, stop, presenter) = (
                Arc::clone(&seen),
                Arc::clone(&tampered),
                Arc::clone(&stop),
                Arc::clone(&presenter),
            );
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut data = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = b.recv_from(&mut buf) else {
                        continue;
                    };
                    *presenter.lock().unwrap() = Some(from);
                    let mut d = buf[..n].to_vec();
                    seen.lock().unwrap().push(d.clone());
                    // Kind 2 is a data datagram; flip a bit of its ciphertext.
                    if d.get(3) == Some(&2) && n > 40 {
                        data += 1;
                        if tamper_every > 0 && data.is_multiple_of(tamper_every) {
                            d[36] ^= 0x20;
                            tampered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = a.send_to(&d, receiver_real);
                }
            });
        }
        {
            // Receiver → presenter: arrives on `a`, leaves from `b`.
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = a.recv_from(&mut buf) else {
                        continue;
                    };
                    seen.lock().unwrap().push(buf[..n].to_vec());
                    if let Some(to) = *presenter.lock().unwrap() {
                        let _ = b.send_to(&buf[..n], to);
                    }
                }
            });
        }
        Relay {
            a: a_addr,
            b: b_addr,
            seen,
            tampered,
            stop,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A free UDP port on loopback (bound and released: the client binds it right after).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One upload through a relay; returns what it saw, the number of datagrams it tampered with,
/// and luke's closing line.
fn upload_through_relay(rt: &'static str, data: &[u8], name: &str, tamper_every: u64) -> Relayed {
    upload_through_relay_with(rt, data, name, tamper_every, &[])
}

/// Like [`upload_through_relay`], with extra options for both clients.
fn upload_through_relay_with(
    rt: &'static str,
    data: &[u8],
    name: &str,
    tamper_every: u64,
    both: &[&str],
) -> Relayed {
    let dir = data_dir();
    let server = ServerProc::start(rt, dir.path(), &[]);
    let luke_port = free_port();
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], luke_port)), tamper_every);
    let luke = LiveClient::login_on_port(
        &server,
        rt,
        "luke",
        "r2d2",
        tempfile::tempdir().unwrap(),
        luke_port,
        &[
            &[
                "--public-udp-port",
                &relay.b.port().to_string(),
                "--transfer-stats",
            ],
            both,
        ]
        .concat(),
    );
    let mut yoda = LiveClient::login_with(
        &server,
        rt,
        "yoda",
        "jedi*knight",
        tempfile::tempdir().unwrap(),
        &[&["--public-udp-port", &relay.a.port().to_string()], both].concat(),
    );
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join(name);
    std::fs::write(&path, data).unwrap();
    yoda.command(
        &format!("UPD luke {}", path.display()),
        &format!("{name} has been uploaded to luke"),
    );
    let received = luke.out.wait_for(&format!("Received {name} from yoda"));
    let got = std::fs::read(luke.downloads.path().join(format!("yoda_{name}"))).unwrap();
    assert!(got == data, "{rt}: the received file differs");
    let seen = relay.seen.lock().unwrap().clone();
    Relayed {
        seen,
        tampered: relay.tampered.load(Ordering::Relaxed),
        received,
    }
}

struct Relayed {
    seen: Vec<Vec<u8>>,
    tampered: u64,
    received: String,
}

#[test]
fn no_datagram_of_an_upload_carries_the_file_or_its_name() {
    let pattern = b"HUDDLE-VIDEO-PATTERN-0123456789abcdefghij";
    let data = pattern.repeat((2 << 20) / pattern.len());
    let windows = windows_of(pattern);
    let name = "secret-holiday-clip.mp4";
    let carries = |d: &[u8]| {
        d.windows(16).any(|w| {
            let mut k = [0u8; 16];
            k.copy_from_slice(w);
            windows.contains(&k)
        })
    };
    // The detector sees the file where it is in clear: the benchmark's clear mode.
    let clear = upload_through_relay_with("std", &data, name, 0, &["--bench-clear-transfers"]);
    assert!(
        clear.seen.iter().filter(|d| carries(d)).count() > 1000,
        "the detector must see a clear transfer"
    );
    for &rt in RUNTIMES {
        let r = upload_through_relay(rt, &data, name, 0);
        assert!(r.seen.len() > 1000, "{rt}: {} datagrams", r.seen.len());
        for d in &r.seen {
            assert!(!carries(d), "{rt}: a datagram carries the file in clear");
            assert!(
                !d.windows(name.len()).any(|w| w == name.as_bytes()),
                "{rt}: a datagram carries the file's name"
            );
        }
    }
}

#[test]
fn a_tampered_ciphertext_is_rejected_counted_and_repeated() {
    let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    for &rt in RUNTIMES {
        let r = upload_through_relay(rt, &data, "clip.mp4", 50);
        assert!(r.tampered >= 20, "{rt}: {} tampered", r.tampered);
        // The receiver's closing line counts what failed authentication.
        let failed: u64 = r
            .received
            .rsplit_once(" rejected (")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{rt}: no count in {:?}", r.received));
        assert!(
            failed >= r.tampered,
            "{rt}: {failed} counted, {} tampered: {}",
            r.tampered,
            r.received
        );
    }
}
