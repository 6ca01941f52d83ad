//! What can go wrong in a TLS session, in words a user can act on.

use super::trust::Refusal;

/// Why a TLS session failed. Once a session has failed, every later call returns the same
/// error; drain `poll_transmit` (it carries the alert that tells the peer why) and close the
/// connection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TlsError {
    /// The bytes that arrived are not TLS records.
    #[error(
        "the peer did not answer with TLS ({detail}): it may not support STARTTLS, or \
         something on the path altered the connection"
    )]
    NotTls {
        /// What rustls found.
        detail: String,
    },
    /// The handshake failed (no common cipher, a bad signature, a protocol violation).
    #[error("the TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// The established session broke (a record that does not decrypt, a protocol violation).
    #[error("the TLS connection broke: {0}")]
    Connection(rustls::Error),
    /// The peer ended the session with an alert.
    #[error(
        "the peer ended the TLS session with the alert {alert}{}",
        if *during_handshake { " during the handshake (it may have refused our certificate)" } else { "" }
    )]
    PeerAlert {
        /// The alert's name, e.g. `BadCertificate`.
        alert: String,
        /// Whether it came before the handshake finished.
        during_handshake: bool,
    },
    /// The client refused the server's certificate (client side only).
    #[error(transparent)]
    Refused(Box<Refusal>),
    /// The handshake did not finish in time.
    #[error("the TLS handshake did not finish within {} s", millis / 1000)]
    HandshakeTimedOut {
        /// The limit, in milliseconds.
        millis: u64,
    },
    /// The connection ended before the handshake finished.
    #[error("the connection closed during the TLS handshake")]
    ClosedDuringHandshake,
    /// Bytes arrived after the peer's `close_notify`.
    #[error("the peer sent data after it ended the TLS session")]
    DataAfterClose,
    /// `send` after `close`.
    #[error("the TLS session is closed: nothing more can be sent")]
    Closed,
    /// Too much plaintext sent before the handshake finished.
    #[error(
        "more than {limit} bytes queued before the TLS handshake finished; wait for the \
         handshake before sending"
    )]
    QueueFull {
        /// The limit, [`TlsLimits::max_plaintext_before_handshake`](super::TlsLimits).
        limit: usize,
    },
    /// A root certificate given to the client cannot be used.
    #[error("a trusted root certificate cannot be used: {0}")]
    BadRoot(String),
    /// rustls refused our configuration (a bug, or an unusable certificate).
    #[error("TLS could not be set up: {0}")]
    Setup(rustls::Error),
    /// Key material was asked for before the handshake finished.
    #[error("TLS keying material exists only once the handshake has finished")]
    NotEstablished,
}

impl From<Refusal> for TlsError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(Box::new(refusal))
    }
}
