//! User names: one account per name without regard to case, look-alikes refused at sign-up.

use super::test_folder::{Folder, Run};
use super::*;

const CREDS: &[u8] = b"yoda jedi\nluke r2d2\nleia alderaan\nmace windu\n";

fn start() -> (Folder, Run) {
    let mut folder = Folder::with(&[(DataFile::Credentials, CREDS)]);
    let run = Run::start(&mut folder, OnDamage::Refuse).unwrap();
    (folder, run)
}

#[test]
fn logging_in_as_yoda_means_the_account_yoda_and_never_offers_sign_up() {
    let (mut folder, mut run) = start();
    for typed in ["Yoda", "YODA", "yOdA"] {
        let c = run.connect(&mut folder);
        let r = run.say(&mut folder, c, typed);
        assert!(r.starts_with("332 Password for yoda:"), "{typed}: {r}");
        let r = run.say(&mut folder, c, "jedi");
        assert!(
            r.starts_with("230-Welcome to huddle, yoda!"),
            "{typed}: {r}"
        );
        let userlog = String::from_utf8_lossy(folder.file(DataFile::UserLog)).into_owned();
        assert!(userlog.contains("; yoda; "), "{userlog}");
        // Online as yoda: a second login under any case is refused.
        let (_, again) = run.login(&mut folder, "yoda", "jedi");
        assert!(again.contains("already logged in"), "{again}");
        let r = run.say(&mut folder, c, "OUT");
        assert!(r.contains("Goodbye, yoda!"), "{r}");
    }
    // No second account; yoda's password in clear was replaced by its hash at the first login.
    let names = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    };
    let creds = folder.file(DataFile::Credentials).to_vec();
    assert_eq!(names(&creds), names(CREDS), "no second account");
    assert!(
        String::from_utf8_lossy(&creds).contains("\nyoda $argon2id$")
            || String::from_utf8_lossy(&creds).starts_with("yoda $argon2id$"),
        "{}",
        String::from_utf8_lossy(&creds)
    );
}

#[test]
fn the_lockout_of_a_name_covers_every_case_of_it() {
    let (mut folder, mut run) = start();
    let c = run.connect(&mut folder);
    run.say(&mut folder, c, "LUKE");
    for _ in 0..3 {
        run.say(&mut folder, c, "wrong");
    }
    let (_, r) = run.login(&mut folder, "luke", "r2d2");
    assert!(r.starts_with("435 "), "{r}");
}

#[test]
fn look_alike_names_are_refused_at_sign_up_naming_the_existing_user() {
    let (mut folder, mut run) = start();
    for (typed, existing) in [
        ("Ieia", "leia"),
        ("1uke", "luke"),
        ("IuKe", "luke"),
        ("rnace", "mace"),
        ("y0da", "yoda"),
    ] {
        let c = run.connect(&mut folder);
        let r = run.say(&mut folder, c, typed);
        assert!(
            r.starts_with(&format!(
                "431 {typed} looks too much like the existing user {existing};"
            )),
            "{typed}: {r}"
        );
        // The dialogue goes on: another name works.
        let r = run.say(&mut folder, c, "rey");
        assert!(r.starts_with("333 "), "{r}");
    }
    assert_eq!(folder.file(DataFile::Credentials), CREDS);
    // A name that looks like nobody is welcome.
    let (_, r) = run.login(&mut folder, "Lando", "calrissian");
    assert!(r.starts_with("230-Welcome to huddle, Lando!"), "{r}");
    // And is then protected in turn.
    let c = run.connect(&mut folder);
    let r = run.say(&mut folder, c, "LAND0");
    assert!(r.starts_with("332 ") || r.contains("Lando"), "{r}");
}

#[test]
fn two_sign_ups_of_look_alikes_at_once_leave_one_account() {
    let (mut folder, mut run) = start();
    let a = run.connect(&mut folder);
    let b = run.connect(&mut folder);
    assert!(run.say(&mut folder, a, "ahsoka").starts_with("333 "));
    assert!(run.say(&mut folder, b, "AHS0KA").starts_with("333 "));
    assert!(run.say(&mut folder, a, "snips").starts_with("230-"));
    let r = run.say(&mut folder, b, "other");
    assert!(
        r.starts_with("431 AHS0KA looks too much like the existing user ahsoka;"),
        "{r}"
    );
    let creds = String::from_utf8_lossy(folder.file(DataFile::Credentials)).into_owned();
    assert_eq!(
        creds.matches("ahsoka").count() + creds.matches("AHS0KA").count(),
        1,
        "{creds}"
    );
}

#[test]
fn names_in_every_file_are_matched_without_regard_to_case() {
    let mut folder = Folder::with(&[
        (DataFile::Credentials, CREDS),
        (
            DataFile::MessageLog,
            b"1; 21 Nov 2026 10:00:00; YODA; hi; no\n",
        ),
        (
            DataFile::Inbox,
            b"LEIA; 21 Nov 2026 10:00:00; Luke; for leia\n",
        ),
        (DataFile::Blocks, b"Leia; YODA\n"),
    ]);
    let mut run = Run::start(&mut folder, OnDamage::Refuse).unwrap();
    // leia gets her letter; her block of yoda hides his post.
    let (leia, r) = run.login(&mut folder, "leia", "alderaan");
    assert!(
        r.contains("* PVT 21 Nov 2026 10:00:00 Luke for leia"),
        "{r}"
    );
    let r = run.say(&mut folder, leia, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("No new messages"), "{r}");
    // yoda may delete his own post, written as YODA.
    let (yoda, _) = run.login(&mut folder, "yoda", "jedi");
    let r = run.say(&mut folder, yoda, "DLT 1 21 Nov 2026 10:00:00");
    assert!(r.starts_with("250"), "{r}");
}

#[test]
fn two_accounts_differing_only_in_case_are_damage() {
    let mut folder = Folder::with(&[(DataFile::Credentials, b"yoda jedi\nYoda sith\n")]);
    let refusal = Run::start(&mut folder, OnDamage::Refuse)
        .err()
        .expect("refused");
    assert_eq!(refusal.lines.len(), 1);
    assert_eq!(refusal.lines[0].line, 2);
}

#[test]
fn sign_up_refuses_names_that_would_make_hidden_or_dash_leading_downloads() {
    let (mut folder, mut run) = start();
    for typed in [".", "..", ".hidden", "-rf", "-", ".Yoda", "--help"] {
        let c = run.connect(&mut folder);
        let r = run.say(&mut folder, c, typed);
        assert_eq!(
            r,
            format!(
                "431 {typed} cannot be a new user name: a new user name may not start with '.' or '-' (files it sends are saved as <name>_<file>). Try another user name.\n"
            ),
            "{typed}"
        );
        // The dialogue goes on: another name works.
        let r = run.say(&mut folder, c, "rey");
        assert!(r.starts_with("333 "), "{typed}: {r}");
    }
    assert_eq!(folder.file(DataFile::Credentials), CREDS);
    // A dot or a dash inside or at the end is fine.
    for name in ["r2.d2", "obi-wan", "han.", "c-"] {
        let (_, r) = run.login(&mut folder, name, "secret");
        assert!(r.starts_with("230-Welcome to huddle, "), "{name}: {r}");
    }
}

#[test]
fn accounts_made_before_the_rule_with_a_leading_dot_or_dash_keep_working() {
    let mut folder = Folder::with(&[
        (DataFile::Credentials, b".hidden shh\n-rf gone\n"),
        (
            DataFile::MessageLog,
            b"1; 21 Nov 2026 10:00:00; .hidden; boo; no\n",
        ),
    ]);
    let mut run = Run::start(&mut folder, OnDamage::Refuse).expect("not damage");
    let (hidden, r) = run.login(&mut folder, ".hidden", "shh");
    assert!(r.starts_with("230-Welcome to huddle, .hidden!"), "{r}");
    let r = run.say(&mut folder, hidden, "DLT 1 21 Nov 2026 10:00:00");
    assert!(r.starts_with("250"), "{r}");
    let (_, r) = run.login(&mut folder, "-RF", "gone");
    assert!(r.starts_with("230-Welcome to huddle, -rf!"), "{r}");
}

#[test]
fn replies_events_and_files_show_names_as_created_whatever_case_was_typed() {
    let (mut folder, mut run) = start();
    let (luke, r) = run.login(&mut folder, "LUKE", "r2d2");
    assert!(r.starts_with("230-Welcome to huddle, luke!"), "{r}");
    let (yoda, _) = run.login(&mut folder, "yoda", "jedi");
    assert!(run.say(&mut folder, luke, "RCU").contains("luke"));
    let r = run.say(&mut folder, luke, "BLK YODA");
    assert!(r.starts_with("250 yoda is now blocked:"), "{r}");
    assert_eq!(
        run.say(&mut folder, luke, "BLK Yoda"),
        "250 yoda was already blocked\n"
    );
    assert_eq!(folder.file(DataFile::Blocks), b"luke; yoda\n");
    assert_eq!(
        run.say(&mut folder, luke, "UNB yODA"),
        "250 yoda is unblocked\n"
    );
    assert_eq!(
        run.say(&mut folder, luke, "UNB YODA"),
        "550 yoda was not blocked\n"
    );
    let r = run.say(&mut folder, luke, "PVT LEIA hi");
    assert!(r.starts_with("250 leia is offline;"), "{r}");
    assert!(
        String::from_utf8_lossy(folder.file(DataFile::Inbox)).starts_with("leia; "),
        "{}",
        String::from_utf8_lossy(folder.file(DataFile::Inbox))
    );
    let r = run.say(&mut folder, luke, "PVT Yoda psst");
    assert!(r.starts_with("250 Private message sent to yoda at"), "{r}");
    let r = run.say(&mut folder, luke, "UPD MACE 10 clip.mp4");
    assert!(r.starts_with("554 mace is offline;"), "{r}");
    // A name nobody has is shown as typed.
    let r = run.say(&mut folder, luke, "PVT Nobody hi");
    assert_eq!(r, "550 There is no user named Nobody\n");
    let r = run.say(&mut folder, yoda, "OUT");
    assert!(r.contains("Goodbye, yoda!"), "{r}");
}
