//! Issue 11: `STARTTLS` in the server core — the upgrade, the handshake and the protocol
//! inside TLS as Sans-IO state, in virtual time, against real client sessions; who may log in
//! in clear; and the hostile cases (garbage, injection, repeats, stalls, floods).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::*;
use crate::tls::{
    ClientSession, ClientTls, HostPort, KnownHosts, ServerIdentity, ServerTls, TlsError, TlsEvent,
    TlsLimits,
};

const T0: u64 = 1_795_300_000_000;
/// TEST-NET addresses (RFC 5737): not loopback, never contacted.
const REMOTE: &str = "203.0.113.7";
const SERVER_ADDR: &str = "203.0.113.1:4000";
/// Bytes a peer's socket hands the server at a time.
const CHUNK: usize = 16 * 1024;

fn identity() -> ServerIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    ServerIdentity::from_der(vec![cert.der().to_vec()], key.serialize_der()).unwrap()
}

fn config(identity: &ServerIdentity) -> ServerConfig {
    ServerConfig {
        hash_memory_kib: 64,
        tls: Some(ServerTls::new(identity, TlsLimits::default()).unwrap()),
        ..ServerConfig::default()
    }
}

fn users() -> DataFiles {
    let mut f = DataFiles::new();
    f.insert(
        DataFile::Credentials,
        "yoda jedi\nluke r2d2\nleia alderaan\nhan solo\n",
    );
    f
}

/// One client: its socket's two directions and, once upgraded, its TLS session.
struct Peer {
    session: Option<ClientSession>,
    /// What the client has read: bytes in clear, then the plaintext of its session.
    text: Vec<u8>,
    /// Every byte the server sent it, as on the wire.
    wire_in: Vec<u8>,
    /// Every byte it sent, as on the wire.
    wire_out: Vec<u8>,
    /// Bytes it sent that the server has not read yet.
    pending: Vec<u8>,
    events: Vec<TlsEvent>,
    error: Option<TlsError>,
    /// Its reads are not reported to the server (it stopped reading).
    stalled: bool,
}

/// A server and its clients, in one process, in virtual time: writes are reported at once
/// (unless a peer is stalled), a client's bytes reach the server in socket-sized chunks while
/// the server reads it, hashes are computed at once.
struct Net {
    server: Server,
    now: u64,
    peers: BTreeMap<ConnId, Peer>,
    closed: BTreeSet<ConnId>,
    paused: BTreeSet<ConnId>,
    /// Bytes handed out per connection, as the driver would write them.
    handed: BTreeMap<ConnId, usize>,
    logs: Vec<String>,
    next_port: u16,
    next_seed: u8,
    client_tls: ClientTls,
    memory: HashMemory,
}

impl Net {
    fn new(config: ServerConfig) -> Self {
        let mut n = Net {
            server: Server::new(config, &users(), UnixMillis(T0)).expect("the folder is clean"),
            now: T0,
            peers: BTreeMap::new(),
            closed: BTreeSet::new(),
            paused: BTreeSet::new(),
            handed: BTreeMap::new(),
            logs: Vec::new(),
            next_port: 40_000,
            next_seed: 1,
            client_tls: ClientTls::pins_only(TlsLimits::default()),
            memory: HashMemory::new(),
        };
        n.step();
        n
    }

    fn at(&self) -> UnixMillis {
        UnixMillis(self.now)
    }

    fn step(&mut self) {
        for _ in 0..100_000 {
            let now = self.at();
            let mut written: BTreeMap<ConnId, usize> = BTreeMap::new();
            let mut ended = Vec::new();
            let mut hashed = Vec::new();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    assert!(!self.closed.contains(&conn), "sent on closed {conn}");
                    *self.handed.entry(conn).or_default() += bytes.len();
                    let peer = self.peers.get_mut(&conn).expect("a peer");
                    peer.receive(bytes, now);
                    if !peer.stalled {
                        *written.entry(conn).or_default() += bytes.len();
                    }
                }
                match out {
                    Output::Close { conn } | Output::Cut { conn } => ended.push(conn),
                    Output::PauseReading { conn } => {
                        self.paused.insert(conn);
                    }
                    Output::ResumeReading { conn } => {
                        self.paused.remove(&conn);
                    }
                    Output::Log(l) => self.logs.extend(l.lines().map(str::to_owned)),
                    Output::Hash(job) => hashed.push(job.run(&mut self.memory)),
                    _ => {}
                }
            }
            let mut moved = !written.is_empty() || !ended.is_empty() || !hashed.is_empty();
            for (conn, n) in written {
                self.server.handle_written(conn, n, now);
            }
            for done in hashed {
                self.server.handle_input(Input::Hashed(done), now);
            }
            for conn in ended {
                self.closed.insert(conn);
                self.server.handle_disconnect(conn, now);
            }
            for (&conn, peer) in &mut self.peers {
                if self.closed.contains(&conn) {
                    continue;
                }
                if let Some(s) = peer.session.as_mut() {
                    while let Some(b) = s.poll_transmit() {
                        peer.wire_out.extend_from_slice(&b);
                        peer.pending.extend_from_slice(&b);
                    }
                }
                if !peer.pending.is_empty() && !self.paused.contains(&conn) {
                    let n = peer.pending.len().min(CHUNK);
                    let chunk: Vec<u8> = peer.pending.drain(..n).collect();
                    self.server.handle_bytes(conn, &chunk, now);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settled");
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.server.handle_timeout(self.at());
        self.step();
    }

    fn connect(&mut self, ip: &str) -> ConnId {
        self.next_port += 1;
        let addr = SocketAddr::new(ip.parse().unwrap(), self.next_port);
        let conn = self.server.handle_connect(addr, self.at());
        self.peers.insert(
            conn,
            Peer {
                session: None,
                text: Vec::new(),
                wire_in: Vec::new(),
                wire_out: Vec::new(),
                pending: Vec::new(),
                events: Vec::new(),
                error: None,
                stalled: false,
            },
        );
        self.step();
        conn
    }

    fn peer(&mut self, conn: ConnId) -> &mut Peer {
        self.peers.get_mut(&conn).expect("a peer")
    }

    /// The peer sends raw bytes, as they are (in clear, or garbage).
    fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        let peer = self.peer(conn);
        peer.wire_out.extend_from_slice(bytes);
        peer.pending.extend_from_slice(bytes);
        self.step();
    }

    /// The peer sends a line, through its session if it has one.
    fn send(&mut self, conn: ConnId, line: &str) {
        let now = self.at();
        let data = format!("{line}\n");
        let peer = self.peer(conn);
        match peer.session.as_mut() {
            Some(s) => s.send(data.as_bytes(), now).unwrap(),
            None => {
                peer.wire_out.extend_from_slice(data.as_bytes());
                peer.pending.extend_from_slice(data.as_bytes());
            }
        }
        self.step();
    }

    /// Send a line; what the peer read since.
    /// Send a line; what came back, without the `* POSTED` line a `MSG` gets before its reply.
    fn say(&mut self, conn: ConnId, line: &str) -> String {
        self.take(conn);
        self.send(conn, line);
        self.take(conn)
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("* POSTED "))
            .collect()
    }

    fn take(&mut self, conn: ConnId) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.peer(conn).text)).into_owned()
    }

    /// Ask for TLS and start the session on the `220`; returns what came inside TLS (the
    /// greeting again).
    fn starttls(&mut self, conn: ConnId) -> String {
        let answer = self.say(conn, "STARTTLS");
        assert_eq!(answer, "220 Ready to start TLS\n");
        let seed = [self.next_seed; 32];
        self.next_seed = self.next_seed.wrapping_add(1);
        let server: SocketAddr = SERVER_ADDR.parse().unwrap();
        let (known, _) = KnownHosts::parse("kh", "");
        let session = self
            .client_tls
            .connect(
                &HostPort::from_addr(server),
                server.ip(),
                &known,
                seed,
                self.at(),
            )
            .unwrap();
        self.peer(conn).session = Some(session);
        self.step();
        self.take(conn)
    }

    /// Connect from `ip`, upgrade, log in.
    fn login_tls(&mut self, ip: &str, name: &str, password: &str) -> ConnId {
        let c = self.connect(ip);
        self.starttls(c);
        self.say(c, name);
        let r = self.say(c, password);
        assert!(r.starts_with("230-"), "login of {name} failed: {r}");
        c
    }

    fn login_clear(&mut self, ip: &str, name: &str, password: &str) -> ConnId {
        let c = self.connect(ip);
        self.take(c);
        self.say(c, name);
        let r = self.say(c, password);
        assert!(r.starts_with("230-"), "login of {name} failed: {r}");
        c
    }

    fn log_has(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }
}

impl Peer {
    fn receive(&mut self, bytes: &[u8], now: UnixMillis) {
        self.wire_in.extend_from_slice(bytes);
        let Some(s) = self.session.as_mut() else {
            self.text.extend_from_slice(bytes);
            return;
        };
        if self.error.is_some() {
            return;
        }
        if let Err(e) = s.handle_wire(bytes, now) {
            self.error = Some(e);
        }
        while let Some(e) = s.poll_event() {
            self.events.push(e);
        }
        while let Some(p) = s.poll_plaintext() {
            self.text.extend_from_slice(&p);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ----- the upgrade -----

#[test]
fn the_greeting_offers_starttls_and_a_login_runs_the_same_dialogue_inside_tls() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let c = net.connect(REMOTE);
    let greeting = net.take(c);
    assert_eq!(
        greeting,
        "331 Welcome to huddle. Please log in with your user name. (Send STARTTLS first to encrypt the connection.)\n",
        "one 331 line, with the offer at its end"
    );
    let inside = net.starttls(c);
    assert_eq!(
        inside,
        "331 Welcome to huddle. Please log in with your user name.\n"
    );
    assert!(
        net.peer(c)
            .events
            .iter()
            .any(|e| matches!(e, TlsEvent::Established { .. })),
        "{:?}",
        net.peer(c).events
    );
    let before = (net.peer(c).wire_in.len(), net.peer(c).wire_out.len());
    assert_eq!(net.say(c, "yoda"), "332 Password for yoda:\n");
    assert!(
        net.say(c, "jedi")
            .starts_with("230-Welcome to huddle, yoda!")
    );
    assert!(
        net.say(c, "MSG a secret plan")
            .starts_with("250 Message #1 posted at")
    );
    // Neither the password nor the post crossed the wire in clear, either way.
    let peer = net.peer(c);
    for secret in [&b"jedi"[..], b"secret plan", b"yoda"] {
        assert!(!contains(&peer.wire_out[before.1..], secret));
        assert!(!contains(&peer.wire_in[before.0..], secret));
    }
    assert!(net.log_has("asked for TLS"));
    assert!(net.log_has("TLS established (TLS13_"));
    assert!(net.log_has("yoda logged in from 203.0.113.7:40001 over TLS"));
    assert!(net.say(c, "OUT").starts_with("221 Goodbye, yoda!"));
    assert!(net.closed.contains(&c));
    // The session was ended cleanly: the client saw close_notify.
    assert!(
        net.peer(c)
            .events
            .iter()
            .any(|e| matches!(e, TlsEvent::PeerClosed { clean: true })),
        "{:?}",
        net.peer(c).events
    );
}

#[test]
fn a_server_without_a_certificate_offers_nothing_and_says_starttls_is_not_available() {
    let mut net = Net::new(ServerConfig {
        hash_memory_kib: 64,
        ..ServerConfig::default()
    });
    let c = net.connect("127.0.0.1");
    assert_eq!(
        net.take(c),
        "331 Welcome to huddle. Please log in with your user name.\n"
    );
    assert!(
        net.say(c, "STARTTLS")
            .starts_with("502 STARTTLS is not available")
    );
    assert_eq!(net.say(c, "yoda"), "332 Password for yoda:\n");
}

// ----- who may log in in clear -----

#[test]
fn a_user_name_in_clear_from_a_remote_address_is_refused_until_starttls() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let c = net.connect(REMOTE);
    net.take(c);
    // Declaring the UDP port is not a login: allowed in clear.
    assert_eq!(net.say(c, "UDP 6000"), "200 UDP port 6000 noted\n");
    for name in ["yoda", "newcomer"] {
        let r = net.say(c, name);
        assert!(
            r.starts_with("530 This server accepts user names and passwords from 203.0.113.7 only over TLS: send STARTTLS first"),
            "{r}"
        );
    }
    assert!(!net.closed.contains(&c), "the connection stays, to upgrade");
    assert!(net.log_has("203.0.113.7:40001: refused a user name sent in clear"));
    net.starttls(c);
    assert_eq!(net.say(c, "yoda"), "332 Password for yoda:\n");
    assert!(net.say(c, "jedi").starts_with("230-"));
}

#[test]
fn loopback_logs_in_in_clear_unless_tls_is_required_and_allow_plaintext_opens_every_address() {
    let id = identity();
    let cases = [
        (PlaintextLogin::LoopbackOnly, "127.0.0.1", true),
        (PlaintextLogin::LoopbackOnly, "127.0.0.2", true),
        (PlaintextLogin::LoopbackOnly, "::1", true),
        (PlaintextLogin::LoopbackOnly, REMOTE, false),
        (PlaintextLogin::LoopbackOnly, "10.0.0.5", false),
        (PlaintextLogin::Anywhere, REMOTE, true),
        (PlaintextLogin::Nowhere, "127.0.0.1", false),
        (PlaintextLogin::Nowhere, REMOTE, false),
    ];
    for (policy, ip, allowed) in cases {
        let mut net = Net::new(ServerConfig {
            plaintext_login: policy,
            ..config(&id)
        });
        let c = net.connect(ip);
        net.take(c);
        let r = net.say(c, "yoda");
        assert_eq!(r.starts_with("332 "), allowed, "{policy:?} from {ip}: {r}");
        if !allowed {
            assert!(r.starts_with("530 "), "{policy:?} from {ip}: {r}");
            // TLS is always allowed.
            net.starttls(c);
            assert!(net.say(c, "yoda").starts_with("332 "), "{policy:?} {ip}");
        }
    }
}

#[test]
fn the_plaintext_rule_of_a_server_without_a_certificate_says_why_starttls_will_not_help() {
    let mut net = Net::new(ServerConfig {
        hash_memory_kib: 64,
        ..ServerConfig::default()
    });
    let c = net.connect(REMOTE);
    net.take(c);
    let r = net.say(c, "yoda");
    assert!(r.starts_with("530 "), "{r}");
    assert!(r.contains("no certificate"), "{r}");
}

// ----- hostile and out-of-order -----

#[test]
fn starttls_twice_or_after_login_is_refused_and_the_session_goes_on() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let c = net.connect(REMOTE);
    net.starttls(c);
    let again = net.say(c, "starttls");
    assert!(
        again.starts_with("503 This connection is already encrypted"),
        "{again}"
    );
    net.say(c, "yoda");
    assert!(net.say(c, "jedi").starts_with("230-"));
    let after = net.say(c, "STARTTLS");
    assert!(
        after.starts_with("503 STARTTLS comes before login"),
        "{after}"
    );
    assert!(net.say(c, "MSG still here").starts_with("250 "));
    // In clear on loopback, after login, too.
    let d = net.login_clear("127.0.0.1", "luke", "r2d2");
    assert!(net.say(d, "STARTTLS").starts_with("503 "));
    assert!(net.peer(d).session.is_none());
}

#[test]
fn plaintext_pipelined_after_starttls_is_refused_as_an_injection() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let c = net.connect(REMOTE);
    net.take(c);
    // The attacker's classic: its own command behind STARTTLS, in the same packet.
    net.send_raw(c, b"STARTTLS\r\nMSG injected\r\n");
    let got = net.take(c);
    assert!(
        got.starts_with("421 Bytes followed STARTTLS before the server's answer"),
        "{got}"
    );
    assert!(!got.contains("220 Ready"), "{got}");
    assert!(net.closed.contains(&c));
    assert!(net.log_has("came after STARTTLS before the server's answer"));
    // Even a partial line counts: nothing may hide behind STARTTLS.
    let d = net.connect(REMOTE);
    net.take(d);
    net.send_raw(d, b"STARTTLS\n\x16\x03\x01");
    assert!(net.take(d).starts_with("421 "));
    assert!(net.closed.contains(&d));
}

#[test]
fn garbage_after_starttls_closes_only_that_connection() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let luke = net.login_tls(REMOTE, "luke", "r2d2");
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"yoda\njedi\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff],
        &[0u8; 4096],
    ];
    for (i, garbage) in cases.iter().enumerate() {
        let c = net.connect("127.0.0.1");
        net.take(c);
        assert_eq!(net.say(c, "STARTTLS"), "220 Ready to start TLS\n");
        net.send_raw(c, garbage);
        assert!(net.closed.contains(&c), "case {i}: not closed");
        // Nothing came back in clear after the 220 but a TLS alert at most.
        let text = net.take(c);
        assert!(!text.contains("331"), "case {i}: {text:?}");
        assert!(
            net.say(luke, &format!("MSG still served {i}"))
                .starts_with("250 "),
            "case {i}"
        );
    }
    assert!(net.log_has("TLS failed"));
    assert_eq!(net.server.connection_count(), 1);
}

#[test]
fn a_handshake_that_stalls_is_closed_at_its_deadline() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let c = net.connect(REMOTE);
    net.take(c);
    assert_eq!(net.say(c, "STARTTLS"), "220 Ready to start TLS\n");
    // Half a ClientHello, then silence.
    net.send_raw(c, &[0x16, 0x03, 0x01, 0x00, 0x80, 1, 2, 3]);
    let limit = TlsLimits::default().handshake_timeout_millis;
    net.advance(limit - 1);
    assert!(!net.closed.contains(&c));
    net.advance(1);
    assert!(net.closed.contains(&c));
    assert!(net.log_has("did not finish within 10 s"));
}

#[test]
fn a_flood_of_handshakes_and_records_leaves_others_served_and_memory_bounded() {
    let id = identity();
    let cfg = ServerConfig {
        post_burst: 1_000_000,
        post_rate_per_sec: 1_000_000,
        ..config(&id)
    };
    let limit = cfg.max_input_buffer;
    let mut net = Net::new(cfg);
    let luke = net.login_tls(REMOTE, "luke", "r2d2");
    // 150 connections that ask for TLS and stall mid-handshake, 150 that send garbage.
    let mut stalled = Vec::new();
    for i in 0..300 {
        let c = net.connect("127.0.0.1");
        net.take(c);
        net.send(c, "STARTTLS");
        if i % 2 == 0 {
            net.send_raw(c, &[0x16, 0x03, 0x01, 0x02, 0x00, 0xaa]);
            stalled.push(c);
        } else {
            net.send_raw(c, &[0x17; 300]);
        }
    }
    assert!(net.say(luke, "MSG during the flood").starts_with("250 "));
    // One encrypted client pipelines over a MiB of requests without reading: the server stops
    // reading it once its buffer holds a bounded amount.
    let flooder = net.login_tls(REMOTE, "han", "solo");
    net.peer(flooder).stalled = true;
    let mut lines = String::new();
    for i in 0..50_000 {
        lines.push_str(&format!("RDM 01 Jan 2000 00:00:{:02} {i}\n", i % 60));
    }
    let now = net.at();
    net.peer(flooder)
        .session
        .as_mut()
        .unwrap()
        .send(lines.as_bytes(), now)
        .unwrap();
    net.step();
    assert!(net.paused.contains(&flooder), "the flooder is paused");
    let held = net.server.conns.get(flooder).unwrap().framer.buffered();
    assert!(held <= limit + CHUNK, "{held} bytes buffered");
    assert!(net.say(luke, "MSG after the flood").starts_with("250 "));
    // The stalled handshakes end at their deadline; the garbage ones are gone already.
    net.advance(TlsLimits::default().handshake_timeout_millis);
    for c in stalled {
        assert!(net.closed.contains(&c));
    }
    assert_eq!(net.server.connection_count(), 2);
}

// ----- accounting in bytes on the wire -----

#[test]
fn output_accounting_counts_sealed_bytes_and_backpressure_holds_inside_tls() {
    let id = identity();
    let cfg = ServerConfig {
        post_burst: 1_000_000,
        post_rate_per_sec: 1_000_000,
        ..config(&id)
    };
    let high = cfg.output_high_water;
    let mut net = Net::new(cfg);
    let reader = net.login_tls(REMOTE, "leia", "alderaan");
    let poster = net.login_tls(REMOTE, "yoda", "jedi");
    net.peer(reader).stalled = true;
    let handed_before = net.handed[&reader];
    for i in 0..1200 {
        net.say(poster, &format!("MSG post {i} {}", "x".repeat(200)));
    }
    let flow = &net.server.conns.get(reader).unwrap().flow;
    // Everything handed out since the reader stalled is unsent, counted as wire bytes.
    assert_eq!(flow.queued(), net.handed[&reader] - handed_before);
    // Its own requests wait once the wire bytes pass the high-water mark.
    net.send(reader, "ATU");
    assert!(flow_unsent(&net, reader) > high);
    assert!(!net.take(reader).lines().any(|l| l.starts_with("250")));
    net.peer(reader).stalled = false;
    let unreported = flow_unsent(&net, reader);
    net.server.handle_written(reader, unreported, net.at());
    net.step();
    let got = net.take(reader);
    assert!(got.contains("250 "), "ATU answered once drained");
    assert_eq!(net.server.conns.get(reader).unwrap().flow.queued(), 0);
}

fn flow_unsent(net: &Net, conn: ConnId) -> usize {
    net.server.conns.get(conn).unwrap().flow.unsent()
}

#[test]
fn a_private_message_cut_off_inside_its_records_comes_again_and_one_that_arrived_does_not() {
    let id = identity();
    for cut_inside in [true, false] {
        let mut net = Net::new(config(&id));
        let leia = net.login_tls(REMOTE, "leia", "alderaan");
        let yoda = net.login_tls(REMOTE, "yoda", "jedi");
        let before = net.handed[&leia];
        net.say(yoda, "PVT leia meet at the hangar");
        let record = net.handed[&leia] - before;
        assert!(net.take(leia).contains("* PVT"));
        // The connection ends; the peer's machine had acknowledged all but `unacked` bytes.
        let unacked = if cut_inside { record / 2 } else { 0 };
        net.server.handle_input(
            Input::Closed {
                conn: leia,
                unacked,
            },
            net.at(),
        );
        net.closed.insert(leia);
        net.step();
        let again = net.connect(REMOTE);
        net.starttls(again);
        net.say(again, "leia");
        let got = net.say(again, "alderaan");
        assert!(got.starts_with("230-"), "{got}");
        assert_eq!(
            got.contains("meet at the hangar"),
            cut_inside,
            "cut inside the record: {cut_inside}: {got}"
        );
    }
}

// ----- fan-out -----

#[test]
fn clear_and_encrypted_users_get_the_same_event_each_in_its_own_form() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let luke = net.login_clear("127.0.0.1", "luke", "r2d2");
    let leia = net.login_tls(REMOTE, "leia", "alderaan");
    let han = net.login_tls("127.0.0.1", "han", "solo");
    let yoda = net.login_tls(REMOTE, "yoda", "jedi");
    for c in [luke, leia, han] {
        net.take(c);
    }
    net.send(yoda, "MSG hello everyone");
    let lines: Vec<String> = [luke, leia, han].iter().map(|c| net.take(*c)).collect();
    for l in &lines {
        assert!(l.contains(" yoda no hello everyone\n"), "{l}");
    }
    assert_eq!(lines[0], lines[1]);
    assert_eq!(lines[1], lines[2]);
    assert!(contains(&net.peer(luke).wire_in, b"hello everyone"));
    for c in [leia, han] {
        assert!(!contains(&net.peer(c).wire_in, b"hello everyone"));
    }
}

#[test]
fn an_encrypted_fan_out_goes_out_as_one_broadcast_for_clear_users_and_one_send_each_else() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let _luke = net.login_clear("127.0.0.1", "luke", "r2d2");
    let _han = net.login_clear("127.0.0.1", "han", "solo");
    let leia = net.login_tls(REMOTE, "leia", "alderaan");
    let yoda = net.login_tls(REMOTE, "yoda", "jedi");
    // Send the line by hand and look at the outputs before the network carries them out.
    let now = net.at();
    net.peer(yoda)
        .session
        .as_mut()
        .unwrap()
        .send(b"MSG counted\n", now)
        .unwrap();
    let wire = net
        .peer(yoda)
        .session
        .as_mut()
        .unwrap()
        .poll_transmit()
        .unwrap();
    net.server.handle_bytes(yoda, &wire, now);
    let mut outputs = Vec::new();
    while let Some(o) = net.server.poll_output() {
        outputs.push(o);
    }
    let broadcasts: Vec<usize> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast { audience, .. } => Some(audience.iter().count()),
            _ => None,
        })
        .collect();
    assert_eq!(
        broadcasts,
        vec![2],
        "one broadcast, to the two users in clear"
    );
    let sends_to_leia = outputs
        .iter()
        .filter(|o| matches!(o, Output::Send { conn, .. } if *conn == leia))
        .count();
    assert_eq!(sends_to_leia, 1);
}

// ----- determinism and long sessions -----

/// Run one scripted session; every byte each peer saw on the wire, and the server's log.
fn scripted(id: &ServerIdentity, seed: u8) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut cfg = config(id);
    cfg.rng_seed = [seed; 32];
    let mut net = Net::new(cfg);
    let a = net.login_tls(REMOTE, "yoda", "jedi");
    let b = net.login_tls("127.0.0.1", "leia", "alderaan");
    net.say(a, "MSG one");
    net.say(b, "PVT yoda two");
    net.advance(1500);
    net.say(a, "OUT");
    net.say(b, "OUT");
    let wires = net
        .peers
        .values()
        .flat_map(|p| [p.wire_in.clone(), p.wire_out.clone()])
        .collect();
    (wires, net.logs)
}

#[test]
fn a_server_replays_its_tls_sessions_byte_for_byte_from_its_seed() {
    let id = identity();
    let first = scripted(&id, 7);
    assert_eq!(first, scripted(&id, 7));
    let other = scripted(&id, 8);
    assert_ne!(first.0, other.0, "another seed, other bytes");
}

#[test]
fn fifty_sessions_in_a_row_upgrade_log_in_post_and_leave_nothing_behind() {
    let id = identity();
    let mut net = Net::new(config(&id));
    for i in 0..50 {
        let c = net.login_tls(REMOTE, "yoda", "jedi");
        let r = net.say(c, &format!("MSG visit {i}"));
        assert!(
            r.starts_with(&format!("250 Message #{} posted", i + 1)),
            "{r}"
        );
        if i % 5 == 0 {
            // Now and then a visit that breaks off mid-handshake first.
            let d = net.connect(REMOTE);
            net.say(d, "STARTTLS");
            net.server.handle_disconnect(d, net.at());
            net.closed.insert(d);
        }
        assert!(net.say(c, "OUT").starts_with("221 "));
        net.advance(100);
    }
    assert_eq!(net.server.connection_count(), 0);
    assert_eq!(net.server.online_count(), 0);
    // Past every deadline that was armed, nothing is left waiting.
    net.advance(61_000);
    assert_eq!(net.server.timers.len(), 0, "no timers left behind");
}

// ----- item 3: the secrets of uploads -----

#[test]
fn an_uploads_secret_reaches_both_clients_only_inside_tls() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let login = |net: &mut Net, name: &str, password: &str, udp: u16| {
        let c = net.connect(REMOTE);
        net.starttls(c);
        assert!(net.say(c, &format!("UDP {udp}")).starts_with("200 "));
        net.say(c, name);
        assert!(net.say(c, password).starts_with("230-"));
        c
    };
    let leia = login(&mut net, "leia", "alderaan", 6001);
    let yoda = login(&mut net, "yoda", "jedi", 6002);
    net.take(leia);
    let approval = net.say(yoda, "UPD leia 1000 clip.mp4");
    assert!(approval.starts_with("227 "), "{approval}");
    let grant = crate::proto::upload::parse_upload_grant(approval[4..].trim_end())
        .expect("a grant in the 227");
    let announced = net.take(leia);
    let secret_hex: String = grant.secret.0.iter().map(|b| format!("{b:02x}")).collect();
    assert!(announced.contains(&secret_hex), "{announced}");
    for c in [leia, yoda] {
        let p = net.peer(c);
        for wire in [&p.wire_in, &p.wire_out] {
            assert!(!contains(wire, secret_hex.as_bytes()));
            assert!(!contains(wire, &grant.secret.0));
            assert!(!contains(wire, b"clip.mp4"));
        }
    }
}

// ----- staged fan-out: one record per recipient per batch -----

/// Hand `text` from `conn`'s session to the server without polling it, so several inputs
/// make one batch.
fn feed(net: &mut Net, conn: ConnId, text: &str) {
    let now = net.at();
    let session = net.peer(conn).session.as_mut().expect("upgraded");
    session.send(text.as_bytes(), now).unwrap();
    let wire = session.poll_transmit().unwrap();
    net.server.handle_bytes(conn, &wire, now);
}

/// Poll the server dry; returns the outputs and hands their bytes to the peers.
fn drain(net: &mut Net) -> Vec<Output> {
    let now = net.at();
    let mut outputs = Vec::new();
    while let Some(o) = net.server.poll_output() {
        for (conn, bytes) in o.sends() {
            net.peers
                .get_mut(&conn)
                .expect("a peer")
                .receive(bytes, now);
        }
        outputs.push(o);
    }
    outputs
}

fn sends_to(outputs: &[Output], to: ConnId) -> Vec<usize> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn, bytes } if *conn == to => Some(bytes.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_of_posts_reaches_an_encrypted_user_as_one_record_in_order() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let leia = net.login_tls(REMOTE, "leia", "alderaan");
    let yoda = net.login_tls(REMOTE, "yoda", "jedi");
    net.take(leia);
    let posts: String = (0..20).map(|i| format!("MSG post {i}\n")).collect();
    feed(&mut net, yoda, &posts);
    let outputs = drain(&mut net);
    assert_eq!(sends_to(&outputs, leia).len(), 1, "20 posts, one record");
    let text = net.take(leia);
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(" yoda no ").nth(1))
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("post {i}")).collect();
    assert_eq!(order, expected);
    net.step();
    assert_eq!(net.say(leia, "MSG still fine").lines().count(), 1);
}

#[test]
fn staged_fan_out_goes_out_before_a_reply_sealed_later_in_the_batch() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let leia = net.login_tls(REMOTE, "leia", "alderaan");
    let yoda = net.login_tls(REMOTE, "yoda", "jedi");
    net.take(leia);
    // One batch: yoda's post is staged for leia, then leia's own request is answered.
    feed(&mut net, yoda, "MSG first\n");
    feed(&mut net, leia, "MSG second\n");
    drain(&mut net);
    net.step();
    let text = net.take(leia);
    let post = text.find(" yoda no first").expect("the post");
    let reply = text.find("250 Message #2").expect("the reply");
    assert!(post < reply, "{text}");
}

#[test]
fn staged_fan_out_is_sealed_a_record_at_a_time_and_goes_out_before_a_close() {
    let id = identity();
    let mut net = Net::new(config(&id));
    let leia = net.login_tls(REMOTE, "leia", "alderaan");
    let yoda = net.login_tls(REMOTE, "yoda", "jedi");
    net.take(leia);
    // 10 posts of 7,000 bytes: 70 kB of fan-out in one batch, more than four records' worth.
    let big = "x".repeat(7000);
    let posts: String = (0..10).map(|i| format!("MSG {i}{big}\n")).collect();
    feed(&mut net, yoda, &posts);
    feed(&mut net, leia, "OUT\n");
    let outputs = drain(&mut net);
    let sends = sends_to(&outputs, leia);
    assert!(sends.len() >= 4, "{sends:?}");
    for len in &sends {
        // A record's worth plus the line that crossed the mark, plus TLS overhead.
        assert!(*len <= super::link::MAX_STAGED + 8192 + 256, "{sends:?}");
    }
    net.step();
    let text = net.take(leia);
    assert_eq!(text.matches(&big).count(), 10, "every post arrived");
    assert!(
        text.ends_with("221 Goodbye, leia!\n"),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(
        net.peer(leia)
            .events
            .iter()
            .any(|e| matches!(e, TlsEvent::PeerClosed { .. })),
        "close_notify came last, after everything"
    );
}
