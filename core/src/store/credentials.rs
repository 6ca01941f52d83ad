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
        let secret = if password.starts_with("$argon2") {
            Secret::Hashed(password.to_owned())
        } else {
            Secret::Plain(password.to_owned())
        };
        out.push(Credential { name, secret });
    }
    out
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
            "yoda jedi*knight\r\n\nbob $argon2id$v=19$x\nluke r2 d2",
            &mut w,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].secret, Secret::Plain("jedi*knight".into()));
        assert!(matches!(c[1].secret, Secret::Hashed(_)));
        assert_eq!(c[2].secret, Secret::Plain("r2 d2".into()));
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
