//! Seeded and deterministic: the same seeds and times give the same bytes on the wire.

use super::*;

/// The bytes each side wrote in a handshake and a short exchange.
fn transcript(cert: &Cert, seeds: ([u8; 32], [u8; 32])) -> (Vec<u8>, Vec<u8>) {
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::new(
        &server_tls(cert),
        &ClientTls::pins_only(TlsLimits::default()),
        (&remote(), remote_ip()),
        &known,
        seeds,
        NOW,
    );
    pair.run();
    pair.client_sends(b"yoda\n");
    pair.server_sends(b"332 Password:\n");
    pair.run();
    pair.client.close();
    pair.run();
    assert_eq!(pair.at_server.plaintext, b"yoda\n");
    (pair.at_client.wire, pair.at_server.wire)
}

#[test]
fn the_same_seeds_give_byte_identical_handshakes() {
    let cert = self_signed(&["localhost"]);
    let first = transcript(&cert, ([1; 32], [2; 32]));
    let again = transcript(&cert, ([1; 32], [2; 32]));
    assert!(first.0.len() > 100 && first.1.len() > 300);
    assert!(first == again, "two runs with the same seeds differ");
}

#[test]
fn each_sides_seed_decides_its_own_bytes() {
    let cert = self_signed(&["localhost"]);
    let base = transcript(&cert, ([1; 32], [2; 32]));
    let other_client = transcript(&cert, ([3; 32], [2; 32]));
    let other_server = transcript(&cert, ([1; 32], [4; 32]));
    // The ClientHello (the client's first bytes) depends on the client's seed only.
    let hello = |t: &(Vec<u8>, Vec<u8>)| t.0[..100].to_vec();
    assert_ne!(hello(&base), hello(&other_client));
    assert_eq!(hello(&base), hello(&other_server));
    // The ServerHello's random and key share follow the server's seed.
    assert_ne!(base.1[..100], other_server.1[..100]);
}
