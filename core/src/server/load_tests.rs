//! Starting from a data folder: damaged lines refuse the start or are repaired, nothing is
//! dropped without trace, bytes are kept exactly, damaged accounts keep their names.

use super::test_folder::{Folder, Run, T0, config};
use super::*;
use crate::store::Problem;

const CREDS: &[u8] = b"yoda jedi\nluke r2d2\nleia alderaan\n";
const POST1: &[u8] = b"1; 21 Nov 2026 10:00:00; yoda; first; no\n";
const POST2: &[u8] = b"2; 21 Nov 2026 10:00:01; luke; second; no\n";

/// One damaged line for each data file, and the reason the loader must give.
fn damage_of_each_file() -> Vec<(DataFile, &'static [u8], &'static str)> {
    vec![
        (DataFile::Credentials, b"han\tsolo", "tab"),
        (DataFile::Credentials, b"obiwan", "no space"),
        (DataFile::Credentials, b"rey $", "hash"),
        (
            DataFile::Credentials,
            b"lando  calrissian",
            "more than one space",
        ),
        (DataFile::Credentials, b"l\xffando x", "not UTF-8"),
        (
            DataFile::MessageLog,
            b"3; 21 Nov 2026 25:00:00; yoda; x; no",
            "timestamp",
        ),
        (
            DataFile::MessageLog,
            b"3; 21 Nov 2026 10:00:02; yoda; x",
            "edited",
        ),
        (
            DataFile::Inbox,
            b"leia; 21 Nov 2026 10:00:00; y\xffda; hi",
            "not UTF-8",
        ),
        (DataFile::Inbox, b"leia; yesterday; yoda; hi", "timestamp"),
        (DataFile::Blocks, b"leia;yoda", "blocker; blocked"),
        (DataFile::Blocks, b"leia; yo da", "invalid user name"),
        (
            DataFile::Logins,
            b"yoda; 21 Nov 2026 10:00:00",
            "last logout",
        ),
    ]
}

fn healthy() -> Folder {
    let mut body = POST1.to_vec();
    body.extend_from_slice(POST2);
    Folder::with(&[
        (DataFile::Credentials, CREDS),
        (DataFile::MessageLog, &body),
        (
            DataFile::Inbox,
            b"leia; 21 Nov 2026 10:00:00; yoda; kept letter\n",
        ),
        (DataFile::Blocks, b"leia; luke\n"),
        (
            DataFile::Logins,
            b"leia; 21 Nov 2026 09:00:00; 21 Nov 2026 09:30:00\n",
        ),
    ])
}

/// `healthy()` with `line` inserted as the second line of `file`.
fn damaged(file: DataFile, line: &[u8]) -> Folder {
    let mut folder = healthy();
    let text = folder.files.entry(file).or_default();
    let first = text.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut with = text[..first].to_vec();
    with.extend_from_slice(line);
    with.push(b'\n');
    with.extend_from_slice(&text[first..]);
    *text = with;
    folder
}

#[test]
fn a_damaged_line_in_any_file_refuses_the_start_naming_file_line_and_problem() {
    for (file, line, why) in damage_of_each_file() {
        let mut folder = damaged(file, line);
        let before = folder.files.clone();
        let Err(refusal) = Run::start(&mut folder, OnDamage::Refuse) else {
            panic!("{file} with {:?} started", line.escape_ascii().to_string())
        };
        let [w] = refusal.lines.as_slice() else {
            panic!("{refusal}")
        };
        assert_eq!((w.file, w.line), (file, 2), "{refusal}");
        let text = refusal.to_string();
        assert!(text.contains(&format!("{file} line 2: ")), "{text}");
        assert!(text.contains(why), "{file}: {text}");
        assert!(text.contains("--repair"), "{text}");
        assert_eq!(folder.files, before, "a refusal changes nothing");
    }
}

#[test]
fn a_repair_moves_each_damaged_line_byte_for_byte_keeps_a_copy_and_serves_the_rest() {
    for (file, line, _) in damage_of_each_file() {
        let mut folder = damaged(file, line);
        let original = folder.file(file).to_vec();
        let mut run = Run::start(&mut folder, OnDamage::Repair).expect("a repair starts");
        // The copy of the original, whole.
        let copies: Vec<&Vec<u8>> = folder.backups.values().collect();
        assert_eq!(copies, [&original], "{file}");
        let name = folder.backups.keys().next().unwrap();
        assert_eq!(name, &format!("{file}.2026-11-21_22-26-40.bak"));
        // The line in `.rejected`, after a header with the time, the line number and why.
        let rejected = folder.rejected(file).to_vec();
        let mut expected = line.to_vec();
        expected.push(b'\n');
        assert!(
            rejected.ends_with(&expected),
            "{file}: {:?}",
            rejected.escape_ascii().to_string()
        );
        assert!(
            rejected.starts_with(
                format!("# 21 Nov 2026 22:26:40; {file} line 2; damaged; ").as_bytes()
            ),
            "{}",
            rejected.escape_ascii()
        );
        // The file without it, the other lines as they were.
        assert_eq!(folder.file(file), healthy().file(file), "{file}");
        assert!(
            run.logs
                .iter()
                .any(|l| l.contains(&format!("{file} line 2"))
                    && l.contains(&format!("moved to {file}.rejected"))),
            "{:?}",
            run.logs
        );
        // Everything else is served: posts, letters, blocks, accounts.
        let (leia, r) = run.login(&mut folder, "leia", "alderaan");
        assert!(r.starts_with("230-"), "{r}");
        let r = run.say(&mut folder, leia, "RDM 01 Jan 2000 00:00:00");
        assert!(
            r.contains("first") && !r.contains("second"),
            "luke is blocked: {r}"
        );
        // A second start finds a clean folder.
        let again = Run::start(&mut folder, OnDamage::Refuse).expect("clean after a repair");
        assert!(
            !again.logs.iter().any(|l| l.contains("warning")),
            "{file}: {:?}",
            again.logs
        );
    }
}

#[test]
fn a_name_whose_credentials_line_is_damaged_stays_reserved_until_its_line_is_restored() {
    let mut folder = damaged(DataFile::Credentials, b"han\tsolo");
    let mut run = Run::start(&mut folder, OnDamage::Repair).unwrap();
    for name in ["han", "Han", "HAN"] {
        let (_, r) = run.login(&mut folder, name, "solo");
        assert!(r.starts_with("431 "), "{name}: {r}");
        assert!(r.contains("operator"), "{r}");
    }
    assert!(!String::from_utf8_lossy(folder.file(DataFile::Credentials)).contains("han"));
    // After a restart (even one more repair) it is still reserved: credentials.txt.rejected
    // says so.
    for _ in 0..3 {
        let mut run = Run::start(&mut folder, OnDamage::Repair).unwrap();
        let (_, r) = run.login(&mut folder, "han", "anything");
        assert!(r.starts_with("431 "), "{r}");
    }
    // The operator restores the line: han's account is back, with its password.
    folder
        .files
        .get_mut(&DataFile::Credentials)
        .unwrap()
        .extend_from_slice(b"han solo\n");
    let mut run = Run::start(&mut folder, OnDamage::Refuse).unwrap();
    let (_, r) = run.login(&mut folder, "han", "solo");
    assert!(r.starts_with("230-"), "{r}");
}

#[test]
fn bytes_that_are_not_utf8_survive_every_rewrite_exactly() {
    let odd_post: &[u8] = b"1; 21 Nov 2026 10:00:00; yoda; caf\xe9 \xff\xfe; no\n";
    let odd_letter: &[u8] = b"luke; 21 Nov 2026 10:00:00; yoda; \xc3\x28 for luke\n";
    let mut log = odd_post.to_vec();
    log.extend_from_slice(POST2);
    let mut inbox = b"leia; 21 Nov 2026 10:00:00; yoda; \xe9t\xe9 for leia\n".to_vec();
    inbox.extend_from_slice(odd_letter);
    let mut folder = Folder::with(&[
        (DataFile::Credentials, CREDS),
        (DataFile::MessageLog, &log),
        (DataFile::Inbox, &inbox),
    ]);
    let mut run = Run::start(&mut folder, OnDamage::Refuse).expect("not damage: kept as is");
    // leia takes her letter (inbox.txt is rewritten once the connection that carried it ends
    // with it delivered) and sees the bytes as U+FFFD.
    let (leia, shown) = run.login(&mut folder, "leia", "alderaan");
    assert!(shown.starts_with("230-"), "{shown}");
    assert!(shown.contains("\u{fffd}t\u{fffd} for leia"), "{shown}");
    assert!(shown.contains("caf\u{fffd}"), "{shown}");
    run.server.handle_disconnect(leia, UnixMillis(T0));
    run.drain(&mut folder);
    assert_eq!(folder.file(DataFile::Inbox), odd_letter);
    // luke deletes his post (messagelog.txt is rewritten) and posts again.
    let (luke, _) = run.login(&mut folder, "luke", "r2d2");
    let r = run.say(&mut folder, luke, "DLT 2 21 Nov 2026 10:00:01");
    assert!(r.starts_with("250"), "{r}");
    let r = run.say(&mut folder, luke, "MSG third");
    assert!(r.starts_with("250"), "{r}");
    assert!(folder.file(DataFile::MessageLog).starts_with(odd_post));
    run.server.handle_disconnect(luke, UnixMillis(T0));
    run.drain(&mut folder);
    // And after a restart, still the same bytes.
    let _ = Run::start(&mut folder, OnDamage::Refuse).unwrap();
    assert!(folder.file(DataFile::MessageLog).starts_with(odd_post));
    assert_eq!(folder.file(DataFile::Inbox), b"");
}

#[test]
fn a_duplicate_account_is_damage_and_the_first_line_wins() {
    let mut folder = damaged(DataFile::Credentials, b"yoda sith");
    let refusal = Run::start(&mut folder, OnDamage::Refuse)
        .err()
        .expect("refused");
    assert!(refusal.to_string().contains("line 1"), "{refusal}");
    let mut run = Run::start(&mut folder, OnDamage::Repair).unwrap();
    assert!(run.login(&mut folder, "yoda", "jedi").1.starts_with("230-"));
    assert!(run.login(&mut folder, "yoda", "sith").1.starts_with("432"));
}

#[test]
fn a_torn_last_line_never_refuses_and_is_kept_in_rejected() {
    let mut folder = healthy();
    folder
        .files
        .get_mut(&DataFile::MessageLog)
        .unwrap()
        .extend_from_slice(b"3; 21 Nov 2026 10:0");
    let run = Run::start(&mut folder, OnDamage::Refuse).expect("a torn tail is no damage");
    assert!(folder.backups.is_empty());
    assert!(folder.rejected(DataFile::MessageLog).ends_with(b"; torn; incomplete last line (a write cut short by a crash; it was never acknowledged)\n3; 21 Nov 2026 10:0\n"));
    assert_eq!(
        folder.file(DataFile::MessageLog),
        healthy().file(DataFile::MessageLog)
    );
    assert!(run.logs.iter().any(|l| l.contains("messagelog.txt line 3")));
}

#[test]
fn many_damaged_files_at_once_are_listed_together_and_repaired_together() {
    let mut folder = healthy();
    for (file, line, _) in damage_of_each_file() {
        folder
            .files
            .entry(file)
            .or_default()
            .extend_from_slice(line);
        folder.files.entry(file).or_default().push(b'\n');
    }
    let n = damage_of_each_file().len();
    let refusal = Run::start(&mut folder, OnDamage::Refuse).err().unwrap();
    assert_eq!(refusal.lines.len(), n);
    let _ = Run::start(&mut folder, OnDamage::Repair).unwrap();
    let rejected_lines: usize = folder
        .rejected
        .values()
        .map(|t| t.iter().filter(|&&b| b == b'\n').count())
        .sum();
    assert_eq!(rejected_lines, 2 * n, "a header and the line for each");
    assert_eq!(folder.backups.len(), 5, "one copy per damaged file");
    for file in [
        DataFile::Credentials,
        DataFile::MessageLog,
        DataFile::Inbox,
        DataFile::Blocks,
        DataFile::Logins,
    ] {
        assert_eq!(folder.file(file), healthy().file(file), "{file}");
    }
    // The warnings kept are all about the lines set aside.
    let again = Server::new(
        config(OnDamage::Refuse),
        &folder.data_files(),
        UnixMillis(T0),
    );
    assert!(again.is_ok());
    let _ = Problem::Torn { raw: Vec::new() };
}

#[test]
fn a_name_with_posts_or_private_messages_but_no_account_is_reserved_until_its_line_is_back() {
    let mut log = POST1.to_vec();
    log.extend_from_slice(b"2; 21 Nov 2026 10:00:01; ghost; boo; no\n");
    log.extend_from_slice(b"3; 21 Nov 2026 10:00:02; GHOST; boo again; no\n");
    let mut folder = Folder::with(&[
        (DataFile::Credentials, CREDS),
        (DataFile::MessageLog, &log),
        (
            DataFile::Inbox,
            b"leia; 21 Nov 2026 10:00:00; wraith; from nobody\nspecter; 21 Nov 2026 10:00:00; yoda; for nobody\n",
        ),
    ]);
    let mut run = Run::start(&mut folder, OnDamage::Refuse).expect("not damage");
    let warned = |who: &str, what: &str| {
        run.logs.iter().any(|l| {
            l.contains(&format!(
                "warning: {who} has {what} but no account in credentials.txt: the name is reserved"
            ))
        })
    };
    assert!(warned("ghost", "2 posts on the board"), "{:?}", run.logs);
    let letter = "1 private message waiting (sent or received)";
    assert!(warned("wraith", letter), "{:?}", run.logs);
    assert!(warned("specter", letter), "{:?}", run.logs);
    for name in ["ghost", "Ghost", "GHOST", "wraith", "specter"] {
        let (_, r) = run.login(&mut folder, name, "taken");
        assert!(
            r.starts_with(&format!(
                "431 The user name {name} cannot be used now: it has posts or private messages on the server but its account record is missing."
            )),
            "{name}: {r}"
        );
    }
    // Look-alikes of a reserved name are refused too.
    let (_, r) = run.login(&mut folder, "gh0st", "taken");
    assert!(r.starts_with("431 gh0st looks too much like"), "{r}");
    assert_eq!(folder.file(DataFile::Credentials), CREDS, "no account made");
    // Nobody got to ghost's posts.
    let (yoda, _) = run.login(&mut folder, "yoda", "jedi");
    let r = run.say(&mut folder, yoda, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("boo again"), "{r}");
    // The operator restores ghost's line: ghost can log in, and delete its own post.
    folder
        .files
        .get_mut(&DataFile::Credentials)
        .unwrap()
        .extend_from_slice(b"ghost boo\n");
    let mut run = Run::start(&mut folder, OnDamage::Refuse).unwrap();
    assert!(
        !run.logs.iter().any(|l| l.contains("warning: ghost ")),
        "{:?}",
        run.logs
    );
    let (ghost, r) = run.login(&mut folder, "ghost", "boo");
    assert!(r.starts_with("230-Welcome to huddle, ghost!"), "{r}");
    let r = run.say(&mut folder, ghost, "DLT 2 21 Nov 2026 10:00:01");
    assert!(r.starts_with("250"), "{r}");
}
