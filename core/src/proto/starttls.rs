//! The upgrade of the text link to TLS, as both sides speak it (RFC 3207's `STARTTLS`, the
//! way SMTP and XMPP upgrade a connection in place).
//!
//! 1. The server's greeting (`331`, one line as ever) ends with [`GREETING_OFFER`] when the
//!    server can do TLS: [`offers_starttls`] finds it.
//! 2. Before the user name, the client sends [`STARTTLS`]; the server answers
//!    `220 Ready to start TLS` in clear, and from the next byte on both sides speak TLS.
//!    Bytes the client sent after `STARTTLS` before that answer, and bytes after the `220`
//!    line in what the client reads, are refused: they would be plaintext an attacker
//!    injected into the encrypted session (CVE-2011-0411).
//! 3. Inside TLS the server greets again ([`GREETING`], without the offer), and the protocol
//!    goes on line for line as in clear.
//!
//! The greeting stays one `331 ` line so that every client and script that reads it as one
//! reply — `nc` users, the piped client — sees what it always saw, with the offer at its end.

/// The command that asks for the upgrade (case-insensitive).
pub const STARTTLS: &str = "STARTTLS";

/// The greeting's text inside TLS, or from a server that cannot do TLS.
pub const GREETING: &str = "Welcome to huddle. Please log in with your user name.";

/// What a server that can do TLS appends to [`GREETING`] in clear.
pub const GREETING_OFFER: &str = " (Send STARTTLS first to encrypt the connection.)";

/// Whether `line` (a request line, without its ending) is `STARTTLS`.
pub fn is_starttls(line: &[u8]) -> bool {
    line.eq_ignore_ascii_case(STARTTLS.as_bytes())
}

/// Whether a greeting's text offers the upgrade: the word `STARTTLS` in it.
pub fn offers_starttls(greeting: &str) -> bool {
    greeting
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == STARTTLS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_is_found_in_the_greeting_and_only_as_a_word() {
        assert!(offers_starttls(&format!("{GREETING}{GREETING_OFFER}")));
        assert!(!offers_starttls(GREETING));
        assert!(!offers_starttls("NOSTARTTLS here"));
        assert!(!offers_starttls("starttls"));
    }

    #[test]
    fn the_command_is_case_insensitive_and_whole() {
        assert!(is_starttls(b"STARTTLS"));
        assert!(is_starttls(b"StartTls"));
        assert!(!is_starttls(b"STARTTLS now"));
        assert!(!is_starttls(b""));
    }
}
