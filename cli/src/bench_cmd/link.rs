//! A load generator's connection to the server: in clear, or upgraded with `STARTTLS` the
//! way `huddle client` does it (the core's TLS session, sealed and opened here).
//!
//! Writes are serialised (a TLS stream must go out in the order it was sealed); reads hand
//! back plaintext.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use huddle_core::proto::starttls::offers_starttls;
use huddle_core::tls::{ClientSession, ClientTls, HostPort, KnownHosts, TlsLimits};
use huddle_runtime_std::clock;
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// One connection.
pub struct Link {
    stream: Arc<Async<TcpStream>>,
    tls: Option<Mutex<ClientSession>>,
    writing: smol::lock::Mutex<()>,
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Link {
    /// Connect; with `tls`, upgrade with `STARTTLS` before returning. Returns the link and
    /// the plaintext read past the greeting.
    pub async fn connect(addr: SocketAddr, tls: bool) -> io::Result<(Self, Vec<u8>)> {
        let stream = Async::<TcpStream>::connect(addr).await?;
        stream.get_ref().set_nodelay(true)?;
        let stream = Arc::new(stream);
        let mut link = Link {
            stream,
            tls: None,
            writing: smol::lock::Mutex::new(()),
        };
        let (greeting, got) = link.read_line(Vec::new()).await?;
        if !greeting.starts_with("331 ") {
            return Err(tls_error(format!("not a huddle greeting: {greeting}")));
        }
        if !tls {
            return Ok((link, got));
        }
        if !offers_starttls(&greeting) {
            return Err(tls_error(format!(
                "the server does not offer STARTTLS (an older build?): {greeting}"
            )));
        }
        link.write(b"STARTTLS\n").await?;
        let (answer, got) = link.read_line(got).await?;
        if !answer.starts_with("220 ") {
            return Err(tls_error(format!("STARTTLS refused: {answer}")));
        }
        if !got.is_empty() {
            return Err(tls_error("bytes after the server's 220"));
        }
        let (known, _) = KnownHosts::parse("none", "");
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(tls_error)?;
        let session = ClientTls::pins_only(TlsLimits::default())
            .connect(
                &HostPort::from_addr(addr),
                addr.ip(),
                &known,
                seed,
                clock::now(),
            )
            .map_err(tls_error)?;
        link.tls = Some(Mutex::new(session));
        link.flush_tls().await?;
        // The greeting again, inside TLS.
        let got = link.read_until_line(Vec::new(), b"331 ").await?;
        Ok((link, got))
    }

    /// Read one whole line (in `buf` and what comes next); returns it without its ending, and
    /// what came after it.
    async fn read_line(&self, mut buf: Vec<u8>) -> io::Result<(String, Vec<u8>)> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let rest = buf.split_off(nl + 1);
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                return Ok((line, rest));
            }
            if !self.read_into(&mut chunk, &mut buf).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
        }
    }

    /// Read until a line that starts with `prefix` has come; returns what came after it.
    pub async fn read_until_line(&self, mut buf: Vec<u8>, prefix: &[u8]) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = find_line_starting(&buf, prefix) {
                return Ok(buf.split_off(end));
            }
            match self.read_into(&mut chunk, &mut buf).await? {
                true => {}
                false => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the server closed the connection: {}",
                            String::from_utf8_lossy(&buf).lines().last().unwrap_or("")
                        ),
                    ));
                }
            }
        }
    }

    /// Send `plaintext`, sealed on an upgraded link.
    pub async fn write(&self, plaintext: &[u8]) -> io::Result<()> {
        let _turn = self.writing.lock().await;
        let wire = match &self.tls {
            None => return (&*self.stream).write_all(plaintext).await,
            Some(session) => {
                let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
                s.send(plaintext, clock::now()).map_err(tls_error)?;
                drain_transmit(&mut s)
            }
        };
        (&*self.stream).write_all(&wire).await
    }

    /// Read once into `chunk` and append the plaintext to `out` (possibly nothing: part of a
    /// TLS record); false at the end of the stream.
    pub async fn read_into(&self, chunk: &mut [u8], out: &mut Vec<u8>) -> io::Result<bool> {
        let n = (&*self.stream).read(chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        let Some(session) = &self.tls else {
            out.extend_from_slice(&chunk[..n]);
            return Ok(true);
        };
        let reply = {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            s.handle_wire(&chunk[..n], clock::now())
                .map_err(tls_error)?;
            while s.poll_event().is_some() {}
            while let Some(p) = s.poll_plaintext() {
                out.extend_from_slice(&p);
            }
            drain_transmit(&mut s)
        };
        if !reply.is_empty() {
            let _turn = self.writing.lock().await;
            (&*self.stream).write_all(&reply).await?;
        }
        Ok(true)
    }

    async fn flush_tls(&self) -> io::Result<()> {
        let wire = match &self.tls {
            Some(session) => drain_transmit(&mut session.lock().unwrap_or_else(|p| p.into_inner())),
            None => return Ok(()),
        };
        let _turn = self.writing.lock().await;
        (&*self.stream).write_all(&wire).await
    }
}

fn drain_transmit(s: &mut ClientSession) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(b) = s.poll_transmit() {
        wire.extend_from_slice(&b);
    }
    wire
}

/// The offset just after the line that starts with `prefix`, if it is complete.
pub fn find_line_starting(buf: &[u8], prefix: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        if line.starts_with(prefix) {
            return Some(start + nl + 1);
        }
        start += nl + 1;
    }
    None
}
