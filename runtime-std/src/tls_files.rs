//! The files TLS needs: the server's certificate and key, and the client's known-hosts file.
//!
//! Only reading, creating and appending happen here; what the bytes mean (PEM, pins, which
//! certificate is trusted) is decided in `huddle_core::tls`, which both runtimes share.
//!
//! - The server uses `--tls-cert`/`--tls-key` when given. Otherwise it keeps a self-signed
//!   Ed25519 certificate in its data folder (`tls-cert.pem`, `tls-key.pem`, the key readable
//!   by its owner only), created at first start and reused after, so clients that pinned it
//!   keep trusting the server across restarts.
//! - The client keeps its pins in `$XDG_CONFIG_HOME/huddle/known_hosts`, else
//!   `~/.config/huddle/known_hosts`, unless given another path.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use huddle_core::tls::KnownHostsWarning;
use huddle_core::tls::{
    FileLimits, Fingerprint, IdentityError, KnownHost, KnownHosts, ServerIdentity,
};

/// The certificate file the server creates in its data folder.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The key file the server creates in its data folder (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";
/// How long a created certificate is valid (10 years). Clients judge a self-signed
/// certificate by its pin, not its dates; the dates are for other tools that show them.
const CREATED_VALIDITY_DAYS: i64 = 3650;

/// What went wrong with a TLS file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is larger than any file of its kind should be.
    #[error("{path} is larger than {limit} bytes: is it the right file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit ([`FileLimits`]).
        limit: u64,
    },
    /// The certificate and key do not make a usable identity.
    #[error("{cert} and {key}: {source}")]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong with them.
        source: IdentityError,
    },
    /// Only one of the two files of the data folder exists: creating a new pair would
    /// replace a key or certificate someone may rely on.
    #[error(
        "{present} exists but {missing} does not: restore it, or remove {present} to have a \
         new certificate created (clients that pinned the old one will then refuse the server \
         until they remove its known-hosts line)"
    )]
    HalfPair {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// The certificate could not be generated.
    #[error("cannot create a self-signed certificate: {0}")]
    Generate(String),
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` says where the config folder is.
    #[error(
        "cannot find the config folder for the known-hosts file: set $HOME (or \
         $XDG_CONFIG_HOME), or give the file's path"
    )]
    NoConfigFolder,
}

/// Where the server's identity came from, for the line it prints at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOrigin {
    /// `--tls-cert`/`--tls-key`.
    Given,
    /// Created now in the data folder (first start).
    Created,
    /// Created at an earlier start and reused.
    Reused,
}

/// The server's loaded identity.
#[derive(Debug)]
pub struct LoadedIdentity {
    /// The certificate chain and key.
    pub identity: ServerIdentity,
    /// Where they came from.
    pub origin: IdentityOrigin,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The key file.
    pub key_path: PathBuf,
    /// Things the operator should fix that do not stop the server (a key others can read).
    pub warnings: Vec<String>,
}

impl LoadedIdentity {
    /// The certificate's fingerprint, for the server to print.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }
}

/// Load the server's identity: from `given` (`--tls-cert`, `--tls-key`) when set, else from
/// the data folder, creating a self-signed certificate there at first start.
pub fn load_or_create_identity(
    data_dir: &Path,
    given: Option<(&Path, &Path)>,
    limits: &FileLimits,
) -> Result<LoadedIdentity, TlsFilesError> {
    if let Some((cert, key)) = given {
        return load_identity(cert, key, IdentityOrigin::Given, limits);
    }
    let cert = data_dir.join(CERT_FILE);
    let key = data_dir.join(KEY_FILE);
    match (cert.exists(), key.exists()) {
        (true, true) => load_identity(&cert, &key, IdentityOrigin::Reused, limits),
        (false, false) => {
            create_self_signed(&cert, &key)?;
            load_identity(&cert, &key, IdentityOrigin::Created, limits)
        }
        (true, false) => Err(TlsFilesError::HalfPair {
            present: cert,
            missing: key,
        }),
        (false, true) => Err(TlsFilesError::HalfPair {
            present: key,
            missing: cert,
        }),
    }
}

fn load_identity(
    cert: &Path,
    key: &Path,
    origin: IdentityOrigin,
    limits: &FileLimits,
) -> Result<LoadedIdentity, TlsFilesError> {
    let cert_pem = read_bounded(cert, limits.max_pem_bytes)?;
    let key_pem = read_bounded(key, limits.max_pem_bytes)?;
    let identity = ServerIdentity::from_pem(&cert_pem, &key_pem).map_err(|source| {
        TlsFilesError::Identity {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        }
    })?;
    let mut warnings = Vec::new();
    if let Ok(meta) = fs::metadata(key) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{} can be read by other users (mode {mode:04o}): run `chmod 600` on it",
                key.display()
            ));
        }
    }
    Ok(LoadedIdentity {
        identity,
        origin,
        cert_path: cert.to_owned(),
        key_path: key.to_owned(),
        warnings,
    })
}

/// Read a whole file, refusing one larger than `limit` bytes without reading it all.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, TlsFilesError> {
    let read_err = |source| TlsFilesError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(TlsFilesError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// The names a created certificate is valid for: loopback, and this machine's host name.
fn certificate_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = host_name().filter(|h| h != "localhost") {
        names.push(host);
    }
    names
}

/// This machine's host name, if it has a usable one.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    // A name rcgen (and TLS) accepts: letters, digits, '-' and '.', not empty.
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some(name)
}

/// Create a self-signed Ed25519 certificate and its key: the key first, mode 0600, each
/// written to a temporary file, fsynced and renamed into place, so a crash leaves either
/// nothing or a whole file.
fn create_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsFilesError> {
    let generate = |e: rcgen::Error| TlsFilesError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(generate)?;
    let names = certificate_names();
    let mut params = rcgen::CertificateParams::new(names).map_err(generate)?;
    let host = host_name().unwrap_or_else(|| "localhost".to_owned());
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("huddle server on {host}"),
    );
    let today = time::OffsetDateTime::now_utc();
    params.not_before = today - time::Duration::days(1);
    params.not_after = today + time::Duration::days(CREATED_VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(generate)?;
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Write `bytes` to `path` through `path.tmp` (created with `mode`), fsync, rename, and fsync
/// the folder.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsFilesError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsFilesError::Write { path, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash mid-creation: never used, safe to replace.
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_err(&tmp))?;
    file.write_all(bytes).map_err(write_err(&tmp))?;
    file.sync_all().map_err(write_err(&tmp))?;
    fs::rename(&tmp, path).map_err(write_err(path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), TlsFilesError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TlsFilesError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Where the known-hosts file is: `given` when set, else in the config folder.
pub fn known_hosts_path(given: Option<&Path>) -> Result<PathBuf, TlsFilesError> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    config_folder(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
    .map(|dir| dir.join("huddle").join("known_hosts"))
    .ok_or(TlsFilesError::NoConfigFolder)
}

/// The XDG config folder: `$XDG_CONFIG_HOME` if it is an absolute path (the XDG spec says a
/// relative one is to be ignored), else `$HOME/.config`.
fn config_folder(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg_config_home).or_else(|| absolute(home).map(|h| h.join(".config")))
}

/// Read the known-hosts file (a missing file is an empty one). Lines that do not parse are
/// returned as warnings for the client to show; they are skipped, never fatal.
pub fn read_known_hosts(
    path: &Path,
    limits: &FileLimits,
) -> Result<(KnownHosts, Vec<KnownHostsWarning>), TlsFilesError> {
    let text = match read_bounded(path, limits.max_known_hosts_bytes) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(TlsFilesError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    Ok(KnownHosts::parse(path.display().to_string(), &text))
}

/// The client's known-hosts file: its pins as read at start, and where to append new ones.
#[derive(Debug)]
pub struct KnownHostsFile {
    path: PathBuf,
    known: KnownHosts,
}

impl KnownHostsFile {
    /// Read the file at `path` (a missing file has no pins); unreadable lines come back as
    /// warnings.
    pub fn open(
        path: &Path,
        limits: &FileLimits,
    ) -> Result<(Self, Vec<KnownHostsWarning>), TlsFilesError> {
        let (known, warnings) = read_known_hosts(path, limits)?;
        Ok((
            Self {
                path: path.to_owned(),
                known,
            },
            warnings,
        ))
    }

    /// The pins.
    pub fn known(&self) -> &KnownHosts {
        &self.known
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a first-use pin, durably; returns its line.
    pub fn append(&mut self, entry: KnownHost) -> Result<usize, TlsFilesError> {
        append_known_host(&self.path, &mut self.known, entry)
    }
}

/// Append a first-use pin to the known-hosts file (creating the file, and its folder with
/// mode 0700, if needed) and fsync it. Returns the line the pin is on.
pub fn append_known_host(
    path: &Path,
    known: &mut KnownHosts,
    entry: KnownHost,
) -> Result<usize, TlsFilesError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsFilesError::Write { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err(dir))?;
    }
    let (text, line) = known.pin(entry);
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err(path))?;
    file.write_all(text.as_bytes()).map_err(write_err(path))?;
    file.sync_all().map_err(write_err(path))?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_core::tls::{HostPort, KNOWN_HOSTS_FILE};

    fn limits() -> FileLimits {
        FileLimits::default()
    }

    #[test]
    fn a_certificate_is_created_once_in_the_data_folder_and_reused_after() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_identity(dir.path(), None, &limits()).unwrap();
        assert_eq!(first.origin, IdentityOrigin::Created);
        assert!(first.warnings.is_empty(), "{:?}", first.warnings);
        let key_mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let pem = fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        for again in 0..3 {
            let later = load_or_create_identity(dir.path(), None, &limits()).unwrap();
            assert_eq!(later.origin, IdentityOrigin::Reused, "start {again}");
            assert_eq!(later.fingerprint(), first.fingerprint());
        }
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn the_created_certificate_is_ed25519_and_names_loopback() {
        let names = certificate_names();
        assert!(names.iter().any(|n| n == "localhost"));
        assert!(names.iter().any(|n| n == "127.0.0.1"));
        assert!(names.iter().any(|n| n == "::1"));
        let dir = tempfile::tempdir().unwrap();
        load_or_create_identity(dir.path(), None, &limits()).unwrap();
        let key = fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        let parsed = rcgen::KeyPair::from_pem(&key).unwrap();
        assert!(parsed.is_compatible(&rcgen::PKCS_ED25519));
    }

    #[test]
    fn given_files_are_used_instead_of_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["chat.example.org".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = elsewhere.path().join("fullchain.pem");
        let key_path = elsewhere.path().join("privkey.pem");
        fs::write(&cert_path, cert.pem()).unwrap();
        fs::write(&key_path, key.serialize_pem()).unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        let loaded =
            load_or_create_identity(dir.path(), Some((&cert_path, &key_path)), &limits()).unwrap();
        assert_eq!(loaded.origin, IdentityOrigin::Given);
        assert_eq!(
            loaded.fingerprint(),
            Fingerprint::of_certificate(cert.der())
        );
        assert!(loaded.warnings.is_empty());
        // Nothing was created in the data folder.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // A key others can read is served, with a warning.
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        let loaded =
            load_or_create_identity(dir.path(), Some((&cert_path, &key_path)), &limits()).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("chmod 600"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_bad_pem_file_is_a_clear_error_naming_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        fs::write(
            &cert_path,
            "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        fs::write(&key_path, "not a key").unwrap();
        let e = load_or_create_identity(dir.path(), Some((&cert_path, &key_path)), &limits())
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TlsFilesError::Identity { .. }), "{e:?}");
        assert!(
            text.contains("cert.pem") && text.contains("not valid PEM"),
            "{text}"
        );

        let e = load_or_create_identity(
            dir.path(),
            Some((&dir.path().join("missing.pem"), &key_path)),
            &limits(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn an_oversized_file_is_refused_without_being_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        let small = FileLimits {
            max_pem_bytes: 1024,
            ..FileLimits::default()
        };
        fs::write(&big, vec![b'A'; 1025]).unwrap();
        let e = load_or_create_identity(dir.path(), Some((&big, &big)), &small).unwrap_err();
        assert!(
            matches!(e, TlsFilesError::TooLarge { limit: 1024, .. }),
            "{e:?}"
        );
        // /dev/zero never ends: bounded reading still stops.
        let zero = Path::new("/dev/zero");
        let e = load_or_create_identity(dir.path(), Some((zero, zero)), &small).unwrap_err();
        assert!(matches!(e, TlsFilesError::TooLarge { .. }), "{e:?}");
    }

    #[test]
    fn half_a_pair_in_the_data_folder_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_identity(dir.path(), None, &limits()).unwrap();
        let cert_before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let e = load_or_create_identity(dir.path(), None, &limits()).unwrap_err();
        assert!(matches!(e, TlsFilesError::HalfPair { .. }), "{e:?}");
        assert!(e.to_string().contains(KEY_FILE), "{e}");
        assert_eq!(fs::read(dir.path().join(CERT_FILE)).unwrap(), cert_before);
    }

    #[test]
    fn the_known_hosts_file_lives_in_the_xdg_config_folder() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            config_folder(os("/xdg"), os("/home/yoda")),
            Some(PathBuf::from("/xdg"))
        );
        assert_eq!(
            config_folder(None, os("/home/yoda")),
            Some(PathBuf::from("/home/yoda/.config"))
        );
        // A relative XDG_CONFIG_HOME is ignored, as the spec says.
        assert_eq!(
            config_folder(os("relative"), os("/home/yoda")),
            Some(PathBuf::from("/home/yoda/.config"))
        );
        assert_eq!(config_folder(None, None), None);
        assert_eq!(
            known_hosts_path(Some(Path::new("/tmp/kh"))).unwrap(),
            PathBuf::from("/tmp/kh")
        );
    }

    #[test]
    fn pins_are_appended_and_read_back_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("huddle").join("known_hosts");
        let (mut known, warnings) = read_known_hosts(&path, &limits()).unwrap();
        assert!(warnings.is_empty() && known.entries().is_empty());
        let server = HostPort::new("203.0.113.5", 4000).unwrap();
        for (i, digest) in [[1u8; 32], [2u8; 32]].into_iter().enumerate() {
            let line = append_known_host(
                &path,
                &mut known,
                KnownHost {
                    server: HostPort::new("203.0.113.5", 4000 + i as u16).unwrap(),
                    fingerprint: Fingerprint::from_digest(digest),
                },
            )
            .unwrap();
            assert_eq!(line, i + 1);
        }
        let mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let (again, warnings) = read_known_hosts(&path, &limits()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            again.pins_for(&server).collect::<Vec<_>>(),
            [(1, Fingerprint::from_digest([1; 32]))]
        );
        assert_eq!(again.origin(), path.display().to_string());
    }

    #[test]
    fn a_damaged_known_hosts_file_keeps_its_good_lines_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let good = Fingerprint::from_digest([7; 32]);
        let mut bytes = format!("1.2.3.4:4000 {good}\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe garbage\n5.6.7.8:4000 SHA256:cut-sho");
        fs::write(&path, &bytes).unwrap();
        let (mut known, warnings) = read_known_hosts(&path, &limits()).unwrap();
        assert_eq!(known.entries().len(), 1);
        assert_eq!(warnings.iter().map(|w| w.line).collect::<Vec<_>>(), [2, 3]);
        assert!(warnings.iter().all(|w| w.file == KNOWN_HOSTS_FILE));
        // An append after a cut-short last line starts a line of its own.
        let line = append_known_host(
            &path,
            &mut known,
            KnownHost {
                server: HostPort::new("9.9.9.9", 4000).unwrap(),
                fingerprint: good,
            },
        )
        .unwrap();
        assert_eq!(line, 4);
        let (again, _) = read_known_hosts(&path, &limits()).unwrap();
        assert_eq!(
            again
                .pins_for(&HostPort::new("9.9.9.9", 4000).unwrap())
                .collect::<Vec<_>>(),
            [(4, good)]
        );
    }
}
