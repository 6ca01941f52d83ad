//! Stable post ids (issue 10, item 8), in virtual time: every post gets an id that its number
//! changes around; `DLT`/`EDT` may name a post by id, or by number and id, so a post that merely
//! moved into the number a client saw is never the one changed; ids survive restarts and a
//! crash between `postids.txt` and `messagelog.txt`, and are never given twice.

use super::*;

/// luke posts #1; yoda posts "a" (#2) and "b" (#3) in the same second. Returns both
/// connections and that second.
fn luke_then_two_of_yodas(h: &mut Harness) -> (ConnId, ConnId, String, String) {
    let l = h.login("luke", "r2d2");
    let y = h.login("yoda", "jedi");
    h.say(l, "MSG first");
    let luke_ts = h.ts();
    h.advance(1_000);
    h.say(y, "MSG a");
    h.say(y, "MSG b");
    let ts = h.ts();
    h.take(l);
    h.take(y);
    (l, y, luke_ts, ts)
}

fn board_texts(h: &Harness) -> Vec<String> {
    h.file(DataFile::MessageLog)
        .lines()
        .map(|l| l.rsplit("; ").nth(1).unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_post_is_told_its_id_and_shown_with_it_everywhere() {
    let mut h = Harness::new();
    let l = h.login("luke", "r2d2");
    let y = h.login("yoda", "jedi");
    h.take(l);
    let r = h.say_raw(y, "MSG hello");
    let ts = h.ts();
    assert_eq!(
        r,
        format!("* POSTED 1@1\n250 Message #1 posted at {ts}\n"),
        "the author learns the id just before the reply DESIGN fixes"
    );
    assert_eq!(h.take(l), format!("* POST 1@1 {ts} yoda no hello\n"));
    h.advance(1_000);
    h.say(y, "MSG again");
    let r = h.say(l, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains(&format!("#1@1 yoda, {ts}: hello")), "{r}");
    assert!(r.contains("#2@2 yoda, "), "{r}");
}

#[test]
fn after_a_concurrent_delete_a_dlt_by_id_still_hits_the_message_meant() {
    let mut h = Harness::new();
    let (l, y, luke_ts, ts) = luke_then_two_of_yodas(&mut h);
    // yoda saw "a" as 2@2 and "b" as 3@3. luke deletes his #1: "a" is now #1, "b" #2.
    let r = h.say(l, &format!("DLT 1 {luke_ts}"));
    assert!(r.starts_with("250 Message #1 deleted"), "{r}");
    assert_eq!(h.take(y), "* DELETE 1@1 luke\n");
    // yoda means "a", which he saw as #2: by number and id it is refused, since #2 is now "b"
    // (same author, same second: the timestamp check alone cannot tell them apart).
    let r = h.say(y, &format!("DLT 2@2 {ts}"));
    assert!(
        r.starts_with("551 Message @2 is now #1, not #2: an earlier message was deleted"),
        "{r}"
    );
    assert_eq!(board_texts(&h), ["a", "b"], "nothing changed");
    // By id alone it hits "a" wherever it is now.
    let r = h.say(y, &format!("DLT @2 {ts}"));
    assert!(r.starts_with("250 Message #1 deleted"), "{r}");
    assert_eq!(board_texts(&h), ["b"]);
    assert_eq!(h.take(l), "* DELETE 1@2 yoda\n");
    // Deleted ids are gone for good; "b" is still @3 and edits by id.
    let r = h.say(y, &format!("DLT @2 {ts}"));
    assert!(r.starts_with("550 There is no message @2"), "{r}");
    let r = h.say(y, &format!("EDT @3 {ts} bee"));
    assert!(r.starts_with("250 Message #1 edited at"), "{r}");
    assert!(h.take(l).starts_with("* EDIT 1@3 "));
    assert_eq!(board_texts(&h), ["bee"]);
}

#[test]
fn a_stale_number_alone_still_means_what_design_says() {
    // DESIGN §2 unchanged: a number is the post at that number now, guarded by its timestamp.
    let mut h = Harness::new();
    let (l, y, luke_ts, ts) = luke_then_two_of_yodas(&mut h);
    h.say(l, &format!("DLT 1 {luke_ts}"));
    h.take(y);
    // A different second is refused by the timestamp check.
    let r = h.say(y, &format!("DLT 1 {luke_ts}"));
    assert!(
        r.starts_with("551 The timestamp does not match message #1"),
        "{r}"
    );
    // The same second matches the post now at #2: the wire cannot tell, which is why the
    // huddle client always sends the id with the number it showed.
    let r = h.say(y, &format!("DLT 2 {ts}"));
    assert!(r.starts_with("250 Message #2 deleted"), "{r}");
    assert_eq!(board_texts(&h), ["a"]);
}

#[test]
fn an_id_with_someone_elses_post_or_a_stale_timestamp_is_refused_as_a_number_would_be() {
    let mut h = Harness::new();
    let (l, y, luke_ts, ts) = luke_then_two_of_yodas(&mut h);
    let r = h.say(l, &format!("DLT @2 {ts}"));
    assert!(r.starts_with("553 Message #2 was posted by yoda"), "{r}");
    let r = h.say(y, &format!("EDT 2@2 {luke_ts} x"));
    assert!(
        r.starts_with("551 The timestamp does not match message #2"),
        "{r}"
    );
    for hostile in [
        "DLT @ 21 Nov 2026 22:30:01",
        "DLT @x 21 Nov 2026 22:30:01",
        "DLT 2@ 21 Nov 2026 22:30:01",
        "DLT @2@3 21 Nov 2026 22:30:01",
        "DLT 99999999999999999999@1 21 Nov 2026 22:30:01",
        "DLT @99999999999999999999 21 Nov 2026 22:30:01",
        "DLT -1@2 21 Nov 2026 22:30:01",
    ] {
        let r = h.say(y, hostile);
        assert!(r.starts_with("501 "), "{hostile}: {r}");
    }
    let r = h.say(y, &format!("DLT @18446744073709551615 {ts}"));
    assert!(r.starts_with("501 ") || r.starts_with("550 "), "{r}");
    let r = h.say(y, &format!("DLT 0@2 {ts}"));
    assert!(r.starts_with("501 ") && r.contains("start at 1"), "{r}");
    assert_eq!(board_texts(&h), ["first", "a", "b"]);
}

#[test]
fn ids_survive_restarts_and_are_never_given_twice() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    for t in ["one", "two", "three"] {
        h.say(y, &format!("MSG {t}"));
    }
    let ts = h.ts();
    h.say(y, &format!("DLT 3 {ts}"));
    h.say(y, &format!("DLT @1 {ts}"));
    for round in 0..50 {
        h.restart();
        let y = h.login("yoda", "jedi");
        let r = h.say_raw(y, &format!("MSG round {round}"));
        let want = format!("* POSTED {}@{}\n", round + 2, round + 4);
        assert!(r.starts_with(&want), "round {round}: {r}");
        let r = h.say(y, "RDM 01 Jan 2000 00:00:00");
        assert!(r.contains("#1@2 yoda, "), "the survivor keeps its id: {r}");
        h.say(y, "OUT");
    }
}

#[test]
fn a_crash_between_the_id_journal_and_the_board_keeps_ids_consistent() {
    let mut h = Harness::new();
    let y = h.login("yoda", "jedi");
    h.say(y, "MSG kept");
    let ts = h.ts();
    // The next batch: a post and a delete. Only postids.txt reaches the disk (it is applied
    // first), then the crash: neither was acknowledged.
    h.server.handle_bytes(y, b"MSG lost\n", UnixMillis(h.now));
    h.server
        .handle_bytes(y, format!("DLT 1 {ts}\n").as_bytes(), UnixMillis(h.now));
    let mut acknowledged = false;
    while let Some(out) = h.server.poll_output() {
        match out {
            Output::Persist(Persist::Append {
                file: DataFile::PostIds,
                text,
            }) => h
                .files
                .entry(DataFile::PostIds)
                .or_default()
                .push_str(std::str::from_utf8(&text).unwrap()),
            Output::Send { .. } => acknowledged = true,
            _ => {}
        }
    }
    assert!(
        acknowledged,
        "the outputs held replies, the runtime never sent them"
    );
    h.restart();
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("#1@1 yoda, ") && r.contains(": kept"), "{r}");
    assert!(
        h.logs.iter().all(|l| !l.contains("postids.txt")),
        "{:?}",
        h.logs
    );
    // The lost post's id is not given again (no client ever saw it, but nothing is lost by
    // skipping it, and a journal that never goes back is simpler to trust).
    let r = h.say_raw(y, "MSG next");
    assert!(r.starts_with("* POSTED 2@3\n"), "{r}");
    let r = h.say(y, &format!("DLT @1 {ts}"));
    assert!(r.starts_with("250 Message #1 deleted"), "{r}");
}

#[test]
fn a_journal_that_does_not_match_the_board_is_reported_and_fixed() {
    let mut files = files_with_demo_users();
    files.insert(
        DataFile::MessageLog,
        "1; 21 Nov 2026 10:00:00; yoda; one; no\n2; 21 Nov 2026 10:00:01; luke; two; no\n",
    );
    // Only the second post is known to the journal (the first was added by hand).
    let mut journal = b"> 8\n".to_vec();
    journal.extend(crate::store::postids::render_add(
        crate::types::PostId(7),
        Timestamp::from_unix_secs(1_795_255_201),
        &UserName::new("luke").unwrap(),
        &"two".into(),
    ));
    files.insert(DataFile::PostIds, journal);
    let mut h = Harness::with(fast_config(), files);
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("postids.txt does not match messagelog.txt")),
        "{:?}",
        h.logs
    );
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("#1@8 yoda") && r.contains("#2@7 luke"), "{r}");
    // The journal was rewritten to match: a restart is quiet and keeps the same ids.
    h.logs.clear();
    h.restart();
    assert!(
        h.logs.iter().all(|l| !l.contains("postids")),
        "{:?}",
        h.logs
    );
    let y = h.login("yoda", "jedi");
    let r = h.say(y, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("#1@8 yoda") && r.contains("#2@7 luke"), "{r}");
}
