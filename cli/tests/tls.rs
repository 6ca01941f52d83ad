//! Issue 11 over real loopback with the real binaries, on both runtimes: a login through
//! STARTTLS, trust on first use and a changed certificate refused, plaintext refused where it
//! must be, `nc`-style plaintext on loopback still working, given certificate files, and the
//! hostile cases a raw socket can play.
//!
//! Loopback is exempt from the certificate check (client) and from the plaintext rule
//! (server), so the tests that need a "remote" server or peer turn the exemption off with the
//! real options made for it: `huddle client --verify-loopback` (a tunnelled port) and
//! `huddle server --require-tls` (a server behind a local proxy). 127.0.0.2 stands in for a
//! second machine.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;

use common::{PATIENCE, RUNTIMES, ServerProc, data_dir, huddle};

/// Run a piped `huddle client` with `args` after `client`, feeding `script`; (exit code,
/// stdout and stderr).
fn client(args: &[&str], script: &[&str]) -> (i32, String) {
    let mut cmd = huddle();
    cmd.arg("client").args(args);
    common::run_piped(cmd, script)
}

/// The fingerprint the server printed at start.
fn printed_fingerprint(server: &ServerProc) -> String {
    let line = server.log.wait_for("TLS certificate ");
    line.split("fingerprint ")
        .nth(1)
        .expect("a fingerprint")
        .trim()
        .to_string()
}

const SESSION: &[&str] = &["yoda", "jedi*knight", "MSG over tls", "OUT"];

fn port_of(server: &ServerProc) -> String {
    server.addr.port().to_string()
}

#[test]
fn a_login_goes_through_starttls_and_the_client_says_how_it_trusts_the_server() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let fp = printed_fingerprint(&server);
        assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{rt}: {fp}");
        assert!(
            server
                .file("tls-cert.pem")
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        for &client_rt in RUNTIMES {
            let (code, out) = client(
                &["127.0.0.1", &port_of(&server), "0", "--runtime", client_rt],
                SESSION,
            );
            assert_eq!(code, 0, "{rt}/{client_rt}: {out}");
            assert!(out.contains("Message #"), "{out}");
            let trust = out.lines().next().unwrap_or("");
            assert_eq!(
                trust,
                format!(
                    "TLS: 127.0.0.1:{} is on loopback: the link is encrypted but any certificate is accepted ({fp})",
                    server.addr.port()
                ),
                "{rt}/{client_rt}: the one extra line, first"
            );
            // The rest is what a client in clear prints.
            assert_eq!(
                out.lines().nth(1),
                Some("Welcome to huddle. Please log in with your user name.")
            );
        }
        server.log.wait_for("yoda logged in from 127.0.0.1");
        assert!(server.log.text().contains(" over TLS "), "{rt}");
        assert!(
            server.log.text().contains("TLS established (TLS13_"),
            "{rt}"
        );
    }
}

#[test]
fn trust_on_first_use_then_a_changed_certificate_is_refused() {
    for &rt in RUNTIMES {
        let config = tempfile::tempdir().unwrap();
        let known = config.path().join("known_hosts");
        let known_arg = known.to_str().unwrap().to_string();
        let dir = data_dir();
        let server = ServerProc::start_at(rt, dir.path(), "127.0.0.2", 0, &[], |_| {});
        let port = port_of(&server);
        let fp = printed_fingerprint(&server);
        let args = [
            "127.0.0.2",
            port.as_str(),
            "0",
            "--runtime",
            rt,
            "--verify-loopback",
            "--known-hosts",
            known_arg.as_str(),
        ];
        let (code, out) = client(&args, SESSION);
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(
            out.contains(&format!(
                "TLS: 127.0.0.2:{port} is new: its certificate is pinned on first use, fingerprint {fp}."
            )),
            "{rt}: {out}"
        );
        let pins = std::fs::read_to_string(&known).unwrap();
        assert_eq!(pins, format!("127.0.0.2:{port} {fp}\n"), "{rt}");
        // Again: accepted by its pin, nothing more pinned.
        let (code, out) = client(&args, SESSION);
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(
            out.contains("matches the one pinned on first use (known_hosts line 1"),
            "{out}"
        );
        assert_eq!(std::fs::read_to_string(&known).unwrap(), pins);
        // A new server on the same address and port, with a fresh data folder: a new
        // certificate. Refused as ssh refuses a changed host key; nothing was sent.
        drop(server);
        let dir2 = data_dir();
        let port_n: u16 = port.parse().unwrap();
        let impostor = ServerProc::start_at(rt, dir2.path(), "127.0.0.2", port_n, &[], |_| {});
        let new_fp = printed_fingerprint(&impostor);
        assert_ne!(new_fp, fp);
        let (code, out) = client(&args, SESSION);
        assert_eq!(code, 8, "{rt}: refused with its own exit code: {out}");
        assert!(
            out.contains(&format!(
                "WARNING: THE CERTIFICATE OF 127.0.0.2:{port} HAS CHANGED!"
            )),
            "{rt}: {out}"
        );
        assert!(out.contains(&format!("Pinned:    {fp} (")), "{out}");
        assert!(out.contains(&format!("Presented: {new_fp}")), "{out}");
        assert!(out.contains("remove line 1 from"), "{out}");
        assert!(!out.contains("Username:"), "{rt}: it never asked: {out}");
        impostor.log.wait_for("TLS failed");
        assert!(!impostor.log.text().contains("logged in"), "{rt}");
        assert_eq!(
            std::fs::read_to_string(&known).unwrap(),
            pins,
            "the pin stays"
        );
    }
}

/// Read one reply (up to its `NNN ` line) from a raw connection.
fn reply(reader: &mut impl BufRead) -> String {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.starts_with("* ") {
            continue;
        }
        let last = line.as_bytes().get(3) == Some(&b' ');
        lines.push(line);
        if last {
            return lines.join("\n");
        }
    }
}

fn raw(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

#[test]
fn nc_style_plaintext_on_loopback_still_works() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let (mut r, mut w) = raw(server.addr);
        let greeting = reply(&mut r);
        assert_eq!(
            greeting,
            "331 Welcome to huddle. Please log in with your user name. (Send STARTTLS first to encrypt the connection.)",
            "{rt}"
        );
        w.write_all(b"yoda\r\n").unwrap();
        assert!(reply(&mut r).starts_with("332 "), "{rt}");
        w.write_all(b"jedi*knight\n").unwrap();
        assert!(
            reply(&mut r).starts_with("230-Welcome to huddle, yoda!"),
            "{rt}"
        );
        w.write_all(b"MSG in clear on loopback\n").unwrap();
        assert!(reply(&mut r).starts_with("250 Message #1"), "{rt}");
        w.write_all(b"STARTTLS\n").unwrap();
        assert!(reply(&mut r).starts_with("503 "), "{rt}: not after login");
        w.write_all(b"OUT\n").unwrap();
        assert!(reply(&mut r).starts_with("221 "), "{rt}");
        server.log.wait_for("yoda logged in from 127.0.0.1");
        assert!(server.log.text().contains(" in clear "), "{rt}");
    }
}

#[test]
fn plaintext_login_is_refused_where_tls_is_required_and_the_client_upgrades_anyway() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &["--require-tls"]);
        server
            .log
            .wait_for("logins in clear from nowhere (TLS only)");
        // nc: the user name in clear is refused, the connection stays for STARTTLS.
        let (mut r, mut w) = raw(server.addr);
        reply(&mut r);
        w.write_all(b"yoda\n").unwrap();
        let refusal = reply(&mut r);
        assert!(
            refusal.starts_with("530 This server accepts user names and passwords from 127.0.0.1 only over TLS: send STARTTLS first"),
            "{rt}: {refusal}"
        );
        w.write_all(b"STARTTLS\n").unwrap();
        assert_eq!(reply(&mut r), "220 Ready to start TLS", "{rt}");
        drop(w);
        // A client told to stay in clear stops at the refusal; its password never follows.
        let (code, out) = client(
            &[
                "127.0.0.1",
                &port_of(&server),
                "0",
                "--runtime",
                rt,
                "--insecure",
            ],
            SESSION,
        );
        assert_eq!(code, 3, "{rt}: {out}");
        assert!(out.contains("only over TLS"), "{out}");
        // The default client upgrades and logs in.
        let (code, out) = client(
            &["127.0.0.1", &port_of(&server), "0", "--runtime", rt],
            SESSION,
        );
        assert_eq!(code, 0, "{rt}: {out}");
        let log = server.log.text();
        assert!(log.contains("refused a user name sent in clear"), "{rt}");
        assert_eq!(log.matches("yoda logged in").count(), 1, "{rt}: {log}");
    }
}

/// A server that offers no TLS and records everything it receives: it notes a UDP port
/// declaration and hangs up on the first other line.
fn clear_only_server() -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.2:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(b"331 Welcome to an old huddle. Please log in with your user name.\n")
            .unwrap();
        let mut got = Vec::new();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return got,
                Ok(_) => {}
            }
            got.extend_from_slice(&line);
            if line.starts_with(b"UDP ") {
                s.write_all(b"200 UDP port noted\n").unwrap();
            } else {
                return got;
            }
        }
    });
    (addr, handle)
}

#[test]
fn the_client_sends_no_password_in_clear_to_a_server_without_tls_off_loopback() {
    for &rt in RUNTIMES {
        let (addr, server) = clear_only_server();
        let port = addr.port().to_string();
        let config = tempfile::tempdir().unwrap();
        let known = config.path().join("kh");
        let (code, out) = client(
            &[
                "127.0.0.2",
                &port,
                "0",
                "--runtime",
                rt,
                "--verify-loopback",
                "--known-hosts",
                known.to_str().unwrap(),
            ],
            SESSION,
        );
        assert_eq!(code, 8, "{rt}: {out}");
        assert!(out.contains("does not offer TLS"), "{out}");
        assert!(
            out.contains("refusing to send a user name and password in clear"),
            "{out}"
        );
        let received = server.join().unwrap();
        assert!(
            received.is_empty(),
            "{rt}: it sent {:?}",
            String::from_utf8_lossy(&received)
        );
        // On loopback (the exemption on) the same server gets a login in clear, and the
        // client says so.
        let (addr, server) = clear_only_server();
        let (code, out) = client(
            &["127.0.0.2", &addr.port().to_string(), "0", "--runtime", rt],
            &["yoda"],
        );
        assert_ne!(code, 0);
        assert!(
            out.contains(
                "does not offer TLS; it is on loopback, so the connection goes on in clear"
            ),
            "{rt}: {out}"
        );
        let received = server.join().unwrap();
        assert!(String::from_utf8_lossy(&received).contains("yoda"), "{rt}");
    }
}

fn copy_pair(from: &Path, to: &Path) -> (String, String) {
    let cert = to.join("given-cert.pem");
    let key = to.join("given-key.pem");
    std::fs::copy(from.join("tls-cert.pem"), &cert).unwrap();
    std::fs::copy(from.join("tls-key.pem"), &key).unwrap();
    (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    )
}

#[test]
fn given_certificate_files_are_served_and_bad_ones_stop_the_server_with_a_clear_error() {
    let first = data_dir();
    let fp = {
        let server = ServerProc::start("smol", first.path(), &[]);
        printed_fingerprint(&server)
    };
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = copy_pair(first.path(), files.path());
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &["--tls-cert", &cert, "--tls-key", &key]);
        let line = server.log.wait_for("TLS certificate ");
        assert!(line.contains("(given)"), "{rt}: {line}");
        assert_eq!(printed_fingerprint(&server), fp, "{rt}");
        assert!(!dir.path().join("tls-cert.pem").exists(), "none created");
        let (code, out) = client(
            &["127.0.0.1", &port_of(&server), "0", "--runtime", rt],
            SESSION,
        );
        assert_eq!(code, 0, "{rt}: {out}");
        assert!(out.contains(&fp), "{out}");
    }
    // Swapped files: the server does not start, and says what is wrong.
    let dir = data_dir();
    let out = huddle()
        .args(["server", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(dir.path())
        .args(["--tls-cert", &key, "--tls-key", &cert])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("are the certificate and the key swapped?"),
        "{err}"
    );
    // One without the other is a usage error.
    let out = huddle()
        .args(["server", "0", "--tls-cert", &cert])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hostile_bytes_around_starttls_close_only_their_connection() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        // A client that stays logged in throughout.
        let (mut lr, mut lw) = raw(server.addr);
        reply(&mut lr);
        lw.write_all(b"luke\nr2d2\n").unwrap();
        reply(&mut lr);
        assert!(reply(&mut lr).starts_with("230-"), "{rt}");
        // Plaintext pipelined behind STARTTLS: refused as an injection.
        let (mut r, mut w) = raw(server.addr);
        reply(&mut r);
        w.write_all(b"STARTTLS\nMSG injected\n").unwrap();
        assert!(reply(&mut r).starts_with("421 "), "{rt}");
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        // Garbage where the TLS handshake should be.
        for garbage in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0],
        ] {
            let (mut r, mut w) = raw(server.addr);
            reply(&mut r);
            w.write_all(b"STARTTLS\n").unwrap();
            assert_eq!(reply(&mut r), "220 Ready to start TLS");
            w.write_all(garbage).unwrap();
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            assert!(!String::from_utf8_lossy(&rest).contains("331"), "{rt}");
        }
        // A flood of connections that ask for TLS and stall: luke is still answered.
        let stalled: Vec<_> = (0..50)
            .map(|_| {
                let (mut r, mut w) = raw(server.addr);
                reply(&mut r);
                w.write_all(b"STARTTLS\n").unwrap();
                reply(&mut r);
                w.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00]).unwrap();
                (r, w)
            })
            .collect();
        lw.write_all(b"MSG still served\n").unwrap();
        assert!(reply(&mut lr).starts_with("250 "), "{rt}");
        drop(stalled);
        server
            .log
            .wait_for("came after STARTTLS before the server's answer");
        server.log.wait_for("TLS failed");
    }
}
