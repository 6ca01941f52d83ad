//! The TLS pieces over a real TCP connection on 127.0.0.1: the certificate the server
//! creates in its data folder serves a handshake, survives a restart, and the client sees
//! the same fingerprint the server would print.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;
use huddle_core::tls::{
    Basis, ClientTls, FileLimits, HostPort, ServerTls, Session, TlsEvent, TlsLimits, session::Side,
};
use huddle_runtime_std::tls_files::{IdentityOrigin, load_or_create_identity, read_known_hosts};

fn now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Write everything the session has to send.
fn flush<S: Side>(session: &mut Session<S>, stream: &mut TcpStream) {
    while let Some(bytes) = session.poll_transmit() {
        stream.write_all(&bytes).unwrap();
    }
}

/// Read once from the socket into the session; false at end of file.
fn pump<S: Side>(session: &mut Session<S>, stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    if n == 0 {
        return false;
    }
    session.handle_wire(&buf[..n], now()).unwrap();
    while let Some(p) = session.poll_plaintext() {
        got.extend_from_slice(&p);
    }
    true
}

/// Serve one connection: answer `ping` with `pong`, then close.
fn serve_once(listener: TcpListener, tls: ServerTls) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut session = tls.accept(getrandom_seed(), now()).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"ping\n") {
            if !pump(&mut session, &mut stream, &mut got) {
                break;
            }
            flush(&mut session, &mut stream);
        }
        session.send(b"pong\n", now()).unwrap();
        session.close();
        flush(&mut session, &mut stream);
        got
    })
}

fn getrandom_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).unwrap();
    seed
}

/// Connect, say `ping`, return what the server answered and the client's verdict.
fn ping(port: u16, known_hosts: &std::path::Path) -> (Vec<u8>, Vec<TlsEvent>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = stream.peer_addr().unwrap();
    let (known, _) = read_known_hosts(known_hosts, &FileLimits::default()).unwrap();
    let mut session = ClientTls::pins_only(TlsLimits::default())
        .connect(
            &HostPort::from_addr(addr),
            addr.ip(),
            &known,
            getrandom_seed(),
            now(),
        )
        .unwrap();
    flush(&mut session, &mut stream);
    let mut events = Vec::new();
    let mut got = Vec::new();
    let mut sent = false;
    loop {
        if !pump(&mut session, &mut stream, &mut got) {
            break;
        }
        while let Some(e) = session.poll_event() {
            events.push(e);
        }
        if session.is_established() && !sent {
            session.send(b"ping\n", now()).unwrap();
            sent = true;
        }
        flush(&mut session, &mut stream);
        if events.contains(&TlsEvent::PeerClosed { clean: true }) {
            break;
        }
    }
    (got, events)
}

#[test]
fn the_created_certificate_serves_real_connections_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let known_hosts = config.path().join("known_hosts");
    let mut fingerprints = Vec::new();
    for start in 0..3 {
        let loaded = load_or_create_identity(data.path(), None, &FileLimits::default()).unwrap();
        let expected = if start == 0 {
            IdentityOrigin::Created
        } else {
            IdentityOrigin::Reused
        };
        assert_eq!(loaded.origin, expected);
        let tls = ServerTls::new(&loaded.identity, TlsLimits::default()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(listener, tls);
        let (reply, events) = ping(port, &known_hosts);
        assert_eq!(server.join().unwrap(), b"ping\n");
        assert_eq!(reply, b"pong\n");
        let trusted = events
            .iter()
            .find_map(|e| match e {
                TlsEvent::ServerTrusted(t) => Some(t.clone()),
                _ => None,
            })
            .expect("a verdict");
        // On loopback any certificate is accepted, and nothing is pinned.
        assert_eq!(trusted.basis, Basis::Loopback);
        assert_eq!(trusted.fingerprint, loaded.fingerprint());
        fingerprints.push(loaded.fingerprint());
    }
    assert!(
        fingerprints.windows(2).all(|w| w[0] == w[1]),
        "{fingerprints:?}"
    );
    assert!(!known_hosts.exists(), "loopback servers are not pinned");
}
