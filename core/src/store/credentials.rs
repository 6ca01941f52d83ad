//! `credentials.txt`: `username password`, or `username $argon2id$…` for accounts made by
//! sign-up.

use std::collections::HashMap;

use super::lines::{damaged, lines, split_once, utf8};
use super::{DataFile, LoadWarning, Problem};
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

/// Parse the file. A line that is not a whole account (no space after the name, an empty,
/// non-UTF-8 or cut-short password, a bad name, a name seen before) is a [`Problem::Damaged`]
/// warning: the caller refuses to start or moves it aside, and keeps its name reserved.
///
/// A last line without its `\n` is trusted when it is a whole account (people write this file
/// by hand, often without a final newline). When it is only the start of what sign-up writes
/// (`name`, or `name $argon2…` cut short), it is a sign-up cut short by a crash, never
/// acknowledged: [`Problem::Torn`], and the name stays free.
pub fn parse_credentials(
    text: impl AsRef<[u8]>,
    warnings: &mut Vec<LoadWarning>,
) -> Vec<Credential> {
    const FILE: DataFile = DataFile::Credentials;
    let all = lines(text.as_ref());
    let mut out: Vec<Credential> = Vec::new();
    let mut first_line: HashMap<UserName, usize> = HashMap::new();
    let last = all.unterminated.filter(|l| {
        if is_torn_sign_up(l.text) {
            warnings.push(LoadWarning {
                file: FILE,
                line: l.number,
                problem: Problem::Torn {
                    raw: l.raw.to_vec(),
                },
            });
            false
        } else {
            true
        }
    });
    for line in all.complete.iter().chain(last.iter()) {
        if line.text.trim_ascii().is_empty() {
            continue;
        }
        match parse_line(line.text) {
            Ok(c) => match first_line.get(&c.name) {
                Some(first) => warnings.push(damaged(
                    FILE,
                    line,
                    format!(
                        "{} already has an account on line {first}; only the first line counts",
                        c.name
                    ),
                )),
                None => {
                    first_line.insert(c.name.clone(), line.number);
                    out.push(c);
                }
            },
            Err(reason) => warnings.push(damaged(FILE, line, reason)),
        }
    }
    out
}

fn parse_line(line: &[u8]) -> Result<Credential, String> {
    let Some((name, password)) = split_once(line, b" ") else {
        let hint = if line.contains(&b'\t') {
            " (a tab where the space should be?)"
        } else {
            ""
        };
        return Err(format!(
            "expected `username password`: no space after the name{hint}"
        ));
    };
    let name = {
        let s = utf8(name, "user name")?;
        UserName::new(s).map_err(|e| format!("invalid user name {s:?}: {e}"))?
    };
    if password.is_empty() {
        return Err(format!("no password after the name {name}"));
    }
    let password = std::str::from_utf8(password)
        .map_err(|_| format!("the password of {name} is not UTF-8 text, so nobody can type it"))?;
    // `luke  r2d2` would make the password ` r2d2`, which nobody means: sign-up never allows
    // a space at either end of a password, so one here is a slip of the hand.
    if password.starts_with(' ') {
        return Err(format!(
            "more than one space after the name {name}: the password would start with a space; remove the extra space"
        ));
    }
    if password.ends_with(' ') {
        return Err(format!(
            "a space at the end of the password of {name}, which nobody would type; remove it"
        ));
    }
    let secret = if looks_hashed(password) {
        if !is_whole_hash(password) {
            return Err(format!(
                "the password hash of {name} is incomplete or malformed, so nobody can log in"
            ));
        }
        Secret::Hashed(password.to_owned())
    } else {
        Secret::Plain(password.to_owned())
    };
    Ok(Credential { name, secret })
}

/// Whether a password field is (the start of) a hash as sign-up writes it.
fn looks_hashed(password: &str) -> bool {
    password.starts_with("$argon2") || "$argon2id$".starts_with(password)
}

/// Whether an unterminated last line is what a sign-up cut short leaves: the start of a name,
/// or a name, a space and the start of a hash that is not whole.
fn is_torn_sign_up(line: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    match line.split_once(' ') {
        None => UserName::new(line).is_ok(),
        Some((name, rest)) => {
            UserName::new(name).is_ok()
                && (rest.is_empty() || (looks_hashed(rest) && !is_whole_hash(rest)))
        }
    }
}

/// The name a damaged credentials line was meant for, if it has one: what comes before the
/// first space or tab. Keeps that name reserved so nobody can sign up as it.
pub fn intended_name(raw: &[u8]) -> Option<UserName> {
    let raw = raw.trim_ascii_start();
    let end = raw
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .unwrap_or(raw.len());
    UserName::new(std::str::from_utf8(&raw[..end]).ok()?).ok()
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
            assert!(
                matches!(
                    w[..],
                    [LoadWarning {
                        problem: Problem::Torn { .. },
                        ..
                    }]
                ),
                "{w:?}"
            );
        }
        let mut w = Vec::new();
        assert_eq!(parse_credentials(format!("eve {whole}\n"), &mut w).len(), 1);
        assert!(w.is_empty(), "{w:?}");
    }

    fn damage(w: &[LoadWarning]) -> Vec<(usize, String)> {
        w.iter()
            .filter_map(|w| match &w.problem {
                Problem::Damaged { reason, .. } => Some((w.line, reason.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_kind_of_damage_is_reported_with_its_line_and_bytes() {
        let mut w = Vec::new();
        let text: &[u8] =
            b"yoda jedi\nluke\tr2d2\nobiwan\nhan $\nl\xffia x\nrey \nfinn p\xe9ss\nbad;name pw\nyoda again\n";
        let c = parse_credentials(text, &mut w);
        assert_eq!(c.len(), 1, "{c:?}");
        let d = damage(&w);
        let lines: Vec<usize> = d.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9], "{d:?}");
        assert!(d[0].1.contains("tab"), "{}", d[0].1);
        assert!(d[2].1.contains("incomplete"), "{}", d[2].1);
        assert!(d[3].1.contains("not UTF-8"), "{}", d[3].1);
        assert!(d[5].1.contains("not UTF-8"), "{}", d[5].1);
        assert!(d[7].1.contains("line 1"), "{}", d[7].1);
        let Problem::Damaged { raw, .. } = &w[3].problem else {
            panic!("{w:?}")
        };
        assert_eq!(raw.as_slice(), b"l\xffia x");
    }

    #[test]
    fn a_space_at_either_end_of_a_password_is_damage_not_part_of_it() {
        for (line, says) in [
            ("luke  r2d2", "more than one space after the name luke"),
            ("luke   r2d2", "more than one space after the name luke"),
            ("luke r2d2 ", "a space at the end of the password of luke"),
            ("luke  ", "more than one space after the name luke"),
        ] {
            let mut w = Vec::new();
            let c = parse_credentials(format!("yoda jedi\n{line}\n"), &mut w);
            assert_eq!(c.len(), 1, "{line:?}: {c:?}");
            let d = damage(&w);
            assert_eq!(d.len(), 1, "{line:?}: {w:?}");
            assert_eq!(d[0].0, 2);
            assert!(d[0].1.starts_with(says), "{line:?}: {}", d[0].1);
            let Problem::Damaged { raw, .. } = &w[0].problem else {
                panic!("{w:?}")
            };
            assert_eq!(raw.as_slice(), line.as_bytes());
            assert_eq!(
                intended_name(raw).map(|n| n.to_string()).as_deref(),
                Some("luke")
            );
        }
        // A space inside a password is the user's own.
        let mut w = Vec::new();
        let c = parse_credentials("luke r2 d2\n", &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c[0].secret, Secret::Plain("r2 d2".into()));
    }

    #[test]
    fn the_intended_name_of_a_damaged_line_is_what_precedes_the_first_blank() {
        let n = |raw: &[u8]| intended_name(raw).map(|n| n.to_string());
        assert_eq!(n(b"luke\tr2d2").as_deref(), Some("luke"));
        assert_eq!(n(b"obiwan").as_deref(), Some("obiwan"));
        assert_eq!(n(b"han $").as_deref(), Some("han"));
        assert_eq!(n(b"l\xffke x"), None);
        assert_eq!(n(b"bad;name pw"), None);
    }

    #[test]
    fn an_unterminated_last_line_is_torn_only_if_sign_up_could_have_written_it() {
        for (tail, torn) in [
            ("eve", true),
            ("eve ", true),
            ("eve $argon2id$v=19$m=64", true),
            ("eve pw", false),
            ("luke\tr2d2", false),
        ] {
            let mut w = Vec::new();
            parse_credentials(format!("yoda jedi\n{tail}"), &mut w);
            let is_torn = w.iter().any(|w| matches!(w.problem, Problem::Torn { .. }));
            assert_eq!(is_torn, torn, "{tail:?}: {w:?}");
        }
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let mut w = Vec::new();
        let c = parse_credentials("lonely\nbad;name pw\nyoda a\nyoda b\n", &mut w);
        assert_eq!(damage(&w).len(), 3);
        assert_eq!(c.len(), 1);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].line, 1);
    }
}
