//! Two TLS sessions in one process, bytes shuffled between them in small random chunks, time
//! virtual: the same shape as `transfer::tests::Pair`.

mod determinism;
mod handshake;
mod hostile;
mod identity;
mod trust;

use std::net::IpAddr;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ED25519};

use super::*;
use crate::time::UnixMillis;

/// 2026-06-01 00:00:00 UTC: "now" in these tests.
pub(super) const NOW: UnixMillis = UnixMillis(1_780_272_000_000);

/// A TEST-NET-3 address (RFC 5737): not loopback, never contacted (nothing here is networked).
pub(super) fn remote_ip() -> IpAddr {
    "203.0.113.5".parse().unwrap()
}

pub(super) fn remote() -> HostPort {
    HostPort::from_addr((remote_ip(), 4000).into())
}

pub(super) fn loopback() -> (HostPort, IpAddr) {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    (HostPort::from_addr((ip, 4000).into()), ip)
}

/// A date as rcgen wants it.
pub(super) fn date(y: i32, m: u8, d: u8) -> time::OffsetDateTime {
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
        .unwrap()
        .midnight()
        .assume_utc()
}

/// A certificate and its key, as the server would load them.
pub(super) struct Cert {
    pub der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Cert {
    /// What rcgen made, as the server would load it.
    pub fn from_rcgen(cert: &rcgen::Certificate, key: &KeyPair) -> Self {
        Cert {
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn identity(&self) -> ServerIdentity {
        ServerIdentity::from_der(vec![self.der.clone()], self.key_der.clone()).unwrap()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_certificate(&self.der)
    }
}

/// A self-signed Ed25519 certificate for `names`, valid from 1975 to 4096 (rcgen's default).
pub(super) fn self_signed(names: &[&str]) -> Cert {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    Cert::from_rcgen(&params.self_signed(&key).unwrap(), &key)
}

/// A test certificate authority.
pub(super) struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    pub fn new() -> Self {
        let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "huddle test authority");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = date(2020, 1, 1);
        params.not_after = date(2040, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A leaf for `names`, valid between the two dates.
    pub fn issue(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Cert {
        let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Cert {
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub(super) fn server_tls(cert: &Cert) -> ServerTls {
    ServerTls::new(&cert.identity(), TlsLimits::default()).unwrap()
}

/// One side's view of the run.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub events: Vec<TlsEvent>,
    pub plaintext: Vec<u8>,
    pub error: Option<TlsError>,
    /// Every byte this side wrote, in order (its transcript).
    pub wire: Vec<u8>,
}

/// A client and a server session, connected by a lossless in-memory pipe that delivers in
/// random chunks of 1..=`max_chunk` bytes.
pub(super) struct Pair {
    pub server: ServerSession,
    pub client: ClientSession,
    pub now: UnixMillis,
    pub max_chunk: usize,
    chunks: ChaCha20Rng,
    pub at_server: Seen,
    pub at_client: Seen,
}

impl Pair {
    /// Connect a client to `server_tls` with the given trust, seeds and time.
    pub fn new(
        server_tls: &ServerTls,
        client_tls: &ClientTls,
        target: (&HostPort, IpAddr),
        known: &KnownHosts,
        seeds: ([u8; 32], [u8; 32]),
        now: UnixMillis,
    ) -> Self {
        let client = client_tls
            .connect(target.0, target.1, known, seeds.0, now)
            .unwrap();
        let server = server_tls.accept(seeds.1, now).unwrap();
        Self {
            server,
            client,
            now,
            max_chunk: 64,
            chunks: ChaCha20Rng::from_seed([0xC4; 32]),
            at_server: Seen::default(),
            at_client: Seen::default(),
        }
    }

    /// Connect to a remote (non-loopback) server trusting pins only.
    pub fn remote(server_tls: &ServerTls, known: &KnownHosts) -> Self {
        Self::new(
            server_tls,
            &ClientTls::pins_only(TlsLimits::default()),
            (&remote(), remote_ip()),
            known,
            ([1; 32], [2; 32]),
            NOW,
        )
    }

    /// Move bytes both ways until neither side has anything to send (bounded).
    pub fn run(&mut self) {
        for _ in 0..1_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the sessions kept talking for 1000 steps");
    }

    /// One round: each side's pending output delivered to the other, then 1 ms passes.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        while let Some(bytes) = self.client.poll_transmit() {
            moved = true;
            self.at_client.wire.extend_from_slice(&bytes);
            deliver(
                &mut self.chunks,
                self.max_chunk,
                &bytes,
                &mut self.server,
                &mut self.at_server,
                self.now,
            );
        }
        while let Some(bytes) = self.server.poll_transmit() {
            moved = true;
            self.at_server.wire.extend_from_slice(&bytes);
            deliver(
                &mut self.chunks,
                self.max_chunk,
                &bytes,
                &mut self.client,
                &mut self.at_client,
                self.now,
            );
        }
        self.now = self.now.plus_millis(1);
        moved
    }

    /// Send plaintext from the client / the server.
    pub fn client_sends(&mut self, data: &[u8]) {
        self.client.send(data, self.now).unwrap();
    }

    pub fn server_sends(&mut self, data: &[u8]) {
        self.server.send(data, self.now).unwrap();
    }

    /// The client's verdict on the server, if its handshake finished.
    pub fn trusted(&self) -> Option<&Trusted> {
        self.at_client.events.iter().find_map(|e| match e {
            TlsEvent::ServerTrusted(t) => Some(t),
            _ => None,
        })
    }
}

/// Feed `bytes` to `to` in random chunks, then drain what it produced.
fn deliver<S: session::Side>(
    chunks: &mut ChaCha20Rng,
    max_chunk: usize,
    mut bytes: &[u8],
    to: &mut Session<S>,
    seen: &mut Seen,
    now: UnixMillis,
) {
    while !bytes.is_empty() && seen.error.is_none() {
        let n = (1 + chunks.next_u32() as usize % max_chunk).min(bytes.len());
        let (chunk, rest) = bytes.split_at(n);
        bytes = rest;
        if let Err(e) = to.handle_wire(chunk, now) {
            seen.error = Some(e);
        }
        drain(to, seen);
    }
}

/// Take every event and every plaintext byte a session has for us.
pub(super) fn drain<S: session::Side>(session: &mut Session<S>, seen: &mut Seen) {
    while let Some(e) = session.poll_event() {
        seen.events.push(e);
    }
    while let Some(p) = session.poll_plaintext() {
        seen.plaintext.extend_from_slice(&p);
    }
}

/// Bytes of a recognisable, non-repeating-per-KiB pattern.
pub(super) fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ salt)
        .collect()
}
