//! Uploads end to end in one process: a server core, client cores, an in-memory "disk" per
//! client and a datagram channel that can drop, all in virtual time.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::*;
use crate::server::{ConnId, DataFiles, Output, Server, ServerConfig};
use crate::store::DataFile;
use crate::transfer::unique_name;

const T0: u64 = 1_795_300_000_000;

struct Peer {
    client: Client,
    conn: ConnId,
    udp: SocketAddr,
    shown: Vec<String>,
    sources: BTreeMap<String, Vec<u8>>,
    open: BTreeMap<TransferId, String>,
    parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    saved: BTreeMap<String, Vec<u8>>,
    exit: Option<ExitStatus>,
}

struct World {
    server: Server,
    peers: Vec<Peer>,
    now: u64,
    /// Drop every n-th datagram (0: none).
    drop_every: u64,
    sent: u64,
    server_log: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut files = DataFiles::new();
        files.insert(
            DataFile::Credentials,
            "yoda jedi\nluke r2d2\nleia alderaan\n",
        );
        let server = Server::new(
            ServerConfig {
                hash_memory_kib: 64,
                rng_seed: [7; 32],
                ..ServerConfig::default()
            },
            &files,
            UnixMillis(T0),
        )
        .expect("the folder is clean");
        World {
            server,
            peers: vec![],
            now: T0,
            drop_every: 0,
            sent: 0,
            server_log: vec![],
        }
    }

    fn join(&mut self, name: &str, password: &str) -> usize {
        let i = self.peers.len();
        let udp: SocketAddr = format!("127.0.0.1:{}", 6000 + i).parse().unwrap();
        let tcp: SocketAddr = format!("127.0.0.1:{}", 7000 + i).parse().unwrap();
        let conn = self.server.handle_connect(tcp, UnixMillis(self.now));
        let config = ClientConfig {
            udp_port: Some(udp.port()),
            ..ClientConfig::default()
        };
        self.peers.push(Peer {
            client: Client::new(config, UnixMillis(self.now)),
            conn,
            udp,
            shown: vec![],
            sources: BTreeMap::new(),
            open: BTreeMap::new(),
            parts: BTreeMap::new(),
            saved: BTreeMap::new(),
            exit: None,
        });
        self.settle();
        self.type_line(i, name);
        self.type_line(i, password);
        assert_eq!(self.peers[i].client.user(), Some(name));
        i
    }

    fn type_line(&mut self, i: usize, line: &str) {
        self.peers[i]
            .client
            .handle_user_line(line, UnixMillis(self.now));
        self.settle();
    }

    /// Move bytes, datagrams and file results until nothing moves.
    fn settle(&mut self) {
        let now = UnixMillis(self.now);
        loop {
            let mut moved = false;
            while let Some(o) = self.server.poll_output() {
                match o {
                    Output::Send { conn, bytes } => {
                        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == conn) {
                            p.client.handle_server_bytes(&bytes, now);
                            moved = true;
                        }
                    }
                    Output::Log(l) => self.server_log.push(l),
                    _ => {}
                }
            }
            for i in 0..self.peers.len() {
                while let Some(o) = self.peers[i].client.poll_output() {
                    moved = true;
                    self.carry_out(i, o, now);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn carry_out(&mut self, i: usize, o: ClientOutput, now: UnixMillis) {
        match o {
            ClientOutput::Send(b) => {
                let conn = self.peers[i].conn;
                self.server.handle_bytes(conn, &b, now);
            }
            ClientOutput::Show(d) => self.peers[i].shown.push(d.text),
            ClientOutput::Prompt(_) | ClientOutput::Progress(_) => {}
            ClientOutput::Exit(s) => self.peers[i].exit = Some(s),
            ClientOutput::Transmit { to, bytes } => {
                self.sent += 1;
                if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
                    return;
                }
                let from = self.peers[i].udp;
                if let Some(p) = self.peers.iter_mut().find(|p| p.udp == to) {
                    p.client.handle_datagram(from, bytes, now);
                }
            }
            ClientOutput::InspectFile { path } => {
                let p = &mut self.peers[i];
                let r = p
                    .sources
                    .get(&path)
                    .map(|b| b.len() as u64)
                    .ok_or(FileProblem::NotFound);
                p.client.handle_inspected(r, now);
            }
            ClientOutput::File(op) => self.file_op(i, op, now),
        }
    }

    fn file_op(&mut self, i: usize, op: FileOp, now: UnixMillis) {
        let p = &mut self.peers[i];
        match op {
            FileOp::OpenSource { id, path } => {
                p.open.insert(id, path);
            }
            FileOp::Read { id, offset, len } => {
                let src = &p.sources[&p.open[&id]];
                let data = Bytes::copy_from_slice(&src[offset as usize..offset as usize + len]);
                p.client
                    .handle_file_result(id, FileResult::Data { offset, data }, now);
            }
            FileOp::CloseSource { id } => {
                p.open.remove(&id);
            }
            FileOp::CreatePart { id, name } => {
                p.parts.insert(id, (name, Vec::new()));
            }
            FileOp::Write { id, offset, data } => {
                let part = &mut p.parts.get_mut(&id).unwrap().1;
                assert_eq!(part.len() as u64, offset, "writes arrive in order");
                part.extend_from_slice(&data);
            }
            FileOp::Finish { id, name } => {
                let (_, data) = p.parts.remove(&id).unwrap();
                let saved = &p.saved;
                let name = unique_name(&name, |n| saved.contains_key(n)).unwrap();
                p.saved.insert(name.clone(), data);
                p.client
                    .handle_file_result(id, FileResult::Saved { name }, now);
            }
            FileOp::Discard { id } => {
                p.parts.remove(&id);
            }
        }
    }

    /// Run until no transfer is active (or a virtual minute passes).
    fn run_transfers(&mut self) {
        let limit = self.now + 60_000;
        while self.peers.iter().any(|p| p.client.is_transferring()) && self.now < limit {
            self.settle();
            let next = self
                .peers
                .iter()
                .filter_map(|p| p.client.poll_timeout())
                .min();
            self.now = next.map(|t| t.0.max(self.now)).unwrap_or(self.now + 1);
            for p in &mut self.peers {
                p.client.handle_timeout(UnixMillis(self.now));
            }
        }
        self.settle();
    }

    fn shown(&self, i: usize) -> String {
        self.peers[i].shown.join("\n")
    }
}

fn video(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn an_upload_arrives_whole_under_the_presenter_underscore_name() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(300_000);
    w.peers[yoda]
        .sources
        .insert("videos/clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke videos/clip.mp4");
    assert!(
        w.shown(yoda)
            .contains("Uploading clip.mp4 (293.0 KiB) to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Incoming upload: yoda sends clip.mp4 (293.0 KiB)")
    );
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert!(
        w.shown(yoda).contains("clip.mp4 has been uploaded to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Received clip.mp4 from yoda, saved as yoda_clip.mp4"),
        "{}",
        w.shown(luke)
    );
}

#[test]
fn an_upload_survives_loss_and_never_overwrites_an_existing_file() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[luke]
        .saved
        .insert("yoda_clip.mp4".into(), b"older".to_vec());
    let file = video(200_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.drop_every = 7;
    w.type_line(yoda, "UPD luke clip.mp4");
    w.run_transfers();
    assert_eq!(
        w.peers[luke].saved.get("yoda_clip.mp4"),
        Some(&b"older".to_vec())
    );
    assert_eq!(w.peers[luke].saved.get("yoda_clip (1).mp4"), Some(&file));
    assert!(w.shown(luke).contains("saved as yoda_clip (1).mp4"));
}

#[test]
fn a_client_receives_from_two_presenters_while_sending() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let leia = w.join("leia", "alderaan");
    let (a, b, c) = (video(120_000), video(90_000), video(150_000));
    w.peers[yoda].sources.insert("a.mp4".into(), a.clone());
    w.peers[leia].sources.insert("b.mp4".into(), b.clone());
    w.peers[luke].sources.insert("c.mp4".into(), c.clone());
    w.type_line(yoda, "UPD luke a.mp4");
    w.type_line(leia, "UPD luke b.mp4");
    w.type_line(luke, "UPD yoda c.mp4");
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&a));
    assert_eq!(w.peers[luke].saved.get("leia_b.mp4"), Some(&b));
    assert_eq!(w.peers[yoda].saved.get("luke_c.mp4"), Some(&c));
}

#[test]
fn a_missing_file_or_unsafe_name_is_refused_before_asking_the_server() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    w.join("luke", "r2d2");
    w.type_line(yoda, "UPD luke nothere.mp4");
    assert!(
        w.shown(yoda)
            .contains("Cannot upload nothere.mp4: no such file"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(yoda, "UPD luke videos/");
    assert!(
        w.shown(yoda).contains("Cannot upload videos/"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(yoda, "UPD luke");
    assert!(
        w.shown(yoda).contains("Usage: UPD user file"),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.server_log_has("asked to upload"));
}

#[test]
fn an_upload_to_an_offline_user_is_refused_with_a_reason() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    w.peers[yoda].sources.insert("a.mp4".into(), video(10));
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(
        w.shown(yoda).contains("luke is offline"),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.peers[yoda].client.is_transferring());
}

#[test]
fn when_the_audience_vanishes_the_presenter_gives_up_and_says_why() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(500_000));
    w.type_line(yoda, "UPD luke a.mp4");
    // luke's machine is unplugged: every datagram from now on is lost.
    w.drop_every = 1;
    w.run_transfers();
    assert!(
        w.shown(yoda).contains("Upload of a.mp4 to luke failed"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke).contains("Upload of a.mp4 from yoda failed"),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );
}

impl World {
    fn server_log_has(&self, needle: &str) -> bool {
        self.server_log.iter().any(|l| l.contains(needle))
    }
}

#[test]
fn out_waits_for_running_transfers_then_logs_out() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(250_000);
    w.peers[yoda]
        .sources
        .insert("clip.mp4".into(), file.clone());
    w.type_line(yoda, "UPD luke clip.mp4");
    w.type_line(yoda, "OUT");
    assert!(
        w.shown(yoda)
            .contains("Logging out once the running transfers finish")
    );
    assert_eq!(w.peers[yoda].exit, None);
    w.run_transfers();
    assert_eq!(w.peers[luke].saved.get("yoda_clip.mp4"), Some(&file));
    assert_eq!(w.peers[yoda].exit, Some(ExitStatus::LoggedOut));
}
