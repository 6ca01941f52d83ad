//! The fingerprint of a certificate: what a person compares, what known hosts pin.
//!
//! One format everywhere — the server prints it at start, the client shows it on first use, the
//! known-hosts file stores it: `SHA256:` followed by the SHA-256 digest of the DER certificate in
//! unpadded standard base64 (43 characters), the way `ssh` shows host keys, so that it is short
//! enough to read over the phone and looks like what people already compare.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

/// Length of the digest in bytes.
const DIGEST_LEN: usize = 32;

/// The text every fingerprint starts with.
pub const FINGERPRINT_PREFIX: &str = "SHA256:";

/// SHA-256 of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; DIGEST_LEN]);

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// It does not start with `SHA256:`.
    #[error("a fingerprint starts with `SHA256:`")]
    MissingPrefix,
    /// The part after the prefix is not base64 of 32 bytes.
    #[error("a fingerprint is `SHA256:` and 43 base64 characters (a SHA-256 digest)")]
    BadDigest,
}

impl Fingerprint {
    /// The fingerprint of a certificate given as DER bytes.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; DIGEST_LEN];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// A fingerprint from its 32 digest bytes.
    pub fn from_digest(digest: [u8; DIGEST_LEN]) -> Self {
        Self(digest)
    }

    /// The 32 digest bytes.
    pub fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Parse `SHA256:` + base64; a trailing `=` (padding some tools add) is accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s
            .strip_prefix(FINGERPRINT_PREFIX)
            .ok_or(FingerprintError::MissingPrefix)?;
        let b64 = b64.strip_suffix('=').unwrap_or(b64);
        // 32 bytes are exactly 43 unpadded characters; checking first keeps the decoder from
        // working on a hostile megabyte.
        if b64.len() != 43 {
            return Err(FingerprintError::BadDigest);
        }
        let bytes = STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| FingerprintError::BadDigest)?;
        let digest: [u8; DIGEST_LEN] = bytes.try_into().map_err(|_| FingerprintError::BadDigest)?;
        Ok(Self(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn is_the_sha256_of_the_der_bytes_in_ssh_style_base64() {
        // SHA-256 of the empty input, a value anyone can check with `sha256sum`.
        let fp = Fingerprint::of_certificate(b"");
        assert_eq!(
            fp.to_string(),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        assert_eq!(format!("{fp}=").parse::<Fingerprint>(), Ok(fp));
    }

    #[test]
    fn malformed_fingerprints_are_refused_with_the_expected_shape() {
        for bad in [
            "",
            "SHA1:abc",
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
        ] {
            assert_eq!(
                bad.parse::<Fingerprint>(),
                Err(FingerprintError::MissingPrefix)
            );
        }
        for bad in [
            "SHA256:",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU47DE",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF!",
        ] {
            assert_eq!(bad.parse::<Fingerprint>(), Err(FingerprintError::BadDigest));
        }
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(digest in any::<[u8; 32]>()) {
            let fp = Fingerprint::from_digest(digest);
            prop_assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Fingerprint>();
        }
    }
}
