//! The limits of a TLS session: named, with a default and a reason.

/// Limits every TLS session (either side) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLimits {
    /// How long the handshake may take from the session's start, in milliseconds (10 s).
    ///
    /// A peer that asks for STARTTLS and then stalls would otherwise hold a connection and up
    /// to 64 KiB of handshake buffers forever. A handshake is one round trip and a few
    /// milliseconds of computation; 10 s covers a slow mobile link many times over.
    pub handshake_timeout_millis: u64,
    /// Most plaintext bytes [`send`](super::ServerSession::send) queues before the handshake
    /// has finished (16 KiB).
    ///
    /// Nothing in the text protocol is sent before the handshake ends, so this only bounds a
    /// caller that sends too early; it refuses with an error instead of growing without limit.
    /// After the handshake, plaintext is encrypted as it is sent and leaves through
    /// `poll_transmit`; bounding it there is the connection's output accounting's job.
    pub max_plaintext_before_handshake: usize,
}

impl Default for TlsLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_millis: 10_000,
            max_plaintext_before_handshake: 16 * 1024,
        }
    }
}

/// Bounds on the TLS files a runtime reads: the certificate, the key, the known-hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest certificate or key file read (1 MiB).
    ///
    /// A chain of a few certificates is a few KiB; a bigger file is the wrong file (a log, a
    /// disk image, `/dev/zero`) and is refused with an error rather than read into memory.
    pub max_pem_bytes: u64,
    /// Largest known-hosts file read (4 MiB: some 40,000 pins).
    ///
    /// It grows by one line per new server; anything near this size is not a known-hosts
    /// file, and reading it whole would cost its size in memory at every connection.
    pub max_known_hosts_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_pem_bytes: 1 << 20,
            max_known_hosts_bytes: 4 << 20,
        }
    }
}
