//! Loading the server's certificate and key: good files work, bad ones say what is wrong.

use super::*;

#[test]
fn a_pem_certificate_and_key_serve_and_print_the_certificates_fingerprint() {
    let cert = self_signed(&["localhost"]);
    let id = ServerIdentity::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    assert_eq!(id.fingerprint(), cert.fingerprint());
    let tls = ServerTls::new(&id, TlsLimits::default()).unwrap();
    assert_eq!(tls.fingerprint(), cert.fingerprint());
    let (known, _) = KnownHosts::parse("kh", "");
    let mut pair = Pair::remote(&tls, &known);
    pair.run();
    assert_eq!(pair.trusted().unwrap().fingerprint, cert.fingerprint());
}

#[test]
fn a_chain_is_served_leaf_first() {
    let authority = Authority::new();
    let leaf = authority.issue(&["203.0.113.5"], date(2026, 1, 1), date(2027, 1, 1));
    let pem = format!("{}{}", leaf.cert_pem, authority_pem(&authority));
    let id = ServerIdentity::from_pem(pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    assert_eq!(id.fingerprint(), leaf.fingerprint());
}

fn authority_pem(authority: &Authority) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(authority.root_der());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[test]
fn swapped_files_are_named_as_such() {
    let cert = self_signed(&["localhost"]);
    let e =
        ServerIdentity::from_pem(cert.key_pem.as_bytes(), cert.cert_pem.as_bytes()).unwrap_err();
    assert!(matches!(e, IdentityError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("swapped"), "{e}");
    let e =
        ServerIdentity::from_pem(cert.cert_pem.as_bytes(), cert.cert_pem.as_bytes()).unwrap_err();
    assert!(matches!(e, IdentityError::NoKey { .. }), "{e:?}");
    assert!(e.to_string().contains("swapped"), "{e}");
}

#[test]
fn a_key_that_belongs_to_another_certificate_is_refused() {
    let a = self_signed(&["localhost"]);
    let b = self_signed(&["localhost"]);
    let e = ServerIdentity::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert_eq!(e, IdentityError::KeyMismatch);
    assert!(e.to_string().contains("does not belong to the certificate"));
}

#[test]
fn broken_or_empty_files_are_clear_errors_never_panics() {
    let cert = self_signed(&["localhost"]);
    let truncated = &cert.cert_pem[..cert.cert_pem.len() - 30];
    let cases: [(&[u8], &[u8]); 5] = [
        (b"", cert.key_pem.as_bytes()),
        (truncated.as_bytes(), cert.key_pem.as_bytes()),
        (cert.cert_pem.as_bytes(), b""),
        (
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            cert.key_pem.as_bytes(),
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            cert.key_pem.as_bytes(),
        ),
    ];
    for (c, k) in cases {
        let e = ServerIdentity::from_pem(c, k).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    assert!(ServerIdentity::from_der(vec![], cert.key_der.clone()).is_err());
    assert!(ServerIdentity::from_der(vec![b"junk".to_vec()], cert.key_der.clone()).is_err());
    assert!(ServerIdentity::from_der(vec![cert.der.clone()], b"junk".to_vec()).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_as_certificate_or_key_never_panic(
        c in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        k in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
    ) {
        let _ = ServerIdentity::from_pem(&c, &k);
        let _ = ServerIdentity::from_der(vec![c.clone()], k.clone());
    }
}
