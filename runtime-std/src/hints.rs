//! What to tell a person about an operating-system error: the error once, in words, and what
//! to try next.
//!
//! `std::io::Error` shows as `Connection refused (os error 111)`; an error that wraps it and
//! also names it as its source would print it twice through an error chain. The wrappers in
//! this crate show [`connect`], [`listen`] or [`plain`] and keep the `io::Error` as a field
//! (not as a source, which would say it again) for programs that want its kind.

use std::io::{self, ErrorKind};

/// Why connecting to the server at `addr` failed, and what to do about it.
pub fn connect(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => {
            "connection refused — is the server running? start it with `huddle server`".into()
        }
        ErrorKind::TimedOut => {
            "no answer (timed out) — is the address right, and does a firewall let it through?"
                .into()
        }
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            format!("{} — check the server address", plain(e))
        }
        ErrorKind::AddrNotAvailable => {
            "the address is not available — check the server address".into()
        }
        _ => plain(e),
    }
}

/// Why listening on `addr` failed, and what to do about it.
pub fn listen(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => "the port is already in use — is another server running? choose another port with `huddle server PORT`".into(),
        ErrorKind::AddrNotAvailable => {
            "the address is not one of this machine's — check `--bind`".into()
        }
        ErrorKind::PermissionDenied => {
            "permission denied — ports below 1024 need privileges; choose a higher one".into()
        }
        _ => plain(e),
    }
}

/// The error in lower case without its `(os error N)` suffix: the words are what a person
/// reads.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_says_so_once_and_how_to_start_a_server() {
        let e = io::Error::from_raw_os_error(111);
        let text = connect(&e);
        assert_eq!(
            text,
            "connection refused — is the server running? start it with `huddle server`"
        );
        assert!(!text.contains("os error"));
    }

    #[test]
    fn other_errors_keep_their_words_without_the_os_number() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(plain(&e), "permission denied");
        let e = io::Error::other("Something odd");
        assert_eq!(connect(&e), "something odd");
        assert!(listen(&io::Error::from_raw_os_error(98)).contains("already in use"));
    }
}
