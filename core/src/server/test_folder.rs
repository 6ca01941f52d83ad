//! An in-memory data folder, side files included, and a server core driven on it: the
//! harness of the loading and naming tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::*;

pub const T0: u64 = 1_795_300_000_000; // 21 Nov 2026 22:26:40 UTC

/// A data folder in memory, side files included, and a server running on it.
#[derive(Default)]
pub struct Folder {
    pub files: BTreeMap<DataFile, Vec<u8>>,
    pub rejected: BTreeMap<DataFile, Vec<u8>>,
    pub backups: BTreeMap<String, Vec<u8>>,
}

impl Folder {
    pub fn with(files: &[(DataFile, &[u8])]) -> Self {
        Folder {
            files: files.iter().map(|(f, t)| (*f, t.to_vec())).collect(),
            ..Folder::default()
        }
    }

    pub fn data_files(&self) -> DataFiles {
        let mut d = DataFiles::new();
        for (f, t) in &self.files {
            d.insert(*f, t.clone());
        }
        for (f, t) in &self.rejected {
            d.insert_rejected(*f, t.clone());
        }
        d
    }

    pub fn file(&self, f: DataFile) -> &[u8] {
        self.files.get(&f).map(Vec::as_slice).unwrap_or(b"")
    }

    pub fn rejected(&self, f: DataFile) -> &[u8] {
        self.rejected.get(&f).map(Vec::as_slice).unwrap_or(b"")
    }
}

pub fn config(on_damage: OnDamage) -> ServerConfig {
    ServerConfig {
        hash_memory_kib: 64,
        on_damage,
        ..ServerConfig::default()
    }
}

pub struct Run {
    pub server: Server,
    pub logs: Vec<String>,
    pub replies: BTreeMap<ConnId, String>,
    next_port: u16,
}

impl Run {
    /// Start on `folder`; every output is applied to it.
    pub fn start(folder: &mut Folder, on_damage: OnDamage) -> Result<Run, DamagedFiles> {
        let server = match Server::new(config(on_damage), &folder.data_files(), UnixMillis(T0)) {
            Ok(server) => server,
            Err(super::StartError::Damaged(damage)) => return Err(damage),
            Err(e) => panic!("the tests' settings are valid: {e}"),
        };
        let mut run = Run {
            server,
            logs: Vec::new(),
            replies: BTreeMap::new(),
            next_port: 40_000,
        };
        run.drain(folder);
        Ok(run)
    }

    /// Carry out every output as a driver with a perfect network would: writes complete at
    /// once (and are reported), hashes are computed on the spot.
    pub fn drain(&mut self, folder: &mut Folder) {
        let mut memory = HashMemory::new();
        loop {
            let mut written: BTreeMap<ConnId, usize> = BTreeMap::new();
            let mut hashed = Vec::new();
            while let Some(out) = self.server.poll_output() {
                for (conn, bytes) in out.sends() {
                    self.replies
                        .entry(conn)
                        .or_default()
                        .push_str(&String::from_utf8_lossy(bytes));
                    *written.entry(conn).or_default() += bytes.len();
                }
                match out {
                    Output::Persist(Persist::Append { file, text }) => {
                        folder.files.entry(file).or_default().extend(text)
                    }
                    Output::Persist(Persist::Replace { file, text }) => {
                        folder.files.insert(file, text);
                    }
                    Output::Persist(Persist::Reject { file, text }) => {
                        folder.rejected.entry(file).or_default().extend(text)
                    }
                    Output::Persist(Persist::Backup { name, text, .. }) => {
                        assert!(
                            folder.backups.insert(name.clone(), text).is_none(),
                            "backup {name} written twice"
                        );
                    }
                    Output::Log(l) => self.logs.extend(l.lines().map(str::to_owned)),
                    Output::Hash(job) => hashed.push(job.run(&mut memory)),
                    _ => {}
                }
            }
            if written.is_empty() && hashed.is_empty() {
                return;
            }
            for (conn, n) in written {
                self.server.handle_written(conn, n, UnixMillis(T0));
            }
            for done in hashed {
                self.server
                    .handle_input(Input::Hashed(done), UnixMillis(T0));
            }
        }
    }

    pub fn connect(&mut self, folder: &mut Folder) -> ConnId {
        self.next_port += 1;
        let peer: SocketAddr = format!("127.0.0.1:{}", self.next_port).parse().unwrap();
        let c = self.server.handle_connect(peer, UnixMillis(T0));
        self.drain(folder);
        self.replies.remove(&c);
        c
    }

    pub fn say(&mut self, folder: &mut Folder, conn: ConnId, line: &str) -> String {
        self.server
            .handle_bytes(conn, format!("{line}\n").as_bytes(), UnixMillis(T0));
        self.drain(folder);
        // Without the `* POSTED` line a `MSG` gets before its reply.
        self.replies
            .remove(&conn)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("* POSTED "))
            .collect()
    }

    /// Log in (or sign up, if `name` is new); returns the connection and the last reply.
    pub fn login(&mut self, folder: &mut Folder, name: &str, password: &str) -> (ConnId, String) {
        let c = self.connect(folder);
        let r = self.say(folder, c, name);
        if !(r.starts_with("332") || r.starts_with("333")) {
            return (c, r);
        }
        let r = self.say(folder, c, password);
        (c, r)
    }
}
