//! A data folder that fails writes, in virtual time: nothing unstored is acknowledged, the
//! refusal is `452`, reads go on, and writes resume by themselves once the folder works.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::test_folder::{Folder, T0, config};
use super::*;

/// A driver like the runtimes' over an in-memory folder that fails while `failing`.
struct Disk {
    server: Server,
    folder: Folder,
    failing: bool,
    /// While failing, an append still writes the first half of its bytes (a torn line).
    tears: bool,
    now: u64,
    replies: BTreeMap<ConnId, String>,
    logs: Vec<String>,
    next_port: u16,
}

fn apply(folder: &mut Folder, records: Vec<Persist>) {
    for p in records {
        match p {
            Persist::Append { file, text } => folder.files.entry(file).or_default().extend(text),
            Persist::Replace { file, text } => {
                folder.files.insert(file, text);
            }
            Persist::Reject { file, text } => folder.rejected.entry(file).or_default().extend(text),
            Persist::Backup { name, text, .. } => {
                folder.backups.insert(name, text);
            }
        }
    }
}

impl Disk {
    fn start(folder: Folder, failing: bool) -> Disk {
        let server = Server::new(
            config(OnDamage::Refuse),
            &folder.data_files(),
            UnixMillis(T0),
        )
        .unwrap();
        let mut d = Disk {
            server,
            folder,
            failing,
            tears: false,
            now: T0,
            replies: BTreeMap::new(),
            logs: Vec::new(),
            next_port: 41_000,
        };
        d.drain();
        d
    }

    fn now(&self) -> UnixMillis {
        UnixMillis(self.now)
    }

    /// The runtimes' flush: records first, then (if they were stored) the rest; a failure
    /// drops what depended on them and is reported; then the probe.
    fn drain(&mut self) {
        let mut memory = HashMemory::new();
        loop {
            let mut records = Vec::new();
            let mut rest = Vec::new();
            while let Some(out) = self.server.poll_output() {
                match out {
                    Output::Persist(p) => records.push(p),
                    other => rest.push(other),
                }
            }
            let mut dropped = Vec::new();
            if !records.is_empty() && self.failing {
                for out in &rest {
                    match out {
                        Output::Hash(_) | Output::Log(_) => {}
                        other => dropped.extend(other.sends().into_iter().map(|(c, _)| c)),
                    }
                }
                rest.retain(|o| matches!(o, Output::Hash(_) | Output::Log(_)));
                if self.tears {
                    for p in &records {
                        if let Persist::Append { file, text } = p {
                            let half = text[..text.len() / 2].to_vec();
                            self.folder.files.entry(*file).or_default().extend(half);
                        }
                    }
                }
            } else {
                apply(&mut self.folder, records.clone());
            }
            let mut written: BTreeMap<ConnId, usize> = BTreeMap::new();
            let mut hashed = Vec::new();
            let mut closed = Vec::new();
            for out in rest {
                if let Output::Close { conn } | Output::Cut { conn } = &out {
                    closed.push(*conn);
                }
                for (conn, bytes) in out.sends() {
                    self.replies
                        .entry(conn)
                        .or_default()
                        .push_str(&String::from_utf8_lossy(bytes));
                    *written.entry(conn).or_default() += bytes.len();
                }
                match out {
                    Output::Log(l) => self.logs.extend(l.lines().map(str::to_owned)),
                    Output::Hash(job) => hashed.push(job.run(&mut memory)),
                    _ => {}
                }
            }
            let mut more = false;
            if !records.is_empty() && self.failing {
                let files = self.folder.data_files();
                self.server.handle_input(
                    Input::StoreFailed {
                        error: "No space left on device (os error 28)".into(),
                        dropped,
                        files: Some(&files),
                    },
                    self.now(),
                );
                more = true;
            }
            if let Some(probe) = self.server.poll_probe(self.now()) {
                let error = if self.failing {
                    Some("No space left on device (os error 28)".to_string())
                } else {
                    apply(&mut self.folder, probe);
                    None
                };
                self.server
                    .handle_input(Input::Probed { error }, self.now());
                more = true;
            }
            for (conn, n) in &written {
                self.server.handle_written(*conn, *n, self.now());
            }
            for done in hashed {
                self.server.handle_input(Input::Hashed(done), self.now());
                more = true;
            }
            for conn in closed {
                self.server.handle_disconnect(conn, self.now());
                more = true;
            }
            if !more && written.is_empty() {
                return;
            }
        }
    }

    fn connect(&mut self) -> ConnId {
        self.next_port += 1;
        let peer: SocketAddr = format!("127.0.0.1:{}", self.next_port).parse().unwrap();
        let c = self.server.handle_connect(peer, self.now());
        self.drain();
        self.replies.remove(&c);
        c
    }

    fn say(&mut self, conn: ConnId, line: &str) -> String {
        self.server
            .handle_bytes(conn, format!("{line}\n").as_bytes(), self.now());
        self.drain();
        self.replies.remove(&conn).unwrap_or_default()
    }

    fn login(&mut self, name: &str, password: &str) -> (ConnId, String) {
        let c = self.connect();
        let r = self.say(c, name);
        if !(r.starts_with("332") || r.starts_with("333")) {
            return (c, r);
        }
        let r = self.say(c, password);
        (c, r)
    }

    /// Let virtual time pass, handing in the timeout as a driver would.
    fn wait(&mut self, ms: u64) {
        self.now += ms;
        self.server.handle_timeout(self.now());
        self.drain();
    }

    fn log_count(&self, needle: &str) -> usize {
        self.logs.iter().filter(|l| l.contains(needle)).count()
    }
}

fn folder() -> Folder {
    Folder::with(&[(DataFile::Credentials, b"yoda jedi\nluke r2d2\n")])
}

#[test]
fn a_post_whose_write_fails_is_not_acknowledged_and_is_refused_until_the_disk_works() {
    let mut d = Disk::start(folder(), false);
    let (yoda, r) = d.login("yoda", "jedi");
    assert!(r.starts_with("230"), "{r}");
    let (luke, r) = d.login("luke", "r2d2");
    assert!(r.starts_with("230"), "{r}");
    d.replies.clear();
    assert!(d.say(yoda, "MSG stored first").contains("250"));
    let log_before = d.folder.file(DataFile::MessageLog).to_vec();
    assert!(String::from_utf8_lossy(&log_before).contains("stored first"));

    // The disk fills: the post is not acknowledged, its author is told why (421) and closed.
    d.failing = true;
    let r = d.say(yoda, "MSG lost in the void");
    assert!(r.starts_with("421 "), "{r}");
    assert!(r.contains("No space left on device"), "{r}");
    assert!(!r.contains("250"), "{r}");
    assert_eq!(d.folder.file(DataFile::MessageLog), log_before.as_slice());
    assert_eq!(d.log_count("read-only until it can be written"), 1);
    // The event never reached luke, and the post is not on the board either.
    // luke's fan-out was dropped with it: he is told and closed too, and logs in again.
    let luke_saw = d.replies.remove(&luke).unwrap_or_default();
    assert!(!luke_saw.contains("lost in the void"), "{luke_saw}");
    assert!(luke_saw.contains("\n421 "), "{luke_saw}");
    let (luke, r) = d.login("luke", "r2d2");
    assert!(r.starts_with("230"), "{r}");

    // Reads go on; changes are refused up front.
    let r = d.say(luke, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("stored first"), "{r}");
    assert!(!r.contains("lost in the void"), "{r}");
    let r = d.say(luke, "ATU");
    assert!(r.starts_with('2'), "{r}");
    assert!(d.say(luke, "RCU").starts_with('2'));
    for change in [
        "MSG still full",
        "PVT yoda hi",
        "BLK yoda",
        "DLT 1 01 Jan 2000 00:00:00",
    ] {
        let r = d.say(luke, change);
        assert!(r.starts_with("452 "), "{change}: {r}");
        assert!(r.contains("nothing was changed"), "{r}");
    }
    // A login of an existing user works; a sign-up is refused.
    let (_y2, r) = d.login("yoda", "jedi");
    assert!(r.starts_with("230"), "{r}");
    let (_new, r) = d.login("leia", "princess");
    assert!(r.starts_with("452 "), "{r}");
    assert_eq!(d.folder.file(DataFile::MessageLog), log_before.as_slice());

    // Probes fail while the disk is full: no more narration.
    d.wait(5_000);
    d.wait(5_000);
    assert_eq!(d.log_count("read-only until it can be written"), 1);
    assert_eq!(d.log_count("can be written again"), 0);

    // Space returns: the next probe ends read-only mode and writes what waited.
    d.failing = false;
    d.wait(5_000);
    assert_eq!(d.log_count("can be written again"), 1);
    let userlog = String::from_utf8_lossy(d.folder.file(DataFile::UserLog)).into_owned();
    assert!(
        userlog.contains("luke") && userlog.contains("yoda"),
        "{userlog}"
    );
    let r = d.say(luke, "MSG after the storm");
    assert!(r.contains("250"), "{r}");
    assert!(
        String::from_utf8_lossy(d.folder.file(DataFile::MessageLog)).contains("after the storm")
    );
    // A restart on the folder sees everything acknowledged and nothing else.
    let again = Server::new(
        config(OnDamage::Refuse),
        &d.folder.data_files(),
        UnixMillis(d.now),
    )
    .unwrap();
    assert_eq!(again.board.len(), 2);
}

#[test]
fn a_server_started_on_a_full_disk_is_read_only_and_recovers_by_itself() {
    let mut d = Disk::start(folder(), true);
    assert_eq!(d.log_count("read-only until it can be written"), 1);
    let (yoda, r) = d.login("yoda", "jedi");
    assert!(r.starts_with("230"), "{r}");
    assert!(d.say(yoda, "MSG no room").starts_with("452 "));
    assert!(d.say(yoda, "HELP").starts_with("214"));
    d.failing = false;
    d.wait(5_000);
    assert_eq!(d.log_count("can be written again"), 1);
    assert!(d.say(yoda, "MSG room now").contains("250"));
    // The rehash of yoda's plaintext password waited for the disk, and luke's line is kept.
    let credentials = String::from_utf8_lossy(d.folder.file(DataFile::Credentials)).into_owned();
    assert!(credentials.starts_with("yoda $argon2id$"), "{credentials}");
    assert!(credentials.ends_with("\nluke r2d2\n"), "{credentials}");
}

#[test]
fn fifty_failures_and_recoveries_lose_nothing_acknowledged_and_keep_memory_bounded() {
    let mut d = Disk::start(folder(), false);
    let (mut yoda, _) = d.login("yoda", "jedi");
    let mut acknowledged = 0;
    for round in 0..50 {
        let r = d.say(yoda, &format!("MSG kept {round}"));
        assert!(r.contains("250"), "round {round}: {r}");
        acknowledged += 1;
        d.failing = true;
        // The first refusal closes yoda's connection; log in again (reads work).
        let r = d.say(yoda, &format!("MSG refused {round}"));
        assert!(r.starts_with("421 "), "round {round}: {r}");
        let (c, r) = d.login("yoda", "jedi");
        assert!(r.starts_with("230"), "round {round}: {r}");
        yoda = c;
        d.wait(5_000);
        d.failing = false;
        d.wait(5_000);
    }
    let log = String::from_utf8_lossy(d.folder.file(DataFile::MessageLog)).into_owned();
    assert_eq!(log.matches("kept ").count(), acknowledged);
    assert_eq!(log.matches("refused ").count(), 0);
    assert_eq!(d.log_count("read-only until it can be written"), 50);
    assert_eq!(d.log_count("can be written again"), 50);
    assert!(d.server.conns.len() <= 3, "{}", d.server.conns.len());
}

#[test]
fn a_line_torn_by_a_failed_append_is_cut_and_the_files_are_whole_after_recovery() {
    let mut d = Disk::start(folder(), false);
    let (yoda, _) = d.login("yoda", "jedi");
    assert!(d.say(yoda, "MSG whole").contains("250"));
    d.failing = true;
    d.tears = true;
    let r = d.say(yoda, "MSG torn in half by a full disk");
    assert!(r.starts_with("421 "), "{r}");
    let (luke, _) = d.login("luke", "r2d2");
    let r = d.say(luke, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("whole") && !r.contains("torn in half"), "{r}");
    d.failing = false;
    d.tears = false;
    d.wait(5_000);
    assert_eq!(d.log_count("can be written again"), 1);
    let log = String::from_utf8_lossy(d.folder.file(DataFile::MessageLog)).into_owned();
    assert!(log.ends_with('\n') && !log.contains("torn"), "{log:?}");
    // The torn bytes are kept aside, not dropped without trace.
    assert!(!d.folder.rejected(DataFile::MessageLog).is_empty());
    assert!(d.say(luke, "MSG after").contains("250"));
    let mut again = Disk::start(d.folder, false);
    assert_eq!(again.log_count("warning"), 0, "{:?}", again.logs);
    let (c, _) = again.login("luke", "r2d2");
    let r = again.say(c, "RDM 01 Jan 2000 00:00:00");
    assert!(r.contains("whole") && r.contains("after"), "{r}");
}
