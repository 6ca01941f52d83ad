//! What TLS costs in CPU, measured in memory (no sockets): full handshakes per second and
//! bulk throughput of the transform, on one core.
//!
//! `cargo run --release -p huddle-core --example tls_cost` — figures to compare, not a test.

use std::net::IpAddr;
use std::time::Instant;

use huddle_core::UnixMillis;
use huddle_core::tls::{ClientTls, HostPort, KnownHosts, ServerIdentity, ServerTls, TlsLimits};

const NOW: UnixMillis = UnixMillis(1_780_272_000_000);

fn main() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let identity =
        ServerIdentity::from_der(vec![cert.der().to_vec()], key.serialize_der()).expect("identity");
    let server_tls = ServerTls::new(&identity, TlsLimits::default()).expect("server");
    let client_tls = ClientTls::pins_only(TlsLimits::default());
    let ip: IpAddr = "203.0.113.5".parse().expect("ip");
    let host = HostPort::from_addr((ip, 4000).into());
    let (known, _) = KnownHosts::parse("kh", "");

    let connect = |i: u32| {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let mut client = client_tls
            .connect(&host, ip, &known, seed, NOW)
            .expect("connect");
        seed[31] = 1;
        let mut server = server_tls.accept(seed, NOW).expect("accept");
        let mut wire = 0usize;
        while !(client.is_established() && server.is_established()) {
            while let Some(b) = client.poll_transmit() {
                wire += b.len();
                server.handle_wire(&b, NOW).expect("server");
            }
            while let Some(b) = server.poll_transmit() {
                wire += b.len();
                client.handle_wire(&b, NOW).expect("client");
            }
        }
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        (client, server, wire)
    };

    let n = 500;
    let start = Instant::now();
    let mut wire = 0;
    for i in 0..n {
        wire = connect(i).2;
    }
    let per = start.elapsed() / n;
    println!(
        "handshake (client + server, in memory): {:.0} µs each, {:.0}/s on one core, {wire} bytes on the wire",
        per.as_secs_f64() * 1e6,
        1.0 / per.as_secs_f64()
    );

    let (mut client, mut server, _) = connect(n);
    let piece = vec![0x55u8; 16 * 1024];
    let total = 256usize << 20;
    let start = Instant::now();
    let mut received = 0;
    for _ in 0..total / piece.len() {
        client.send(&piece, NOW).expect("send");
        while let Some(b) = client.poll_transmit() {
            server.handle_wire(&b, NOW).expect("receive");
            while let Some(p) = server.poll_plaintext() {
                received += p.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, total);
    println!(
        "bulk (encrypt + decrypt, 16 KiB sends): {:.0} MB/s",
        total as f64 / secs / 1e6
    );
}
