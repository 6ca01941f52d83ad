//! The simulated server's TLS identities: two fixed certificates, so that a run replays
//! byte for byte (a certificate made at run time would differ every time) and a test can
//! "replace" the server's certificate with the other one.

use huddle_core::tls::{ServerIdentity, ServerTls, TlsLimits};

/// Test-only certificates (self-signed Ed25519, made with rcgen); their keys guard nothing.
pub const CERT_A: &str = r"-----BEGIN CERTIFICATE-----
MIIBJzCB2qADAgECAhRx1ruJW3PJyWytsA7i3telhFVy2jAFBgMrZXAwIjEgMB4G
A1UEAwwXaHVkZGxlIHNpbXVsYXRlZCBzZXJ2ZXIwIBcNNzUwMTAxMDAwMDAwWhgP
NDA5NjAxMDEwMDAwMDBaMCIxIDAeBgNVBAMMF2h1ZGRsZSBzaW11bGF0ZWQgc2Vy
dmVyMCowBQYDK2VwAyEAvlGdGkfGKPJLrHjwrUW3dAqr/A3GoxgHwN57ZLYjEG+j
IDAeMBwGA1UdEQQVMBOCEWh1ZGRsZS1zaW0tc2VydmVyMAUGAytlcANBAPCueChJ
S5O3rClmmH0NrXUB6msutg9DpAvjFiVR3nruJFlnHxXucif9yDFxG4mexWriidEU
fq6whyX/idEA+w4=
-----END CERTIFICATE-----
";
pub const KEY_A: &str = r"-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEILDxrqZbXS7jZmKQS9+5l601DaoRtmBlXFKM3vuZKKCt
gSEAvlGdGkfGKPJLrHjwrUW3dAqr/A3GoxgHwN57ZLYjEG8=
-----END PRIVATE KEY-----
";
pub const CERT_B: &str = r"-----BEGIN CERTIFICATE-----
MIIBJzCB2qADAgECAhQt4cbxWJEmig66zsgssxiBY8C32TAFBgMrZXAwIjEgMB4G
A1UEAwwXaHVkZGxlIHNpbXVsYXRlZCBzZXJ2ZXIwIBcNNzUwMTAxMDAwMDAwWhgP
NDA5NjAxMDEwMDAwMDBaMCIxIDAeBgNVBAMMF2h1ZGRsZSBzaW11bGF0ZWQgc2Vy
dmVyMCowBQYDK2VwAyEAIEk/+j7NApqyXPnlUGucY50acwQzGagh7sFODR87YiOj
IDAeMBwGA1UdEQQVMBOCEWh1ZGRsZS1zaW0tc2VydmVyMAUGAytlcANBAPCDih4B
S1lMMWx2GeDYwTJTwcWf3FlatDIOZ/+bVPXb73Si8gKnRtIYc+vCmVrTfMvWhHoB
mqmpKnSsBOhL9AU=
-----END CERTIFICATE-----
";
pub const KEY_B: &str = r"-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEIK1mcLsoWKH5vtk5wn7QHUR2fwU5k1Gi2gnSoBa28dqI
gSEAIEk/+j7NApqyXPnlUGucY50acwQzGagh7sFODR87YiM=
-----END PRIVATE KEY-----
";

/// Which of the two identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cert {
    /// The one the server has by default.
    A,
    /// The one it is given when a test replaces its certificate.
    B,
}

/// The identity `cert`.
pub fn identity(cert: Cert) -> ServerIdentity {
    let (c, k) = match cert {
        Cert::A => (CERT_A, KEY_A),
        Cert::B => (CERT_B, KEY_B),
    };
    match ServerIdentity::from_pem(c.as_bytes(), k.as_bytes()) {
        Ok(id) => id,
        Err(e) => panic!("the built-in test certificate {cert:?} is broken: {e}"),
    }
}

/// A server TLS configuration presenting `cert`.
pub fn server_tls(cert: Cert) -> ServerTls {
    match ServerTls::new(&identity(cert), TlsLimits::default()) {
        Ok(tls) => tls,
        Err(e) => panic!("TLS setup of {cert:?} failed: {e}"),
    }
}
