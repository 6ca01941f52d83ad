//! A full handshake, then application data both ways; long and overlapping use.

use super::*;

fn established(seen: &Seen) -> bool {
    seen.events
        .iter()
        .any(|e| matches!(e, TlsEvent::Established { .. }))
}

#[test]
fn a_full_handshake_then_data_both_ways_in_tiny_random_chunks() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    pair.max_chunk = 7;
    assert!(pair.client.is_handshaking() && pair.server.is_handshaking());
    pair.run();
    assert!(pair.client.is_established() && pair.server.is_established());
    assert!(established(&pair.at_client) && established(&pair.at_server));
    // The server side never judges a certificate.
    assert!(
        !pair
            .at_server
            .events
            .iter()
            .any(|e| matches!(e, TlsEvent::ServerTrusted(_)))
    );
    // On the client the verdict comes before `Established`.
    assert!(matches!(
        pair.at_client.events[..],
        [TlsEvent::ServerTrusted(_), TlsEvent::Established { cipher_suite }] if cipher_suite.starts_with("TLS13_")
    ));

    pair.client_sends(b"yoda\n");
    pair.server_sends(b"332 Password:\n");
    pair.run();
    assert_eq!(pair.at_server.plaintext, b"yoda\n");
    assert_eq!(pair.at_client.plaintext, b"332 Password:\n");
    assert!(pair.at_client.error.is_none() && pair.at_server.error.is_none());
}

#[test]
fn a_mebibyte_each_way_arrives_whole_and_in_order() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    pair.max_chunk = 1500;
    pair.run();
    let up = pattern(1 << 20, 1);
    let down = pattern(1 << 20, 2);
    // Sends of uneven sizes, interleaved with delivery.
    let mut sizes = ChaCha20Rng::from_seed([9; 32]);
    let (mut u, mut d) = (0, 0);
    while u < up.len() || d < down.len() {
        let n = 1 + sizes.next_u32() as usize % 20_000;
        let un = n.min(up.len() - u);
        pair.client_sends(&up[u..u + un]);
        u += un;
        let dn = (n / 2 + 1).min(down.len() - d);
        pair.server_sends(&down[d..d + dn]);
        d += dn;
        pair.step();
    }
    pair.run();
    assert_eq!(pair.at_server.plaintext.len(), up.len());
    assert!(pair.at_server.plaintext == up, "upstream bytes differ");
    assert!(pair.at_client.plaintext == down, "downstream bytes differ");
    // The wire carries ciphertext, not the pattern.
    let window = &up[4096..4160];
    assert!(
        !pair
            .at_client
            .wire
            .windows(window.len())
            .any(|w| w == window),
        "plaintext visible on the wire"
    );
}

#[test]
fn the_fiftieth_connection_to_a_pinned_server_works_like_the_second() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let mut file = String::new();
    for round in 0..50u8 {
        let (mut known, warnings) = KnownHosts::parse("kh", &file);
        assert!(warnings.is_empty());
        let mut pair = Pair::new(
            &server_tls,
            &ClientTls::pins_only(TlsLimits::default()),
            (&remote(), remote_ip()),
            &known,
            ([round; 32], [round.wrapping_add(100); 32]),
            NOW.plus_millis(u64::from(round) * 60_000),
        );
        pair.run();
        let trusted = pair.trusted().expect("trusted").clone();
        if round == 0 {
            assert_eq!(trusted.basis, Basis::FirstUse);
            let (text, _) = known.pin(trusted.pin_to_record().expect("a pin"));
            file.push_str(&text);
        } else {
            assert_eq!(trusted.basis, Basis::Pinned { line: 1 }, "round {round}");
            assert_eq!(trusted.pin_to_record(), None);
        }
        pair.client_sends(format!("hello {round}\n").as_bytes());
        pair.run();
        assert_eq!(
            pair.at_server.plaintext,
            format!("hello {round}\n").as_bytes()
        );
    }
    assert_eq!(file.lines().count(), 1, "pinned once: {file}");
}

#[test]
fn overlapping_sessions_on_one_configuration_keep_their_bytes_apart_and_a_failure_is_retried() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pairs: Vec<Pair> = (0..8u8)
        .map(|i| {
            Pair::new(
                &server_tls,
                &ClientTls::pins_only(TlsLimits::default()),
                (&remote(), remote_ip()),
                &known,
                ([i; 32], [i + 50; 32]),
                NOW,
            )
        })
        .collect();
    // One session is fed garbage and fails; the others go on.
    let garbage = pairs[3].server.handle_wire(b"GET / HTTP/1.1\r\n\r\n", NOW);
    assert!(matches!(garbage, Err(TlsError::NotTls { .. })));
    for round in 0..20 {
        for (i, pair) in pairs.iter_mut().enumerate() {
            if i != 3 && pair.client.is_established() {
                pair.client_sends(format!("{i}:{round};").as_bytes());
            }
            pair.step();
        }
    }
    for (i, pair) in pairs.iter_mut().enumerate() {
        pair.run();
        if i == 3 {
            assert!(!pair.server.is_established());
            continue;
        }
        let text = String::from_utf8(pair.at_server.plaintext.clone()).unwrap();
        assert!(
            text.split(';')
                .filter(|s| !s.is_empty())
                .all(|s| s.starts_with(&format!("{i}:")))
        );
        assert!(text.contains(&format!("{i}:19;")), "{i}: {text}");
    }
    // The failed client retries with a fresh session and gets through.
    let mut retry = Pair::new(
        &server_tls,
        &ClientTls::pins_only(TlsLimits::default()),
        (&remote(), remote_ip()),
        &known,
        ([3; 32], [99; 32]),
        NOW.plus_millis(5_000),
    );
    retry.run();
    retry.client_sends(b"again");
    retry.run();
    assert_eq!(retry.at_server.plaintext, b"again");
}

#[test]
fn close_notify_ends_the_session_cleanly_and_later_sends_are_refused() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    pair.run();
    pair.client_sends(b"OUT\n");
    pair.client.close();
    pair.run();
    assert_eq!(pair.at_server.plaintext, b"OUT\n");
    assert!(
        pair.at_server
            .events
            .contains(&TlsEvent::PeerClosed { clean: true })
    );
    assert_eq!(pair.client.send(b"more", pair.now), Err(TlsError::Closed));
    // The server may still answer before it closes too.
    pair.server_sends(b"221 Bye\n");
    pair.server.close();
    pair.run();
    assert_eq!(pair.at_client.plaintext, b"221 Bye\n");
    assert!(
        pair.at_client
            .events
            .contains(&TlsEvent::PeerClosed { clean: true })
    );
}

#[test]
fn a_connection_that_ends_without_close_notify_is_reported_as_unclean() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    pair.run();
    pair.server.handle_eof(pair.now).unwrap();
    drain(&mut pair.server, &mut pair.at_server);
    assert!(
        pair.at_server
            .events
            .contains(&TlsEvent::PeerClosed { clean: false })
    );
}

#[test]
fn plaintext_sent_during_the_handshake_waits_for_it_within_a_bound() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    let limit = TlsLimits::default().max_plaintext_before_handshake;
    pair.client_sends(&vec![b'a'; limit - 1]);
    assert_eq!(
        pair.client.send(b"bc", pair.now),
        Err(TlsError::QueueFull { limit })
    );
    // Refused, not failed: the session goes on and the queued bytes arrive.
    pair.client_sends(b"b");
    pair.run();
    assert_eq!(pair.at_server.plaintext.len(), limit);
    // After the handshake there is no such bound in the session.
    pair.client_sends(&vec![b'z'; 4 * limit]);
    pair.run();
    assert_eq!(pair.at_server.plaintext.len(), 5 * limit);
}

#[test]
fn both_ends_export_the_same_keying_material_once_established() {
    let cert = self_signed(&["localhost"]);
    let server_tls = server_tls(&cert);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&server_tls, &known);
    let mut early = [0u8; 32];
    assert_eq!(
        pair.client
            .export_keying_material(&mut early, b"huddle upload", None),
        Err(TlsError::NotEstablished)
    );
    pair.run();
    let (mut a, mut b, mut c) = ([0u8; 32], [0u8; 32], [0u8; 32]);
    pair.client
        .export_keying_material(&mut a, b"huddle upload", Some(b"t1"))
        .unwrap();
    pair.server
        .export_keying_material(&mut b, b"huddle upload", Some(b"t1"))
        .unwrap();
    pair.server
        .export_keying_material(&mut c, b"huddle upload", Some(b"t2"))
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, [0u8; 32]);
}
