//! The keepalive with the real binaries (issue 10, item 3): a client process that is stopped
//! (SIGSTOP: its kernel still acknowledges TCP, so only a protocol keepalive can tell) is logged
//! out within the keepalive's idle time and timeout, its name logs in again at once, and when
//! the process resumes it prints why it was disconnected and exits 7. A client that is only
//! idle answers the pings by itself and stays.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

const FLAGS: &[&str] = &[
    "--keepalive-idle-secs",
    "0.5",
    "--keepalive-timeout-secs",
    "0.5",
];

#[test]
fn a_stopped_client_is_logged_out_and_its_name_freed_on_both_runtimes() {
    for runtime in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(runtime, dir.path(), FLAGS);
        let mut stopped = LiveClient::login(&server, "yoda", "jedi*knight");
        let mut idle = LiveClient::login_on(&server, "std", "luke", "r2d2");
        let stopped_at = Instant::now();
        stopped.signal(libc::SIGSTOP);
        let line = server.log.wait_for("no answer to a keepalive");
        assert!(line.contains("yoda (127.0.0.1:"), "{line}");
        let took = stopped_at.elapsed();
        // Idle 0.5 s + timeout 0.5 s; generous for a loaded machine, far below TCP's minutes.
        assert!(took < Duration::from_secs(10), "{runtime}: took {took:?}");

        let (code, out) = run_script(&server, &["yoda", "jedi*knight", "ATU", "OUT"]);
        assert_eq!(code, 0, "{runtime}: the name is free again:\n{out}");
        assert!(out.contains("luke, 127.0.0.1"), "{out}");

        stopped.signal(libc::SIGCONT);
        assert_eq!(stopped.wait_exit(), 7, "{runtime}:\n{}", stopped.out.text());
        let why = stopped.out.wait_for("Disconnected by the server:");
        assert!(why.contains("keepalive"), "{why}");

        // Luke idled all along, answering the pings by himself.
        thread::sleep(Duration::from_millis(1_500));
        idle.command("ATU", "No other active users");
        idle.command("OUT", "Goodbye, luke!");
        assert_eq!(idle.wait_exit(), 0);
    }
}
