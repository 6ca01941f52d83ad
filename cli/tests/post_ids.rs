//! Stable post ids (issue 10, item 8) with the real binaries, for every runtime in
//! `common::RUNTIMES`: after a concurrent delete renumbered the board, `DLT` of the number the
//! user saw never deletes the post that moved into it (the client sends the id it was shown
//! with); `DLT @id` hits the post meant wherever it moved, also after a restart.

mod common;

use common::*;

#[test]
fn a_delete_by_the_number_seen_after_a_concurrent_delete_never_hits_the_post_that_moved_in() {
    for &rt in RUNTIMES {
        let dir = data_dir();
        let mut server = ServerProc::start(rt, dir.path(), &[]);
        let mut luke = LiveClient::login(&server, "luke", "r2d2");
        let mut yoda = LiveClient::login(&server, "yoda", "jedi*knight");
        let first = luke.command("MSG first", "Message #1 posted at");
        yoda.out.wait_for("#1 luke, ");
        let a = yoda.command("MSG a", "Message #2 posted at");
        let b = yoda.command("MSG b", "Message #3 posted at");
        let b_ts = timestamp_in(&b);
        let (luke_ts, a_ts) = (timestamp_in(&first), timestamp_in(&a));
        // luke deletes his #1: "a" is now #1 and "b" #2.
        luke.command(&format!("DLT 1 {luke_ts}"), "Message #1 deleted");
        yoda.out.wait_for("luke deleted message #1");
        // yoda deletes what he saw as #2 ("a"). Its number moved: refused, nothing changed —
        // whatever second "b" was posted in.
        yoda.command(
            &format!("DLT 2 {a_ts}"),
            "Message @2 is now #1, not #2: an earlier message was deleted meanwhile",
        );
        let log = server.file("messagelog.txt");
        assert!(
            log.contains("1; ")
                && log.contains("; yoda; a; no\n")
                && log.contains("; yoda; b; no\n"),
            "{rt}: {log}"
        );
        // By its id it goes, wherever it is now.
        yoda.command(&format!("DLT @2 {a_ts}"), "Message #1 deleted");
        let log = server.file("messagelog.txt");
        assert!(
            log.lines().count() == 1 && log.starts_with("1; ") && log.ends_with("; yoda; b; no\n"),
            "{rt}: {log}"
        );
        server.log.wait_for("yoda deleted message #1 (@2)");
        yoda.command("OUT", "Goodbye");
        drop(luke);
        // The ids are on disk beside messagelog.txt (whose format is unchanged) and survive a
        // crash and a restart.
        server.kill();
        let server = ServerProc::start(rt, dir.path(), &[]);
        let ids = server.file("postids.txt");
        assert!(ids.contains("\n+ 3 "), "{rt}: {ids}");
        let (code, out) = run_script(
            &server,
            &[
                "yoda",
                "jedi*knight",
                "RDM 01 Jan 2000 00:00:00",
                &format!("EDT @3 {b_ts} bee"),
                "OUT",
            ],
        );
        assert_eq!(code, 0, "{rt}: {out}");
        // A script sees the listing as ever, numbers without ids.
        assert!(out.contains("#1 yoda, "), "{rt}: {out}");
        assert!(out.contains("Message #1 edited at"), "{rt}: {out}");
        assert!(
            server.file("messagelog.txt").contains("; yoda; bee; yes\n"),
            "{rt}"
        );
    }
}
