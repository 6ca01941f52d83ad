//! TLS handshakes over simulated TCP (turmoil), driven the way a runtime will drive them:
//! read the socket, feed the session with the simulated `now`, drain its outputs, write.
//!
//! A client connects to the server three times — pinned on first use, then accepted by its
//! pin — and a fourth time after the server's certificate was replaced: refused. Every byte
//! each side wrote, and every verdict, must be identical in two runs with one seed (the
//! sessions' randomness comes from the simulation seed, never the OS); another seed must give
//! other bytes, or the comparison would prove nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use huddle_core::tls::session::Side;
use huddle_core::tls::{
    Basis, ClientTls, HostPort, KnownHosts, Refusal, ServerIdentity, ServerTls, Session, TlsError,
    TlsEvent, TlsLimits,
};
use huddle_sim_tests::clock;
use huddle_sim_tests::rng::Rng;
use huddle_sim_tests::sim::{self, SeedGuard};
use huddle_sim_tests::tls::{CERT_A, CERT_B, KEY_A, KEY_B};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 4000;

/// What a run showed: each connection's bytes both ways and the client's verdicts.
type Transcript = Rc<RefCell<Vec<String>>>;

fn seed32(rng: &mut Rng) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    seed
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write what the session has to send; record it.
async fn flush<S: Side>(
    session: &mut Session<S>,
    stream: &mut TcpStream,
    wire: &mut Vec<u8>,
) -> std::io::Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        wire.extend_from_slice(&bytes);
        stream.write_all(&bytes).await?;
    }
    Ok(())
}

/// Read once into the session; Ok(false) at end of file.
async fn pump<S: Side>(
    session: &mut Session<S>,
    stream: &mut TcpStream,
    plaintext: &mut Vec<u8>,
) -> Result<bool, TlsError> {
    let mut buf = [0u8; 2048];
    let n = stream.read(&mut buf).await.unwrap_or(0);
    if n == 0 {
        session.handle_eof(clock::now())?;
        return Ok(false);
    }
    session.handle_wire(&buf[..n], clock::now())?;
    while let Some(p) = session.poll_plaintext() {
        plaintext.extend_from_slice(&p);
    }
    Ok(true)
}

/// The server: echo each line back, over TLS, one connection at a time. `replaced` says
/// whether it now serves certificate B.
async fn server(seed: u64, replaced: Rc<Cell<bool>>, transcript: Transcript) -> turmoil::Result {
    let mut rng = Rng::new(seed, 1);
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    for conn in 0.. {
        let (mut stream, _) = listener.accept().await?;
        let (cert, key) = if replaced.get() {
            (CERT_B, KEY_B)
        } else {
            (CERT_A, KEY_A)
        };
        let identity = ServerIdentity::from_pem(cert.as_bytes(), key.as_bytes())?;
        let tls = ServerTls::new(&identity, TlsLimits::default())?;
        let mut session = tls.accept(seed32(&mut rng), clock::now())?;
        let (mut wire, mut got) = (Vec::new(), Vec::new());
        let outcome = loop {
            match pump(&mut session, &mut stream, &mut got).await {
                Ok(true) => {}
                Ok(false) => break "eof".to_string(),
                Err(e) => break format!("error: {e}"),
            }
            if let Some(end) = got.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = got.drain(..=end).collect();
                session.send(&line, clock::now())?;
            }
            flush(&mut session, &mut stream, &mut wire).await?;
        };
        let _ = flush(&mut session, &mut stream, &mut wire).await;
        transcript.borrow_mut().push(format!(
            "server conn {conn} wrote {} ended {outcome}",
            hex(&wire)
        ));
    }
    Ok(())
}

/// One client connection: TLS, say a line, wait for its echo, close. Returns the verdict.
async fn visit(
    round: u32,
    rng: &mut Rng,
    known: &KnownHosts,
    transcript: &Transcript,
) -> Result<(Basis, Option<String>), TlsError> {
    let mut stream = TcpStream::connect(("server", PORT)).await.expect("connect");
    let peer = stream.peer_addr().expect("peer");
    let mut session = ClientTls::pins_only(TlsLimits::default()).connect(
        &HostPort::from_addr(peer),
        peer.ip(),
        known,
        seed32(rng),
        clock::now(),
    )?;
    let (mut wire, mut got) = (Vec::new(), Vec::new());
    let line = format!("hello {round}\n");
    let mut verdict = None;
    let result = async {
        flush(&mut session, &mut stream, &mut wire)
            .await
            .expect("write");
        while !got.ends_with(line.as_bytes()) {
            if !pump(&mut session, &mut stream, &mut got).await? {
                break;
            }
            while let Some(event) = session.poll_event() {
                if let TlsEvent::ServerTrusted(t) = event {
                    verdict = Some(t);
                    session.send(line.as_bytes(), clock::now())?;
                }
            }
            flush(&mut session, &mut stream, &mut wire)
                .await
                .expect("write");
        }
        session.close();
        flush(&mut session, &mut stream, &mut wire)
            .await
            .expect("write");
        Ok::<(), TlsError>(())
    }
    .await;
    // A refused session still tells the server why (its alert).
    let _ = flush(&mut session, &mut stream, &mut wire).await;
    transcript.borrow_mut().push(format!(
        "client round {round} wrote {} got {:?} verdict {verdict:?} result {result:?}",
        hex(&wire),
        String::from_utf8_lossy(&got)
    ));
    result?;
    let trusted = verdict.expect("a verdict once the handshake finished");
    let pin = trusted
        .pin_to_record()
        .map(|p| huddle_core::tls::render_known_host(&p));
    Ok((trusted.basis, pin))
}

/// Run the scenario; return its transcript.
fn run(seed: u64) -> Vec<String> {
    let _guard = SeedGuard::new("tls_handshake", seed);
    let transcript: Transcript = Rc::default();
    let replaced = Rc::new(Cell::new(false));
    let mut sim = sim::builder(seed, Duration::from_secs(60)).build();
    {
        let (replaced, transcript) = (replaced.clone(), transcript.clone());
        sim.host("server", move || {
            server(seed, replaced.clone(), transcript.clone())
        });
    }
    let t = transcript.clone();
    sim.client("client", async move {
        let mut rng = Rng::new(seed, 2);
        let mut file = String::new();
        for round in 0..3 {
            let (known, _) = KnownHosts::parse("known_hosts", &file);
            let (basis, pin) = visit(round, &mut rng, &known, &t).await?;
            match round {
                0 => assert_eq!(basis, Basis::FirstUse),
                _ => assert_eq!(basis, Basis::Pinned { line: 1 }),
            }
            if let Some(pin) = pin {
                file.push_str(&pin);
            }
        }
        replaced.set(true);
        let (known, _) = KnownHosts::parse("known_hosts", &file);
        match visit(3, &mut rng, &known, &t).await {
            Err(TlsError::Refused(r)) => {
                assert!(
                    matches!(*r, Refusal::CertificateChanged { line: 1, .. }),
                    "{r:?}"
                );
            }
            other => panic!("a replaced certificate was not refused: {other:?}"),
        }
        // Give the server time to read the client's alert.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    });
    sim::run(&mut sim, "tls_handshake", seed);
    transcript.take()
}

#[test]
fn pinned_on_first_use_then_refused_when_replaced_and_replayed_byte_for_byte() {
    for seed in sim::seeds(41, 2, 20) {
        let first = run(seed);
        // Four client connections and four server connections were recorded.
        assert_eq!(first.iter().filter(|l| l.starts_with("client")).count(), 4);
        assert!(
            first.iter().any(|l| l.starts_with("server conn 3") && l.contains("error: the peer ended the TLS session with the alert AccessDenied during the handshake")),
            "the server saw the refusal: {first:#?}"
        );
        assert_eq!(first, run(seed), "seed {seed}: two runs differ");
        assert_ne!(
            first,
            run(seed + 1),
            "seed {seed}: another seed gave the same bytes"
        );
    }
}
