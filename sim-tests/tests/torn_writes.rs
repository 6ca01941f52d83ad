//! A crash can tear the last, unsynced append (a power cut mid-write; see `disk::CrashLoss`).
//! Whatever prefix of an unacknowledged record survives, the restarted server must neither
//! lose an acknowledged one nor let the torn one do harm: a torn post or private message is
//! moved, byte for byte, to `<file>.rejected` and the file repaired, and a torn sign-up leaves
//! the name either free or usable with the password that was chosen — never taken by a
//! password nobody knows.

use std::net::SocketAddr;

use huddle_core::UnixMillis;
use huddle_core::server::{ConnId, DataFiles, HashMemory, Input, Output, Server};
use huddle_core::store::{DataFile, Persist};
use huddle_sim_tests::clock::EPOCH_MILLIS;
use huddle_sim_tests::server_host::sim_config;

const NOW: UnixMillis = UnixMillis(EPOCH_MILLIS);

/// A server core with the folder it persisted to, driven line by line.
struct Bench {
    server: Server,
    files: DataFiles,
    /// The last append made, in file order.
    appends: Vec<(DataFile, Vec<u8>)>,
    /// What went to `<file>.rejected`.
    rejected: Vec<(DataFile, Vec<u8>)>,
    replies: String,
    warnings: Vec<String>,
}

impl Bench {
    fn boot(files: DataFiles) -> Self {
        let server = Server::new(sim_config(1), &files, NOW).expect("torn lines never refuse");
        let mut b = Bench {
            server,
            files,
            appends: Vec::new(),
            rejected: Vec::new(),
            replies: String::new(),
            warnings: Vec::new(),
        };
        b.drain();
        b
    }

    fn drain(&mut self) {
        let mut memory = HashMemory::new();
        while let Some(out) = self.server.poll_output() {
            for (_, bytes) in out.sends() {
                self.replies.push_str(std::str::from_utf8(bytes).unwrap());
            }
            match out {
                Output::Persist(Persist::Append { file, text }) => {
                    let mut all = self.files.get(file).to_vec();
                    all.extend_from_slice(&text);
                    self.files.insert(file, all);
                    self.appends.push((file, text));
                }
                Output::Persist(Persist::Replace { file, text }) => self.files.insert(file, text),
                Output::Persist(Persist::Reject { file, text }) => {
                    let mut all = self.files.rejected(file).to_vec();
                    all.extend_from_slice(&text);
                    self.files.insert_rejected(file, all);
                    self.rejected.push((file, text));
                }
                Output::Persist(Persist::Backup { name, .. }) => {
                    panic!("a torn line alone needs no backup, yet {name} was written")
                }
                Output::Hash(job) => {
                    let done = job.run(&mut memory);
                    self.server.handle_input(Input::Hashed(done), NOW);
                }
                Output::Log(l) => self.warnings.extend(
                    l.lines()
                        .filter(|l| l.contains("warning"))
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
    }

    fn connect(&mut self) -> ConnId {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let c = self.server.handle_connect(peer, NOW);
        self.drain();
        c
    }

    /// Send `line`; the reply codes it got.
    fn say(&mut self, conn: ConnId, line: &str) -> Vec<String> {
        self.replies.clear();
        self.server
            .handle_bytes(conn, format!("{line}\n").as_bytes(), NOW);
        self.drain();
        self.replies
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| l[..3].to_string())
            .collect()
    }

    fn login(&mut self, user: &str, password: &str) -> (ConnId, Vec<String>) {
        let c = self.connect();
        let mut codes = self.say(c, user);
        if codes.last().is_some_and(|c| c == "332" || c == "333") {
            codes.extend(self.say(c, password));
        }
        (c, codes)
    }
}

/// The folder as a crash left it: `before`, plus the first `cut` bytes of `record`.
fn torn(before: &DataFiles, file: DataFile, record: &[u8], cut: usize) -> DataFiles {
    let mut files = before.clone();
    let mut text = files.get(file).to_vec();
    text.extend_from_slice(&record[..cut]);
    files.insert(file, text);
    files
}

fn base() -> DataFiles {
    let mut f = DataFiles::new();
    f.insert(DataFile::Credentials, "yoda jedi\nluke r2d2\n");
    f
}

#[test]
fn a_torn_sign_up_leaves_the_name_free_or_usable() {
    let mut b = Bench::boot(base());
    let before = b.files.clone();
    let (_, codes) = b.login("eve", "apple pie");
    assert_eq!(codes, ["333", "230"]);
    let (file, record) = b.appends.last().cloned().expect("the sign-up appends");
    assert_eq!(file, DataFile::Credentials);
    let mut squatted = Vec::new();
    for cut in 1..record.len() {
        let mut after = Bench::boot(torn(&before, file, &record, cut));
        let (_, codes) = after.login("eve", "apple pie");
        if !(codes == ["333", "230"] || codes == ["332", "230"]) {
            squatted.push((cut, codes));
        }
    }
    assert!(
        squatted.is_empty(),
        "credentials.txt cut after n of {} bytes of {:?}: eve can neither sign up nor \
         log in with her password for n in {:?}..={:?} ({} cuts)",
        record.len(),
        String::from_utf8_lossy(&record),
        squatted.first(),
        squatted.last(),
        squatted.len()
    );
}

#[test]
fn a_torn_post_or_letter_is_dropped_and_the_file_repaired() {
    let mut b = Bench::boot(base());
    let (c, _) = b.login("yoda", "jedi");
    assert_eq!(b.say(c, "MSG first; acknowledged"), ["250"]);
    assert_eq!(b.say(c, "PVT luke first letter"), ["250"]);
    let before = b.files.clone();
    b.say(c, "MSG second; torn");
    let post = b.appends.last().cloned().unwrap();
    b.say(c, "PVT luke second letter");
    let letter = b.appends.last().cloned().unwrap();
    for (file, record) in [post, letter] {
        for cut in 1..record.len() {
            let mut after = Bench::boot(torn(&before, file, &record, cut));
            let (c, codes) = after.login("luke", "r2d2");
            assert_eq!(codes, ["332", "230"], "cut {cut} of {file:?}");
            // Acknowledged records are intact; the torn one is out of the file, kept byte for
            // byte in its `.rejected` file.
            assert_eq!(after.say(c, "RDM 01 Jan 2000 00:00:00"), ["250"]);
            assert!(after.replies.contains(": first; acknowledged"));
            let board = after.server.render_file(DataFile::MessageLog);
            assert_eq!(board.lines().count(), 1, "cut {cut}: {board:?}");
            let [(into, entry)] = after.rejected.as_slice() else {
                panic!("cut {cut} of {file:?}: rejected {:?}", after.rejected)
            };
            assert_eq!(*into, file);
            let mut kept = record[..cut].to_vec();
            kept.push(b'\n');
            assert!(entry.ends_with(&kept), "cut {cut}: {entry:?}");
            assert!(entry.starts_with(b"# "), "cut {cut}: {entry:?}");
            // Repaired: a further restart reads the folder without a warning.
            let again = Bench::boot(after.files.clone());
            assert!(
                again.warnings.is_empty(),
                "cut {cut} of {file:?} still warns after the repair: {:?}",
                again.warnings
            );
        }
    }
}
