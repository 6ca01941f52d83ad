//! The client's trust policy: first use, pins, loopback, authorities, proof of possession.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::super::provider::provider;
use super::*;

fn refusal(pair: &Pair) -> &Refusal {
    match &pair.at_client.error {
        Some(TlsError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn with_authority(authority: &Authority) -> ClientTls {
    ClientTls::with_roots(&[authority.root_der()], TlsLimits::default()).unwrap()
}

#[test]
fn an_unknown_server_is_pinned_on_first_use_then_accepted_then_a_changed_certificate_is_refused() {
    let first = self_signed(&["localhost"]);
    let origin = "/home/yoda/.config/huddle/known_hosts";
    let mut file = String::from("# huddle known hosts\n");

    // First use: accepted, and the pin to record is the presented certificate.
    let (mut known, _) = KnownHosts::parse(origin, &file);
    let mut pair = Pair::remote(&server_tls(&first), &known);
    pair.run();
    let trusted = pair.trusted().expect("accepted").clone();
    assert_eq!(trusted.basis, Basis::FirstUse);
    assert_eq!(trusted.fingerprint, first.fingerprint());
    assert!(
        trusted
            .to_string()
            .contains("pinned on first use, fingerprint SHA256:")
    );
    assert!(
        trusted
            .to_string()
            .contains(&first.fingerprint().to_string())
    );
    let (text, line) = known.pin(trusted.pin_to_record().unwrap());
    assert_eq!(line, 2);
    file.push_str(&text);

    // Same certificate again: accepted on the strength of the pin.
    let (known, _) = KnownHosts::parse(origin, &file);
    let mut pair = Pair::remote(&server_tls(&first), &known);
    pair.run();
    assert_eq!(pair.trusted().unwrap().basis, Basis::Pinned { line: 2 });

    // A new certificate for the same server: refused, with an ssh-like warning.
    let second = self_signed(&["localhost"]);
    let mut pair = Pair::remote(&server_tls(&second), &known);
    pair.client_sends(b"yoda\njedi*knight\n");
    pair.run();
    match refusal(&pair) {
        Refusal::CertificateChanged {
            pinned,
            presented,
            line,
            ..
        } => {
            assert_eq!(
                (*pinned, *presented, *line),
                (first.fingerprint(), second.fingerprint(), 2)
            );
        }
        other => panic!("{other:?}"),
    }
    let warning = pair.at_client.error.as_ref().unwrap().to_string();
    for needle in [
        "WARNING",
        "203.0.113.5:4000",
        &first.fingerprint().to_string(),
        &second.fingerprint().to_string(),
        &format!("{origin} line 2"),
        &format!("remove line 2 from {origin}"),
    ] {
        assert!(
            warning.contains(needle),
            "{needle:?} missing from:\n{warning}"
        );
    }
    assert!(pair.trusted().is_none());
    assert!(!pair.client.is_established());
    // Nothing the client queued (a password, say) reached the server.
    assert!(pair.at_server.plaintext.is_empty());
    // The server learns why: the client's alert.
    assert!(
        matches!(
            &pair.at_server.error,
            Some(TlsError::PeerAlert {
                during_handshake: true,
                ..
            })
        ),
        "{:?}",
        pair.at_server.error
    );
    // And the refusal is final.
    assert!(matches!(
        pair.client.handle_wire(b"\x17\x03\x03\x00\x01x", pair.now),
        Err(TlsError::Refused(_))
    ));
}

#[test]
fn a_server_with_two_pins_is_accepted_with_either() {
    let old = self_signed(&["localhost"]);
    let new = self_signed(&["localhost"]);
    let text = format!(
        "203.0.113.5:4000 {}\n203.0.113.5:4001 {}\n203.0.113.5:4000 {}\n",
        old.fingerprint(),
        new.fingerprint(),
        new.fingerprint()
    );
    let (known, _) = KnownHosts::parse("kh", &text);
    let mut pair = Pair::remote(&server_tls(&new), &known);
    pair.run();
    assert_eq!(pair.trusted().unwrap().basis, Basis::Pinned { line: 3 });
}

#[test]
fn a_server_on_loopback_is_encrypted_whatever_its_certificate_and_nothing_is_pinned() {
    let (server, ip) = loopback();
    let pinned = self_signed(&["localhost"]);
    // Even a pin that disagrees does not stop a loopback connection.
    let (known, _) = KnownHosts::parse("kh", &format!("{server} {}\n", pinned.fingerprint()));
    for _ in 0..3 {
        let fresh = self_signed(&["localhost"]);
        let mut pair = Pair::new(
            &server_tls(&fresh),
            &ClientTls::pins_only(TlsLimits::default()),
            (&server, ip),
            &known,
            ([5; 32], [6; 32]),
            NOW,
        );
        pair.run();
        let trusted = pair.trusted().expect("accepted").clone();
        assert_eq!(trusted.basis, Basis::Loopback);
        assert_eq!(trusted.fingerprint, fresh.fingerprint());
        assert_eq!(trusted.pin_to_record(), None);
        assert!(trusted.to_string().contains("loopback"), "{trusted}");
        pair.client_sends(b"secret");
        pair.run();
        assert_eq!(pair.at_server.plaintext, b"secret");
        assert!(!pair.at_client.wire.windows(6).any(|w| w == b"secret"));
    }
    // 127.0.0.2 and ::1 are loopback too.
    for ip in ["127.0.0.2", "::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut pair = Pair::new(
            &server_tls(&self_signed(&["x"])),
            &ClientTls::pins_only(TlsLimits::default()),
            (&HostPort::from_addr((ip, 4000).into()), ip),
            &known,
            ([5; 32], [6; 32]),
            NOW,
        );
        pair.run();
        assert_eq!(pair.trusted().unwrap().basis, Basis::Loopback, "{ip}");
    }
}

#[test]
fn without_the_loopback_exemption_a_loopback_server_is_pinned_and_a_changed_one_refused() {
    let ip: IpAddr = "127.0.0.2".parse().unwrap();
    let server = HostPort::from_addr((ip, 4000).into());
    let strict = ClientTls::pins_only(TlsLimits::default()).without_loopback_exemption();
    assert!(!strict.exempts(ip));
    assert!(ClientTls::pins_only(TlsLimits::default()).exempts(ip));
    let first = self_signed(&["localhost"]);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::new(
        &server_tls(&first),
        &strict,
        (&server, ip),
        &known,
        ([7; 32], [8; 32]),
        NOW,
    );
    pair.run();
    let trusted = pair.trusted().expect("accepted on first use").clone();
    assert_eq!(trusted.basis, Basis::FirstUse);
    let pin = trusted.pin_to_record().expect("a pin to record");
    let (known, _) = KnownHosts::parse("kh", &render_known_host(&pin));
    let mut pair = Pair::new(
        &server_tls(&self_signed(&["localhost"])),
        &strict,
        (&server, ip),
        &known,
        ([7; 32], [8; 32]),
        NOW,
    );
    pair.run();
    assert!(
        matches!(refusal(&pair), Refusal::CertificateChanged { line: 1, .. }),
        "{:?}",
        pair.at_client.error
    );
}

#[test]
fn a_certificate_from_a_trusted_authority_is_trusted_for_its_names() {
    let authority = Authority::new();
    let cert = authority.issue(
        &["chat.example.org", "203.0.113.5"],
        date(2026, 1, 1),
        date(2027, 1, 1),
    );
    let (known, _) = KnownHosts::parse("kh", "");
    for host in ["chat.example.org", "CHAT.Example.org", "203.0.113.5"] {
        let server = HostPort::new(host, 4000).unwrap();
        let mut pair = Pair::new(
            &server_tls(&cert),
            &with_authority(&authority),
            (&server, remote_ip()),
            &known,
            ([1; 32], [2; 32]),
            NOW,
        );
        pair.run();
        let trusted = pair.trusted().expect(host);
        assert_eq!(trusted.basis, Basis::Authority, "{host}");
        assert_eq!(
            trusted.pin_to_record(),
            None,
            "an authority's certificate is not pinned"
        );
    }
}

#[test]
fn an_expired_certificate_from_a_trusted_authority_is_refused_not_pinned() {
    let authority = Authority::new();
    let cert = authority.issue(&["203.0.113.5"], date(2025, 1, 1), date(2026, 1, 1));
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::new(
        &server_tls(&cert),
        &with_authority(&authority),
        (&remote(), remote_ip()),
        &known,
        ([1; 32], [2; 32]),
        NOW,
    );
    pair.run();
    assert!(
        matches!(refusal(&pair), Refusal::Authority { problem, .. } if problem.contains("expired at 2026-01-01 00:00:00 UTC") && problem.contains("now 2026-06-01")),
        "{:?}",
        refusal(&pair)
    );
    assert!(pair.trusted().is_none());
    // The server is told: rustls's alert for an expired certificate.
    assert_eq!(
        pair.at_server.error,
        Some(TlsError::PeerAlert {
            alert: "CertificateExpired".into(),
            during_handshake: true
        })
    );
}

#[test]
fn the_same_certificate_is_judged_by_the_time_the_inputs_carry() {
    let authority = Authority::new();
    let cert = authority.issue(&["203.0.113.5"], date(2026, 1, 1), date(2027, 1, 1));
    let (known, _) = KnownHosts::parse("kh", "");
    let verdict = |now| {
        let mut pair = Pair::new(
            &server_tls(&cert),
            &with_authority(&authority),
            (&remote(), remote_ip()),
            &known,
            ([1; 32], [2; 32]),
            now,
        );
        pair.run();
        (
            pair.trusted().map(|t| t.basis),
            pair.at_client.error.clone(),
        )
    };
    assert_eq!(verdict(NOW).0, Some(Basis::Authority));
    // 2025-06-01: not valid yet.
    let (trusted, error) = verdict(UnixMillis(1_748_736_000_000));
    assert_eq!(trusted, None);
    assert!(
        error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("not valid before 2026-01-01")),
        "{error:?}"
    );
    // 2027-06-01: expired.
    let (trusted, error) = verdict(UnixMillis(1_811_808_000_000));
    assert_eq!(trusted, None);
    assert!(error.is_some_and(|e| e.to_string().contains("expired at 2027-01-01")));
}

#[test]
fn a_certificate_from_a_trusted_authority_for_another_name_is_refused() {
    let authority = Authority::new();
    let cert = authority.issue(&["chat.example.org"], date(2026, 1, 1), date(2027, 1, 1));
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::new(
        &server_tls(&cert),
        &with_authority(&authority),
        (&remote(), remote_ip()),
        &known,
        ([1; 32], [2; 32]),
        NOW,
    );
    pair.run();
    let text = pair.at_client.error.as_ref().unwrap().to_string();
    assert!(
        text.contains("signed by a trusted authority")
            && text.contains("not valid for 203.0.113.5")
            && text.contains("chat.example.org"),
        "{text}"
    );
}

#[test]
fn a_self_signed_certificate_is_judged_by_its_pin_not_its_dates() {
    let authority = Authority::new();
    // A self-signed certificate long expired: no authority vouches for it, so trust on first
    // use applies, as ssh does for host keys.
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = date(2020, 1, 1);
    params.not_after = date(2021, 1, 1);
    let cert = Cert::from_rcgen(&params.self_signed(&key).unwrap(), &key);
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::new(
        &server_tls(&cert),
        &with_authority(&authority),
        (&remote(), remote_ip()),
        &known,
        ([1; 32], [2; 32]),
        NOW,
    );
    pair.run();
    assert_eq!(pair.trusted().map(|t| t.basis), Some(Basis::FirstUse));
}

/// A server that shows `shown`'s certificate but holds `holds`'s key.
fn impostor(shown: &Cert, holds: &Cert) -> ServerTls {
    let key = provider()
        .key_provider
        .load_private_key(PrivateKeyDer::try_from(holds.key_der.clone()).unwrap())
        .unwrap();
    let certified = CertifiedKey::new(vec![CertificateDer::from(shown.der.clone())], key);
    ServerTls::serving(
        Arc::new(certified),
        shown.fingerprint(),
        TlsLimits::default(),
    )
    .unwrap()
}

#[test]
fn a_copied_certificate_without_its_key_fails_even_when_pinned_or_on_loopback() {
    let real = self_signed(&["localhost"]);
    let thief = self_signed(&["localhost"]);
    let (known, _) = KnownHosts::parse("kh", &format!("{} {}\n", remote(), real.fingerprint()));
    let (lo, lo_ip) = loopback();
    for (server, ip) in [(remote(), remote_ip()), (lo, lo_ip)] {
        let mut pair = Pair::new(
            &impostor(&real, &thief),
            &ClientTls::pins_only(TlsLimits::default()),
            (&server, ip),
            &known,
            ([1; 32], [2; 32]),
            NOW,
        );
        pair.client_sends(b"password");
        pair.run();
        assert!(
            matches!(
                &pair.at_client.error,
                Some(TlsError::Handshake(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadSignature
                )))
            ),
            "{server}: {:?}",
            pair.at_client.error
        );
        assert!(
            pair.trusted().is_none(),
            "no verdict is reported for a failed handshake"
        );
        assert!(pair.at_server.plaintext.is_empty());
    }
}

#[test]
fn a_root_that_is_not_a_certificate_is_a_clear_error() {
    let e =
        ClientTls::with_roots(&[b"not a certificate".to_vec()], TlsLimits::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a trusted root certificate cannot be used"),
        "{e}"
    );
    // Mozilla's roots load.
    assert!(ClientTls::with_mozilla_roots(TlsLimits::default()).is_ok());
}

#[test]
fn a_self_signed_certificate_marked_as_a_ca_is_pinned_on_first_use_like_any_other() {
    // `openssl req -x509 -newkey …` makes a self-signed certificate with CA:TRUE; webpki
    // refuses it as an end entity (CaUsedAsEndEntity), which left every checking client
    // unable to connect to a server that uses one. No authority vouches for it: the pin does.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["203.0.113.5".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = Cert::from_rcgen(&params.self_signed(&key).unwrap(), &key);
    // A client with authorities, as a real one has (the web's roots): webpki then looks.
    let authority = Authority::new();
    let server = HostPort::new("203.0.113.5", 4000).unwrap();
    let connect = |cert: &Cert, known: &KnownHosts| {
        let mut pair = Pair::new(
            &server_tls(cert),
            &with_authority(&authority),
            (&server, remote_ip()),
            known,
            ([1; 32], [2; 32]),
            NOW,
        );
        pair.run();
        pair
    };
    let (mut known, _) = KnownHosts::parse("kh", "");
    let pair = connect(&cert, &known);
    let trusted = pair.trusted().expect("accepted on first use").clone();
    assert_eq!(trusted.basis, Basis::FirstUse);
    assert_eq!(trusted.fingerprint, cert.fingerprint());
    // Pinned, the next connection is trusted by the pin; another such certificate is not.
    let (text, _) = known.pin(trusted.pin_to_record().unwrap());
    let (known, _) = KnownHosts::parse("kh", &text);
    let pair = connect(&cert, &known);
    assert!(matches!(
        pair.trusted().map(|t| &t.basis),
        Some(Basis::Pinned { .. })
    ));
    let other = self_signed(&["203.0.113.5"]);
    let pair = connect(&other, &known);
    assert!(
        matches!(refusal(&pair), Refusal::CertificateChanged { .. }),
        "{:?}",
        refusal(&pair)
    );
}
