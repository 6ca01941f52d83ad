//! `credentials.txt`: `username password`, or `username $argon2id$…` for accounts made by
//! sign-up.

use super::LoadWarning;
use super::lines::records;
use crate::types::UserName;

/// How a password is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// In clear, as the original assignment's file holds them (demo users).
    Plain(String),
    /// A PHC-format salted hash (`$argon2id$…`), as sign-up writes them.
    Hashed(String),
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub name: UserName,
    /// The password or its hash.
    pub secret: Secret,
}

/// Parse the file; bad lines are skipped with a warning, a repeated name keeps its first line.
pub fn parse_credentials(text: &str, warnings: &mut Vec<LoadWarning>) -> Vec<Credential> {
    const FILE: &str = "credentials.txt";
    let mut out: Vec<Credential> = Vec::new();
    for (line_no, line) in records(FILE, text, warnings) {
        let warn = |problem: String| LoadWarning {
            file: FILE,
            line: line_no,
            problem,
        };
        let Some((name, password)) = line.split_once(' ') else {
            warnings.push(warn("expected `username password`".into()));
            continue;
        };
        let name = match UserName::new(name) {
            Ok(n) => n,
            Err(e) => {
                warnings.push(warn(format!("invalid user name {name:?}: {e}")));
                continue;
            }
        };
        if password.is_empty() {
            warnings.push(warn(format!("empty password for {name}")));
            continue;
        }
        if out.iter().any(|c| c.name == name) {
            warnings.push(warn(format!("{name} appears again; the first line wins")));
            continue;
        }
        // A sign-up appends `name $argon2id$…` in one write; a crash can cut it short. Such a
        // line (or any hash that does not parse whole) would create an account nobody can log
        // in to and block the name for good, so it is refused and the name stays free.
        let looks_hashed = password.starts_with("$argon2") || "$argon2id$".starts_with(password);
        let secret = if looks_hashed {
            if !is_whole_hash(password) {
                warnings.push(warn(format!(
                    "incomplete password hash for {name} (a sign-up cut short by a crash?); line ignored"
                )));
                continue;
            }
            Secret::Hashed(password.to_owned())
        } else {
            Secret::Plain(password.to_owned())
        };
        out.push(Credential { name, secret });
    }
    out
}

/// Length in bytes of the hash output sign-up writes (Argon2's default).
const HASH_OUTPUT_LEN: usize = 32;

/// Whether `s` is a complete PHC hash string as sign-up writes it.
fn is_whole_hash(s: &str) -> bool {
    argon2::password_hash::PasswordHash::new(s)
        .ok()
        .and_then(|h| h.hash)
        .is_some_and(|out| out.len() == HASH_OUTPUT_LEN)
}

/// One line of the file, with its `\n`.
pub fn render_credential(c: &Credential) -> String {
    let secret = match &c.secret {
        Secret::Plain(p) | Secret::Hashed(p) => p,
    };
    format!("{} {}\n", c.name, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_hashed_accounts_and_tolerates_a_missing_final_newline() {
        let mut w = Vec::new();
        let c = parse_credentials(
            "yoda jedi*knight\r\n\nbob $argon2id$v=19$m=64,t=2,p=1$BwcHBwcHBwcHBwcHBwcHBw$Vt3+cWDTJqn9LONwAHXdn6qoHuK0p+f9cW4b6O1h3Ko\nluke r2 d2",
            &mut w,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].secret, Secret::Plain("jedi*knight".into()));
        assert!(matches!(c[1].secret, Secret::Hashed(_)));
        assert_eq!(c[2].secret, Secret::Plain("r2 d2".into()));
    }

    #[test]
    fn a_sign_up_line_cut_short_is_refused_so_the_name_stays_free() {
        let whole = "$argon2id$v=19$m=64,t=2,p=1$BwcHBwcHBwcHBwcHBwcHBw$Vt3+cWDTJqn9LONwAHXdn6qoHuK0p+f9cW4b6O1h3Ko";
        assert!(is_whole_hash(whole), "fixture must be a whole hash");
        for cut in [1, 3, 9, 40, whole.len() - 1] {
            let mut w = Vec::new();
            let text = format!("yoda jedi\neve {}", &whole[..cut]);
            let c = parse_credentials(&text, &mut w);
            assert_eq!(c.len(), 1, "cut at {cut}: {c:?}");
            assert_eq!(w.len(), 1);
        }
        let mut w = Vec::new();
        assert_eq!(
            parse_credentials(&format!("eve {whole}\n"), &mut w).len(),
            1
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let mut w = Vec::new();
        let c = parse_credentials("lonely\nbad;name pw\nyoda a\nyoda b\n", &mut w);
        assert_eq!(c.len(), 1);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].line, 1);
    }
}
