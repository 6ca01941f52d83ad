//! Issue 11: the client core's side of `STARTTLS`, against the real server core in one
//! process, in virtual time: upgrade by default, trust on first use, a changed certificate
//! refused, loopback, servers without TLS, and never a password in clear off loopback.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::server::{
    DataFiles, HashMemory, Input as ServerInput, Output, PlaintextLogin, Server, ServerConfig,
};
use crate::store::DataFile;
use crate::tls::{
    ClientTls, HostPort, KnownHost, KnownHosts, ServerIdentity, ServerTls, TlsLimits,
    render_known_host,
};

const T0: u64 = 1_795_300_000_000;

fn identity() -> ServerIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    ServerIdentity::from_der(vec![cert.der().to_vec()], key.serialize_der()).unwrap()
}

fn server_config(id: Option<&ServerIdentity>) -> ServerConfig {
    ServerConfig {
        hash_memory_kib: 64,
        tls: id.map(|id| ServerTls::new(id, TlsLimits::default()).unwrap()),
        ..ServerConfig::default()
    }
}

fn users() -> DataFiles {
    let mut f = DataFiles::new();
    f.insert(DataFile::Credentials, "yoda jedi\nluke r2d2\n");
    f
}

fn tls_setup(server_ip: &str, known: &str, strict: bool) -> Security {
    let ip: IpAddr = server_ip.parse().unwrap();
    let mut tls = ClientTls::pins_only(TlsLimits::default());
    if strict {
        tls = tls.without_loopback_exemption();
    }
    let (known_hosts, _) = KnownHosts::parse("known_hosts", known);
    Security::Tls(Box::new(TlsSetup {
        tls,
        server: HostPort::from_addr(SocketAddr::new(ip, 4000)),
        server_ip: ip,
        known_hosts,
        seed: [9; 32],
    }))
}

/// A client core and a server core wired together; the user's lines come from a script.
struct Pair {
    server: Server,
    client: Client,
    conn: crate::server::ConnId,
    now: u64,
    script: VecDeque<String>,
    /// Every line the client showed.
    shown: Vec<String>,
    pins: Vec<KnownHost>,
    exit: Option<ExitStatus>,
    /// Every byte the client sent and received, as on the wire.
    client_wire: Vec<u8>,
    server_wire: Vec<u8>,
    server_log: Vec<String>,
    memory: HashMemory,
    server_closed: bool,
}

impl Pair {
    /// `peer`: the client's address as the server sees it.
    fn new(server: ServerConfig, security: Security, peer: &str, script: &[&str]) -> Self {
        let mut server = Server::new(server, &users(), UnixMillis(T0)).unwrap();
        let peer: SocketAddr = SocketAddr::new(peer.parse().unwrap(), 50_000);
        let conn = server.handle_connect(peer, UnixMillis(T0));
        let client = Client::new(
            ClientConfig {
                security,
                ..ClientConfig::default()
            },
            UnixMillis(T0),
        );
        let mut p = Pair {
            server,
            client,
            conn,
            now: T0,
            script: script.iter().map(|s| s.to_string()).collect(),
            shown: Vec::new(),
            pins: Vec::new(),
            exit: None,
            client_wire: Vec::new(),
            server_wire: Vec::new(),
            server_log: Vec::new(),
            memory: HashMemory::new(),
            server_closed: false,
        };
        p.run();
        p
    }

    fn at(&self) -> UnixMillis {
        UnixMillis(self.now)
    }

    /// Move everything until neither side has anything to do.
    fn run(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            let now = self.at();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    if conn == self.conn && self.exit.is_none() {
                        self.server_wire.extend_from_slice(bytes);
                        self.client
                            .handle_input(Input::ServerBytes(bytes.clone()), now);
                        self.server.handle_written(conn, bytes.len(), now);
                    }
                    moved = true;
                }
                match out {
                    Output::Close { .. } | Output::Cut { .. } if !self.server_closed => {
                        self.server_closed = true;
                        self.client.handle_input(Input::ServerClosed, now);
                        self.server.handle_disconnect(self.conn, now);
                        moved = true;
                    }
                    Output::Hash(job) => {
                        let done = job.run(&mut self.memory);
                        self.server.handle_input(ServerInput::Hashed(done), now);
                        moved = true;
                    }
                    Output::Log(l) => self.server_log.extend(l.lines().map(str::to_owned)),
                    _ => {}
                }
            }
            while let Some(out) = self.client.poll_output() {
                moved = true;
                match out {
                    ClientOutput::Send(bytes) => {
                        self.client_wire.extend_from_slice(&bytes);
                        if !self.server_closed {
                            self.server.handle_bytes(self.conn, &bytes, now);
                        }
                    }
                    ClientOutput::Show(d) => self.shown.push(d.text),
                    ClientOutput::Prompt(_) => {
                        let input = match self.script.pop_front() {
                            Some(line) => Input::UserLine(line),
                            None => Input::InputClosed,
                        };
                        self.client.handle_input(input, now);
                    }
                    ClientOutput::PinServer(pin) => self.pins.push(pin),
                    ClientOutput::Exit(status) => {
                        self.exit = Some(status);
                        if !self.server_closed {
                            self.server_closed = true;
                            self.server.handle_disconnect(self.conn, now);
                        }
                    }
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never settled");
    }

    fn shows(&self, needle: &str) -> bool {
        self.shown.iter().any(|l| l.contains(needle))
    }

    fn client_sent(&self, needle: &[u8]) -> bool {
        self.client_wire.windows(needle.len()).any(|w| w == needle)
    }
}

const SESSION: &[&str] = &["yoda", "jedi", "MSG over tls", "OUT"];

#[test]
fn the_client_upgrades_by_default_and_nothing_secret_crosses_in_clear() {
    let id = identity();
    let p = Pair::new(
        server_config(Some(&id)),
        tls_setup("203.0.113.1", "", false),
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(p.exit, Some(ExitStatus::LoggedOut), "{:#?}", p.shown);
    assert!(p.shows("Message #1 posted at"));
    // The one greeting shown is the one that came inside TLS.
    let greetings: Vec<&String> = p
        .shown
        .iter()
        .filter(|l| l.contains("Welcome to huddle."))
        .collect();
    assert_eq!(
        greetings,
        ["Welcome to huddle. Please log in with your user name."]
    );
    for secret in [&b"yoda"[..], b"jedi", b"over tls"] {
        assert!(
            !p.client_sent(secret),
            "{:?} went out in clear",
            String::from_utf8_lossy(secret)
        );
    }
    // In clear: only STARTTLS.
    assert!(p.client_wire.starts_with(b"STARTTLS\n"));
    assert!(
        p.server_log
            .iter()
            .any(|l| l.contains("yoda logged in from 203.0.113.9:50000 over TLS"))
    );
}

#[test]
fn trust_on_first_use_pins_then_accepts_then_a_changed_certificate_is_refused_before_anything_is_sent()
 {
    let id = identity();
    let first = Pair::new(
        server_config(Some(&id)),
        tls_setup("203.0.113.1", "", false),
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(first.exit, Some(ExitStatus::LoggedOut));
    assert_eq!(first.pins.len(), 1, "pinned on first use");
    assert!(first.shows("is new: its certificate is pinned on first use, fingerprint SHA256:"));
    let fp = id.fingerprint().to_string();
    assert!(first.shows(&fp), "the fingerprint the server prints: {fp}");
    // Filed under the server as the user named it.
    assert_eq!(first.pins[0].server.to_string(), "203.0.113.1:4000");
    assert_eq!(first.pins[0].fingerprint, id.fingerprint());
    let known = render_known_host(&first.pins[0]);

    let again = Pair::new(
        server_config(Some(&id)),
        tls_setup("203.0.113.1", &known, false),
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(again.exit, Some(ExitStatus::LoggedOut));
    assert!(again.pins.is_empty());
    assert!(again.shows("matches the one pinned on first use (known_hosts line 1"));

    let impostor = identity();
    let refused = Pair::new(
        server_config(Some(&impostor)),
        tls_setup("203.0.113.1", &known, false),
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(refused.exit, Some(ExitStatus::Untrusted));
    assert!(refused.shows("WARNING: THE CERTIFICATE OF 203.0.113.1:4000 HAS CHANGED!"));
    assert!(refused.shows(&format!("Pinned:    {fp}")));
    assert!(refused.shows(&format!("Presented: {}", impostor.fingerprint())));
    assert!(refused.pins.is_empty());
    assert!(!refused.client_sent(b"yoda"));
    assert!(refused.server_log.iter().any(|l| l.contains("TLS failed")));
}

#[test]
fn a_loopback_server_is_encrypted_whatever_its_certificate_and_the_client_says_so() {
    let pinned = render_known_host(&KnownHost {
        server: HostPort::from_addr("127.0.0.1:4000".parse().unwrap()),
        fingerprint: identity().fingerprint(),
    });
    let p = Pair::new(
        server_config(Some(&identity())),
        tls_setup("127.0.0.1", &pinned, false),
        "127.0.0.1",
        SESSION,
    );
    assert_eq!(p.exit, Some(ExitStatus::LoggedOut), "{:#?}", p.shown);
    assert!(p.shows("is on loopback: the link is encrypted but any certificate is accepted"));
    assert!(p.pins.is_empty());
    assert!(!p.client_sent(b"jedi"));
    // Without the exemption (a tunnelled port), the same loopback server is judged by its pin.
    let strict = Pair::new(
        server_config(Some(&identity())),
        tls_setup("127.0.0.1", &pinned, true),
        "127.0.0.1",
        SESSION,
    );
    assert_eq!(strict.exit, Some(ExitStatus::Untrusted));
    assert!(strict.shows("HAS CHANGED"));
}

#[test]
fn a_server_without_tls_off_loopback_gets_no_password_in_clear() {
    let p = Pair::new(
        ServerConfig {
            plaintext_login: PlaintextLogin::Anywhere,
            ..server_config(None)
        },
        tls_setup("203.0.113.1", "", false),
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(p.exit, Some(ExitStatus::Untrusted));
    assert!(p.shows("does not offer TLS"), "{:#?}", p.shown);
    assert!(p.shows("refusing to send a user name and password in clear"));
    assert!(p.client_wire.is_empty(), "nothing at all was sent");
    // On loopback the same server is spoken to in clear, and the client says so.
    let lo = Pair::new(
        server_config(None),
        tls_setup("127.0.0.1", "", false),
        "127.0.0.1",
        SESSION,
    );
    assert_eq!(lo.exit, Some(ExitStatus::LoggedOut));
    assert!(lo.shows("does not offer TLS; it is on loopback, so the connection goes on in clear"));
    // ... unless loopback is judged like any server.
    let strict = Pair::new(
        server_config(None),
        tls_setup("127.0.0.1", "", true),
        "127.0.0.1",
        SESSION,
    );
    assert_eq!(strict.exit, Some(ExitStatus::Untrusted));
    assert!(strict.client_wire.is_empty());
}

#[test]
fn insecure_speaks_in_clear_and_a_server_that_requires_tls_stops_it_at_the_user_name() {
    let id = identity();
    let ok = Pair::new(
        ServerConfig {
            plaintext_login: PlaintextLogin::Anywhere,
            ..server_config(Some(&id))
        },
        Security::Clear,
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(ok.exit, Some(ExitStatus::LoggedOut));
    assert!(ok.client_sent(b"jedi"), "in clear, as asked");
    let refused = Pair::new(
        server_config(Some(&id)),
        Security::Clear,
        "203.0.113.9",
        SESSION,
    );
    assert_eq!(refused.exit, Some(ExitStatus::LoginFailed));
    assert!(refused.shows("only over TLS"), "{:#?}", refused.shown);
    assert!(
        !refused.client_sent(b"jedi"),
        "the password line must not follow as another user name"
    );
}

/// A scripted server: answers each client line with canned bytes.
fn against_fake_server(
    answers: &[&[u8]],
    security: Security,
) -> (Vec<u8>, Vec<String>, Option<ExitStatus>) {
    let mut client = Client::new(
        ClientConfig {
            security,
            ..ClientConfig::default()
        },
        UnixMillis(T0),
    );
    let mut sent = Vec::new();
    let mut shown = Vec::new();
    let mut exit = None;
    let mut answers: VecDeque<&[u8]> = answers.iter().copied().collect();
    let mut next = answers.pop_front();
    while let Some(bytes) = next.take() {
        client.handle_input(
            Input::ServerBytes(Bytes::copy_from_slice(bytes)),
            UnixMillis(T0),
        );
        while let Some(out) = client.poll_output() {
            match out {
                ClientOutput::Send(b) => {
                    sent.extend_from_slice(&b);
                    next = answers.pop_front();
                }
                ClientOutput::Show(d) => shown.push(d.text),
                ClientOutput::Prompt(_) => {
                    client.handle_input(Input::UserLine("yoda".into()), UnixMillis(T0))
                }
                ClientOutput::Exit(s) => exit = Some(s),
                _ => {}
            }
        }
    }
    (sent, shown, exit)
}

const OFFER: &[u8] =
    b"331 Welcome to huddle. Please log in with your user name. (Send STARTTLS first to encrypt the connection.)\n";

#[test]
fn bytes_behind_the_servers_220_are_refused_as_an_injection() {
    let (sent, shown, exit) = against_fake_server(
        &[
            OFFER,
            b"220 Ready to start TLS\n230 you are logged in, trust me\n",
        ],
        tls_setup("203.0.113.1", "", false),
    );
    assert_eq!(sent, b"STARTTLS\n", "no ClientHello, nothing else");
    assert_eq!(exit, Some(ExitStatus::ProtocolError));
    assert!(
        shown
            .iter()
            .any(|l| l.contains("sent bytes after agreeing to start TLS")),
        "{shown:?}"
    );
}

#[test]
fn a_server_that_refuses_starttls_is_refused_in_turn_off_loopback() {
    let (sent, shown, exit) = against_fake_server(
        &[OFFER, b"502 not today\n"],
        tls_setup("203.0.113.1", "", false),
    );
    assert_eq!(sent, b"STARTTLS\n");
    assert_eq!(exit, Some(ExitStatus::Untrusted));
    assert!(
        shown
            .iter()
            .any(|l| l.contains("refused STARTTLS (not today)")),
        "{shown:?}"
    );
}

#[test]
fn a_server_that_speaks_no_tls_after_220_fails_the_handshake_and_nothing_secret_is_sent() {
    let (sent, shown, exit) = against_fake_server(
        &[
            OFFER,
            b"220 Ready to start TLS\n",
            b"332 Password for yoda:\n",
        ],
        tls_setup("203.0.113.1", "", false),
    );
    assert!(sent.starts_with(b"STARTTLS\n\x16\x03"), "a ClientHello");
    assert!(!sent.windows(4).any(|w| w == b"yoda"));
    assert_eq!(exit, Some(ExitStatus::Untrusted));
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("TLS failed: the peer did not answer with TLS")),
        "{shown:?}"
    );
}

#[test]
fn a_handshake_the_server_never_answers_ends_at_the_deadline() {
    let mut client = Client::new(
        ClientConfig {
            security: tls_setup("203.0.113.1", "", false),
            ..ClientConfig::default()
        },
        UnixMillis(T0),
    );
    client.handle_input(
        Input::ServerBytes(Bytes::from_static(OFFER)),
        UnixMillis(T0),
    );
    client.handle_input(
        Input::ServerBytes(Bytes::from_static(b"220 Ready to start TLS\n")),
        UnixMillis(T0),
    );
    while client.poll_output().is_some() {}
    let deadline = client.poll_timeout().expect("the handshake's deadline");
    assert_eq!(
        deadline,
        UnixMillis(T0 + TlsLimits::default().handshake_timeout_millis)
    );
    client.handle_input(Input::Timeout, deadline);
    let mut exit = None;
    while let Some(o) = client.poll_output() {
        if let ClientOutput::Exit(s) = o {
            exit = Some(s);
        }
    }
    assert_eq!(exit, Some(ExitStatus::Untrusted));
}
