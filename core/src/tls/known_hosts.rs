//! The client's known-hosts file: which certificate each server it has met presented.
//!
//! One record a line, `host:port fingerprint`, written when a server is met for the first time
//! (trust on first use) and read at every later connection:
//!
//! ```text
//! # huddle known hosts: remove a line to forget that server's certificate
//! 203.0.113.5:4000 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
//! [2001:db8::1]:4000 SHA256:…
//! chat.example.org:4000 SHA256:…
//! ```
//!
//! `host` is an IPv4 address, an IPv6 address in brackets, or a DNS name (kept in lower case);
//! `#` starts a comment line; blank lines are ignored. The file is edited by people (to forget a
//! server) and appended to by the client, so a line that does not parse is reported with its
//! number and skipped — never a panic, never a reason to refuse the rest of the file. A server
//! may have several lines (a certificate that was rotated on purpose and re-pinned); any of
//! them matches. Parse and render only: the runtime reads and appends the file.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nom::{
    IResult, Parser,
    bytes::complete::{take_while_m_n, take_while1},
    character::complete::{char, space1},
    combinator::{all_consuming, map_res, rest},
    sequence::delimited,
};
use rustls_pki_types::{DnsName, ServerName};

use super::fingerprint::Fingerprint;

/// The name warnings about the file carry.
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";

/// A line of the known-hosts file that could not be read; it is skipped (the client's own
/// file, not a server data file: a bad line costs a pin, never an account or a post).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsWarning {
    /// Which file (always [`KNOWN_HOSTS_FILE`]).
    pub file: &'static str,
    /// One-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for KnownHostsWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.problem)
    }
}

/// Longest DNS name accepted (RFC 1035's limit on a name's text form).
const MAX_DNS_NAME: usize = 253;

/// A server as the known-hosts file names it: its host (as the user gave it) and TCP port.
///
/// The port is part of the identity because two huddle servers on one machine have two
/// certificates, as ssh's `[host]:port` entries do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    host: Host,
    port: u16,
}

/// The host part: an address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Host {
    Ip(IpAddr),
    /// Validated as a DNS name and lower-cased, so `Chat.Example.org` and `chat.example.org`
    /// are one server.
    Name(String),
}

/// Why a text is not a `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// Not an IP address and not a valid DNS name.
    #[error("{0:?} is neither an IP address nor a valid host name")]
    BadHost(String),
    /// Port 0 cannot be connected to.
    #[error("port 0 is not a server port")]
    ZeroPort,
    /// Not `host:port` or `[v6]:port`.
    #[error("expected host:port (an IPv6 address in brackets: [::1]:4000)")]
    Malformed,
}

impl HostPort {
    /// A server named by `host` (an IP address, an IPv6 address with or without brackets, or a
    /// DNS name) and `port`.
    pub fn new(host: &str, port: u16) -> Result<Self, HostPortError> {
        if port == 0 {
            return Err(HostPortError::ZeroPort);
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = if let Ok(ip) = bare.parse::<IpAddr>() {
            Host::Ip(ip)
        } else if bare.len() <= MAX_DNS_NAME && DnsName::try_from(bare).is_ok() && !bare.is_empty()
        {
            Host::Name(bare.to_ascii_lowercase())
        } else {
            return Err(HostPortError::BadHost(host.to_owned()));
        };
        Ok(Self { host, port })
    }

    /// The server at a socket address.
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name TLS checks the certificate against (an IP address or a DNS name).
    pub fn server_name(&self) -> ServerName<'static> {
        match &self.host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(name) => match DnsName::try_from(name.clone()) {
                Ok(dns) => ServerName::DnsName(dns),
                // Validated by `new`; an address is the safe reading should that ever change.
                Err(_) => ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into()),
            },
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// One pin: the certificate this server presented when it was first met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// The server.
    pub server: HostPort,
    /// Its certificate's fingerprint.
    pub fingerprint: Fingerprint,
}

/// One line of the file, with its `\n`.
pub fn render_known_host(entry: &KnownHost) -> String {
    format!("{} {}\n", entry.server, entry.fingerprint)
}

fn port(i: &str) -> IResult<&str, u16> {
    map_res(
        take_while_m_n(1, 5, |c: char| c.is_ascii_digit()),
        |d: &str| d.parse::<u16>(),
    )
    .parse(i)
}

fn bracketed_v6(i: &str) -> IResult<&str, IpAddr> {
    map_res(
        delimited(
            char('['),
            take_while1(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '.'),
            char(']'),
        ),
        |s: &str| s.parse::<Ipv6Addr>().map(IpAddr::V6),
    )
    .parse(i)
}

fn host_port(i: &str) -> IResult<&str, Result<HostPort, HostPortError>> {
    if let Ok((i, (ip, _, port))) = (bracketed_v6, char(':'), port).parse(i) {
        return Ok((i, HostPort::new(&ip.to_string(), port)));
    }
    let (i, (host, _, port)) = (
        take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
        char(':'),
        port,
    )
        .parse(i)?;
    Ok((i, HostPort::new(host, port)))
}

/// Parse one record line (no `\n`).
fn parse_line(line: &str) -> Result<KnownHost, String> {
    let parsed: IResult<&str, _> = all_consuming((host_port, space1, rest)).parse(line);
    let Ok((_, (server, _, fingerprint))) = parsed else {
        return Err("expected `host:port SHA256:…`".into());
    };
    let server = server.map_err(|e| e.to_string())?;
    let fingerprint = fingerprint
        .trim_end()
        .parse::<Fingerprint>()
        .map_err(|e| e.to_string())?;
    Ok(KnownHost {
        server,
        fingerprint,
    })
}

/// Parse the file: every record with its one-based line number; bad lines are reported in
/// `warnings` and skipped.
pub fn parse_known_hosts(
    text: &str,
    warnings: &mut Vec<KnownHostsWarning>,
) -> Vec<(usize, KnownHost)> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(entry) => out.push((i + 1, entry)),
            Err(problem) => warnings.push(KnownHostsWarning {
                file: KNOWN_HOSTS_FILE,
                line: i + 1,
                problem,
            }),
        }
    }
    out
}

/// The known-hosts file as the client knows it: its records with their line numbers, and
/// where a new record goes.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    /// Where the file is, for messages that tell the user which line to remove.
    origin: String,
    entries: Vec<(usize, KnownHost)>,
    /// Lines the text has (a last line without `\n` counts).
    lines: usize,
    /// Whether the text is empty or ends with `\n` (else an append must start a new line).
    ends_with_newline: bool,
}

impl KnownHosts {
    /// Parse the file's text; `origin` names it in messages (its path). A missing file is the
    /// empty text. Returns the records and the warnings about lines that were skipped.
    pub fn parse(origin: impl Into<String>, text: &str) -> (Self, Vec<KnownHostsWarning>) {
        let mut warnings = Vec::new();
        let entries = parse_known_hosts(text, &mut warnings);
        let ends_with_newline = text.is_empty() || text.ends_with('\n');
        let lines = text.matches('\n').count() + usize::from(!ends_with_newline);
        let hosts = Self {
            origin: origin.into(),
            entries,
            lines,
            ends_with_newline,
        };
        (hosts, warnings)
    }

    /// Where the file is, as handed to [`KnownHosts::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pins of one server, with their line numbers, in file order.
    pub fn pins_for<'a>(
        &'a self,
        server: &'a HostPort,
    ) -> impl Iterator<Item = (usize, Fingerprint)> + 'a {
        self.entries
            .iter()
            .filter(move |(_, e)| &e.server == server)
            .map(|(line, e)| (*line, e.fingerprint))
    }

    /// Every record with its line number.
    pub fn entries(&self) -> &[(usize, KnownHost)] {
        &self.entries
    }

    /// Record a new pin and return the exact text to append to the file (a `\n` first if the
    /// file's last line was not finished) and the line number it will have.
    pub fn pin(&mut self, entry: KnownHost) -> (String, usize) {
        let mut text = String::new();
        if !self.ends_with_newline {
            text.push('\n');
        }
        text.push_str(&render_known_host(&entry));
        let line = self.lines + 1;
        self.lines = line;
        self.ends_with_newline = true;
        self.entries.push((line, entry));
        (text, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::from_digest([n; 32])
    }

    #[test]
    fn reads_addresses_names_and_ipv6_skipping_comments_and_blank_lines() {
        let text = format!(
            "# pins\n\n203.0.113.5:4000 {}\r\n[2001:db8::1]:4001 {}\nChat.Example.org:4000   {}",
            fp(1),
            fp(2),
            fp(3)
        );
        let mut w = Vec::new();
        let got = parse_known_hosts(&text, &mut w);
        assert!(w.is_empty(), "{w:?}");
        let lines: Vec<_> = got
            .iter()
            .map(|(l, e)| (*l, e.server.to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, "203.0.113.5:4000".to_string()),
                (4, "[2001:db8::1]:4001".to_string()),
                (5, "chat.example.org:4000".to_string()),
            ]
        );
        assert_eq!(got[2].1.fingerprint, fp(3));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_the_rest_is_kept() {
        let text = format!(
            "nonsense\n1.2.3.4 {f}\n1.2.3.4:0 {f}\n1.2.3.4:99999 {f}\n1.2.3.4:4000 SHA256:short\n\
             bad_name!:4000 {f}\n[::1]:4000 {f}\n",
            f = fp(9)
        );
        let mut w = Vec::new();
        let got = parse_known_hosts(&text, &mut w);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 7);
        let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
        assert!(w.iter().all(|w| w.file == KNOWN_HOSTS_FILE));
        assert!(w[4].problem.contains("SHA256:"), "{}", w[4].problem);
    }

    #[test]
    fn a_pin_is_appended_on_a_line_of_its_own_even_after_an_unfinished_last_line() {
        let (mut hosts, _) = KnownHosts::parse("kh", &format!("1.2.3.4:1 {}", fp(1)));
        let server = HostPort::new("5.6.7.8", 2).unwrap();
        let (text, line) = hosts.pin(KnownHost {
            server: server.clone(),
            fingerprint: fp(2),
        });
        assert_eq!(text, format!("\n5.6.7.8:2 {}\n", fp(2)));
        assert_eq!(line, 2);
        assert_eq!(hosts.pins_for(&server).collect::<Vec<_>>(), [(2, fp(2))]);
        // What the file now holds parses to the same records.
        let whole = format!("1.2.3.4:1 {}{text}", fp(1));
        let (again, w) = KnownHosts::parse("kh", &whole);
        assert!(w.is_empty());
        assert_eq!(again.entries(), hosts.entries());

        let (mut empty, _) = KnownHosts::parse("kh", "");
        let (text, line) = empty.pin(KnownHost {
            server,
            fingerprint: fp(3),
        });
        assert!(!text.starts_with('\n'));
        assert_eq!(line, 1);
    }

    #[test]
    fn host_names_are_case_insensitive_and_ipv6_needs_no_brackets_when_given() {
        assert_eq!(
            HostPort::new("CHAT.example.ORG", 4000),
            HostPort::new("chat.example.org", 4000)
        );
        assert_eq!(HostPort::new("::1", 4000), HostPort::new("[::1]", 4000));
        assert_eq!(
            HostPort::new("::1", 4000).unwrap().to_string(),
            "[::1]:4000"
        );
        assert!(matches!(
            HostPort::new("no spaces", 1),
            Err(HostPortError::BadHost(_))
        ));
        assert_eq!(HostPort::new("x", 0), Err(HostPortError::ZeroPort));
    }

    fn any_host_port() -> impl Strategy<Value = HostPort> {
        prop_oneof![
            (any::<[u8; 4]>(), 1..=u16::MAX)
                .prop_map(|(ip, port)| HostPort::from_addr(SocketAddr::from((ip, port)))),
            (any::<[u16; 8]>(), 1..=u16::MAX)
                .prop_map(|(ip, port)| HostPort::from_addr(SocketAddr::from((ip, port)))),
            (
                "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z][a-z0-9]{0,10}){0,3}",
                1..=u16::MAX
            )
                .prop_map(|(name, port)| HostPort::new(&name, port).unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(
            entries in proptest::collection::vec((any_host_port(), any::<[u8; 32]>()), 0..8)
        ) {
            let entries: Vec<KnownHost> = entries
                .into_iter()
                .map(|(server, d)| KnownHost { server, fingerprint: Fingerprint::from_digest(d) })
                .collect();
            let text: String = entries.iter().map(render_known_host).collect();
            let mut w = Vec::new();
            let got = parse_known_hosts(&text, &mut w);
            prop_assert!(w.is_empty(), "{:?}", w);
            let got: Vec<KnownHost> = got.into_iter().map(|(_, e)| e).collect();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let mut w = Vec::new();
            let got = parse_known_hosts(&text, &mut w);
            prop_assert!(got.len() + w.len() <= text.split('\n').count());
        }

        #[test]
        fn text_shaped_like_a_record_never_panics(s in "[\\[\\]0-9a-fA-F:.]{0,40}[ \t]{0,2}SHA256:[A-Za-z0-9+/=]{0,50}") {
            let mut w = Vec::new();
            let _ = parse_known_hosts(&s, &mut w);
        }
    }
}
