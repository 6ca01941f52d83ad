//! Every byte a peer sends is hostile: garbage, truncation, floods, tampering, stalling.

use super::*;

fn fresh_server() -> (ServerTls, ServerSession) {
    let tls = server_tls(&self_signed(&["localhost"]));
    let session = tls.accept([7; 32], NOW).unwrap();
    (tls, session)
}

/// Bytes of a TLS record header: type, legacy version, length.
fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

/// Feed `bytes` in `chunk`-sized pieces until the session fails; how many bytes it took.
fn feed_until_error<S: session::Side>(
    session: &mut Session<S>,
    bytes: &[u8],
    chunk: usize,
) -> (usize, Option<TlsError>) {
    let mut fed = 0;
    for piece in bytes.chunks(chunk) {
        fed += piece.len();
        if let Err(e) = session.handle_wire(piece, NOW) {
            return (fed, Some(e));
        }
        while session.poll_plaintext().is_some() {}
    }
    (fed, None)
}

#[test]
fn an_http_request_instead_of_a_client_hello_is_a_clear_error_and_an_alert() {
    let (_tls, mut server) = fresh_server();
    let e = server
        .handle_wire(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", NOW)
        .unwrap_err();
    assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("the peer did not answer with TLS"),
        "{e}"
    );
    // The peer is told: an alert record (content type 21).
    let alert = server.poll_transmit().expect("an alert");
    assert_eq!(alert[0], 21);
    // Final: the same error again, nothing more consumed.
    assert_eq!(server.handle_wire(b"\x16\x03\x01", NOW), Err(e.clone()));
    assert_eq!(server.send(b"x", NOW), Err(e));
}

#[test]
fn a_plaintext_login_after_starttls_is_refused() {
    let (_tls, mut server) = fresh_server();
    assert!(matches!(
        server.handle_wire(b"yoda\n", NOW),
        Err(TlsError::NotTls { .. })
    ));
}

#[test]
fn a_plaintext_reply_where_the_server_hello_should_be_is_refused_by_the_client() {
    let (known, _) = KnownHosts::parse("kh", "");
    let mut client = ClientTls::pins_only(TlsLimits::default())
        .connect(&remote(), remote_ip(), &known, [1; 32], NOW)
        .unwrap();
    assert!(
        client.poll_transmit().is_some(),
        "the ClientHello is ready at once"
    );
    let e = client
        .handle_wire(b"331 Welcome to huddle.\r\n", NOW)
        .unwrap_err();
    assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
}

#[test]
fn a_client_hello_cut_short_by_the_end_of_the_connection_fails_the_handshake() {
    let (known, _) = KnownHosts::parse("kh", "");
    let mut client = ClientTls::pins_only(TlsLimits::default())
        .connect(&remote(), remote_ip(), &known, [1; 32], NOW)
        .unwrap();
    let hello = client.poll_transmit().unwrap();
    let (_tls, mut server) = fresh_server();
    server.handle_wire(&hello[..hello.len() / 2], NOW).unwrap();
    assert!(server.poll_plaintext().is_none());
    assert_eq!(server.handle_eof(NOW), Err(TlsError::ClosedDuringHandshake));
    assert_eq!(
        TlsError::ClosedDuringHandshake.to_string(),
        "the connection closed during the TLS handshake"
    );
}

/// A 1 MiB "ClientHello": one handshake message announced as 16 MiB long, carried in
/// 16 KiB records.
fn client_hello_flood(declared_len: u32) -> Vec<u8> {
    let mut payload = vec![0u8; 16 * 1024];
    payload[0] = 1; // ClientHello
    payload[1..4].copy_from_slice(&declared_len.to_be_bytes()[1..]);
    let mut flood = record(22, &payload);
    while flood.len() < 1 << 20 {
        flood.extend(record(22, &vec![0x41; 16 * 1024]));
    }
    flood
}

#[test]
fn a_mebibyte_client_hello_flood_is_refused_long_before_its_end() {
    for declared in [0x00FF_FFFF, 0xFFFF, 0x1_0000] {
        let (_tls, mut server) = fresh_server();
        let flood = client_hello_flood(declared);
        let (fed, e) = feed_until_error(&mut server, &flood, 4096);
        let e = e.unwrap_or_else(|| panic!("declared {declared:#x}: the whole flood was accepted"));
        // rustls caps a handshake message at 64 KiB.
        assert!(
            fed <= 80 * 1024,
            "declared {declared:#x}: {fed} bytes consumed before {e}"
        );
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn a_flood_of_tiny_handshake_records_is_refused() {
    let (_tls, mut server) = fresh_server();
    // One-byte fragments of a ClientHello announced at the largest size rustls accepts.
    let mut flood = Vec::new();
    for b in [1, 0, 0xFF, 0xFF] {
        flood.extend(record(22, &[b]));
    }
    while flood.len() < 1 << 20 {
        flood.extend(record(22, &[0x41]));
    }
    let (fed, e) = feed_until_error(&mut server, &flood, 4096);
    assert!(e.is_some(), "a 1 MiB trickle of fragments was accepted");
    assert!(fed < 1 << 20);
}

#[test]
fn a_record_announcing_more_than_tls_allows_is_refused() {
    let (_tls, mut server) = fresh_server();
    let mut bytes = vec![22, 3, 3, 0xFF, 0xFF];
    bytes.extend(vec![0u8; 100]);
    let e = server.handle_wire(&bytes, NOW).unwrap_err();
    assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
}

#[test]
fn application_data_before_the_handshake_is_refused() {
    let (_tls, mut server) = fresh_server();
    let e = server
        .handle_wire(&record(23, b"pretend-encrypted"), NOW)
        .unwrap_err();
    assert!(
        matches!(e, TlsError::Handshake(_) | TlsError::NotTls { .. }),
        "{e:?}"
    );
}

#[test]
fn a_tampered_record_is_refused_and_delivers_nothing() {
    let cert = self_signed(&["localhost"]);
    let tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&tls, &known);
    pair.run();
    pair.client_sends(b"PVT luke I am your father");
    let mut record = pair.client.poll_transmit().unwrap().to_vec();
    let last = record.len() - 1;
    record[last] ^= 1;
    let e = pair.server.handle_wire(&record, pair.now).unwrap_err();
    assert!(
        matches!(e, TlsError::Connection(rustls::Error::DecryptError)),
        "{e:?}"
    );
    assert!(pair.server.poll_plaintext().is_none());
    assert!(e.to_string().starts_with("the TLS connection broke"), "{e}");
}

#[test]
fn a_peer_that_stalls_the_handshake_is_timed_out() {
    let (_tls, mut server) = fresh_server();
    let limit = TlsLimits::default().handshake_timeout_millis;
    let deadline = server.poll_timeout().expect("a deadline while handshaking");
    assert_eq!(deadline, NOW.plus_millis(limit));
    // Early and repeated calls are harmless.
    server.handle_timeout(NOW).unwrap();
    server.handle_timeout(UnixMillis(deadline.0 - 1)).unwrap();
    let e = server.handle_timeout(deadline).unwrap_err();
    assert_eq!(e, TlsError::HandshakeTimedOut { millis: limit });
    assert_eq!(
        e.to_string(),
        "the TLS handshake did not finish within 10 s"
    );
}

#[test]
fn an_established_session_has_no_deadline() {
    let tls = server_tls(&self_signed(&["localhost"]));
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&tls, &known);
    pair.run();
    assert_eq!(pair.server.poll_timeout(), None);
    assert_eq!(pair.client.poll_timeout(), None);
    pair.server
        .handle_timeout(NOW.plus_millis(3_600_000))
        .unwrap();
    assert!(pair.server.is_established());
}

#[test]
fn bytes_after_the_peers_close_notify_are_refused_not_delivered() {
    let tls = server_tls(&self_signed(&["localhost"]));
    let (known, _) = KnownHosts::parse("kh", "");
    for split in [false, true] {
        let mut pair = Pair::remote(&tls, &known);
        pair.run();
        pair.client.close();
        let mut bytes = pair.client.poll_transmit().unwrap().to_vec();
        let close_len = bytes.len();
        bytes.extend_from_slice(b"\x17\x03\x03\x00\x05late!");
        let result = if split {
            pair.server
                .handle_wire(&bytes[..close_len], pair.now)
                .unwrap();
            pair.server.handle_wire(&bytes[close_len..], pair.now)
        } else {
            pair.server.handle_wire(&bytes, pair.now)
        };
        assert_eq!(result, Err(TlsError::DataAfterClose), "split {split}");
        assert_eq!(
            pair.server.poll_event(),
            Some(TlsEvent::PeerClosed { clean: true })
        );
        assert!(pair.server.poll_plaintext().is_none());
    }
}

#[test]
fn a_flooded_session_does_not_hold_up_another_on_the_same_configuration() {
    let tls = server_tls(&self_signed(&["localhost"]));
    let (known, _) = KnownHosts::parse("kh", "");
    let mut good = Pair::remote(&tls, &known);
    let mut flooded = tls.accept([8; 32], NOW).unwrap();
    let flood = client_hello_flood(0x00FF_FFFF);
    let mut pieces = flood.chunks(4096);
    let mut flood_error = None;
    for _ in 0..40 {
        if flood_error.is_none()
            && let Some(piece) = pieces.next()
            && let Err(e) = flooded.handle_wire(piece, good.now)
        {
            flood_error = Some(e);
        }
        good.step();
    }
    good.client_sends(b"still here");
    good.run();
    assert!(flood_error.is_some());
    assert_eq!(good.at_server.plaintext, b"still here");
}
