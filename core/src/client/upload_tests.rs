//! Uploads end to end in one process: a server core, client cores, an in-memory "disk" per
//! client and seeded datagram paths between the clients (latency, optional loss), all in
//! virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;

use super::*;
use crate::server::{ConnId, DataFiles, Output, Server, ServerConfig};
use crate::store::DataFile;
use crate::transfer::netem::{Netem, NetemConfig};

const T0: u64 = 1_795_300_000_000;

struct Peer {
    client: Client,
    conn: ConnId,
    udp: SocketAddr,
    shown: Vec<String>,
    sources: BTreeMap<String, Vec<u8>>,
    /// Paths whose reads fail (a disk error under a running upload).
    failing_reads: BTreeSet<String>,
    /// The download folder cannot take new files (missing, full, read-only).
    failing_creates: bool,
    /// Writes to part files fail (the disk filled up).
    failing_writes: bool,
    open: BTreeMap<TransferId, String>,
    parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    saved: BTreeMap<String, Vec<u8>>,
    exit: Option<ExitStatus>,
}

struct World {
    server: Server,
    peers: Vec<Peer>,
    now: u64,
    /// What every path between two clients does (one seeded `Netem` per ordered pair).
    link: NetemConfig,
    links: BTreeMap<(usize, usize), Netem>,
    /// Drop every n-th datagram (0: none).
    drop_every: u64,
    /// Drop the next this many datagrams of this exact length (a `Done` is 36 bytes).
    drop_sized: Option<(usize, u32)>,
    sent: u64,
    server_log: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut files = DataFiles::new();
        files.insert(
            DataFile::Credentials,
            "yoda jedi\nluke r2d2\nleia alderaan\nhans solo\nobiwan kenobi\n",
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
            link: NetemConfig {
                latency_ms: 5,
                ..NetemConfig::default()
            },
            links: BTreeMap::new(),
            drop_every: 0,
            drop_sized: None,
            sent: 0,
            server_log: vec![],
        }
    }

    fn join(&mut self, name: &str, password: &str) -> usize {
        self.join_with(name, password, TransferConfig::default())
    }

    fn join_with(&mut self, name: &str, password: &str, transfer: TransferConfig) -> usize {
        let i = self.peers.len();
        let udp: SocketAddr = format!("127.0.0.1:{}", 6000 + i).parse().unwrap();
        let tcp: SocketAddr = format!("127.0.0.1:{}", 7000 + i).parse().unwrap();
        let conn = self.server.handle_connect(tcp, UnixMillis(self.now));
        let config = ClientConfig {
            udp_port: Some(udp.port()),
            transfer,
            ..ClientConfig::default()
        };
        self.peers.push(Peer {
            client: Client::new(config, UnixMillis(self.now)),
            conn,
            udp,
            shown: vec![],
            sources: BTreeMap::new(),
            failing_reads: BTreeSet::new(),
            failing_creates: false,
            failing_writes: false,
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
            .handle_input(Input::UserLine(line.into()), UnixMillis(self.now));
        self.settle();
    }

    /// Move bytes, due datagrams and file results until nothing moves.
    fn settle(&mut self) {
        let now = UnixMillis(self.now);
        loop {
            let mut moved = false;
            while let Some(o) = self.server.poll_output() {
                match o {
                    Output::Send { conn, bytes } => {
                        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == conn) {
                            p.client.handle_input(Input::ServerBytes(bytes), now);
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
            for (&(from, to), link) in self.links.iter_mut() {
                while let Some(d) = link.poll_output(now) {
                    moved = true;
                    // A client that exited is a process that ended: its socket is gone.
                    if self.peers[to].exit.is_some() {
                        continue;
                    }
                    let from = self.peers[from].udp;
                    let input = Input::Datagram { from, bytes: d };
                    self.peers[to].client.handle_input(input, now);
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
            ClientOutput::Prompt(_) | ClientOutput::Progress(_) | ClientOutput::PinServer(_) => {}
            ClientOutput::Exit(s) => self.peers[i].exit = Some(s),
            ClientOutput::Transmit { to, bytes } => {
                self.sent += 1;
                if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
                    return;
                }
                if let Some((len, n)) = self.drop_sized.as_mut()
                    && *len == bytes.len()
                    && *n > 0
                {
                    *n -= 1;
                    return;
                }
                if let Some(j) = self.peers.iter().position(|p| p.udp == to) {
                    let config = NetemConfig {
                        seed: self.link.seed ^ (i as u64) << 8 ^ j as u64,
                        ..self.link.clone()
                    };
                    self.links
                        .entry((i, j))
                        .or_insert_with(|| Netem::new(config))
                        .handle_input(bytes, now);
                }
            }
            ClientOutput::InspectFile { path } => {
                let p = &mut self.peers[i];
                let r = p
                    .sources
                    .get(&path)
                    .map(|b| b.len() as u64)
                    .ok_or(FileProblem::NotFound);
                p.client.handle_input(Input::Inspected(r), now);
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
                let path = &p.open[&id];
                let result = if p.failing_reads.contains(path) {
                    FileResult::Failed(FileProblem::Other("input/output error".into()))
                } else {
                    let src = &p.sources[path];
                    let data = Bytes::copy_from_slice(&src[offset as usize..offset as usize + len]);
                    FileResult::Data { offset, data }
                };
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::CloseSource { id } => {
                p.open.remove(&id);
            }
            FileOp::CreatePart { id, .. } if p.failing_creates => {
                let result = FileResult::Failed(FileProblem::PermissionDenied);
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::Write { id, .. } if p.failing_writes => {
                let result = FileResult::Failed(FileProblem::Other("no space left".into()));
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::CreatePart { id, part } => {
                assert!(crate::transfer::is_part_name(&part), "{part}");
                // `<saved name>.<id>.part`: the test watches downloads by their saved name.
                let name = part.rsplitn(3, '.').nth(2).unwrap_or_default().to_string();
                p.parts.insert(id, (name, Vec::new()));
            }
            FileOp::RemoveStaleParts => {}
            FileOp::Write { id, offset, data } => {
                let part = &mut p.parts.get_mut(&id).unwrap().1;
                assert_eq!(part.len() as u64, offset, "writes arrive in order");
                part.extend_from_slice(&data);
            }
            FileOp::Finish { id, name } => {
                // Exactly the name offered, never over an existing file.
                let result = if p.saved.contains_key(&name) {
                    FileResult::NameTaken
                } else {
                    let (_, data) = p.parts.remove(&id).unwrap();
                    p.saved.insert(name.clone(), data);
                    FileResult::Saved { name }
                };
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::Discard { id } => {
                p.parts.remove(&id);
            }
        }
    }

    /// Advance virtual time to the next wake-up of any client or path and run the timers.
    fn tick(&mut self) {
        let next = self
            .peers
            .iter()
            .filter_map(|p| p.client.poll_timeout())
            .chain(self.links.values().filter_map(Netem::poll_timeout))
            .min();
        self.now = next.map(|t| t.0.max(self.now + 1)).unwrap_or(self.now + 1);
        for p in self.peers.iter_mut().filter(|p| p.exit.is_none()) {
            p.client.handle_input(Input::Timeout, UnixMillis(self.now));
        }
    }

    /// Run until no transfer is active (or a virtual minute passes).
    fn run_transfers(&mut self) {
        let limit = self.now + 60_000;
        self.run_until(limit, |w| {
            !w.peers.iter().any(|p| p.client.is_transferring())
        });
    }

    /// Run until `done` holds or virtual time reaches `limit` (ms since the epoch).
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&World) -> bool) {
        self.settle();
        while !done(self) && self.now < limit {
            self.tick();
            self.settle();
        }
    }

    fn shown(&self, i: usize) -> String {
        self.peers[i].shown.join("\n")
    }

    fn count_shown(&self, i: usize, needle: &str) -> usize {
        self.peers[i]
            .shown
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Type `UPD to path` at peer `i` and wait until it is over on both sides.
    fn upload(&mut self, i: usize, to: &str, path: &str) {
        self.type_line(i, &format!("UPD {to} {path}"));
        self.run_transfers();
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

impl World {
    /// Bytes of the download saved (or being saved) as `name` at peer `i`.
    fn received(&self, i: usize, name: &str) -> usize {
        let p = &self.peers[i];
        p.saved.get(name).map(Vec::len).unwrap_or_else(|| {
            p.parts
                .values()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, d)| d.len())
        })
    }
}

#[test]
fn fifty_uploads_in_a_row_then_twenty_received_on_one_client_session() {
    let mut w = World::new();
    w.link.loss = 0.02;
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    for n in 0..50 {
        let file = video(20_000 + n * 997);
        w.peers[yoda]
            .sources
            .insert("clip.mp4".into(), file.clone());
        w.upload(yoda, "luke", "clip.mp4");
        let name = match n {
            0 => "yoda_clip.mp4".to_string(),
            n => format!("yoda_clip ({n}).mp4"),
        };
        assert!(
            w.peers[luke].saved.get(&name) == Some(&file),
            "upload {} did not arrive as {name}:\n{}",
            n + 1,
            w.shown(yoda)
        );
    }
    assert_eq!(
        w.count_shown(yoda, "clip.mp4 has been uploaded to luke"),
        50
    );
    for n in 0..20 {
        let file = video(30_000 + n * 131);
        let path = format!("reply{n}.mp4");
        w.peers[luke].sources.insert(path.clone(), file.clone());
        w.upload(luke, "yoda", &path);
        assert!(
            w.peers[yoda].saved.get(&format!("luke_reply{n}.mp4")) == Some(&file),
            "download {} did not arrive:\n{}",
            n + 1,
            w.shown(yoda)
        );
    }
    assert_eq!(w.count_shown(yoda, "Received reply"), 20);
    assert_eq!(w.count_shown(yoda, "failed"), 0, "{}", w.shown(yoda));
    assert!(!w.peers[yoda].client.is_transferring());
}

#[test]
fn uploads_in_both_directions_at_once_arrive_again_and_again() {
    let mut w = World::new();
    w.link.loss = 0.05;
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    for round in 0..5 {
        let (a, b) = (video(150_000 + round), video(120_000 + round * 3));
        w.peers[yoda]
            .sources
            .insert(format!("a{round}.mp4"), a.clone());
        w.peers[luke]
            .sources
            .insert(format!("b{round}.mp4"), b.clone());
        w.type_line(yoda, &format!("UPD luke a{round}.mp4"));
        w.type_line(luke, &format!("UPD yoda b{round}.mp4"));
        w.run_transfers();
        assert_eq!(
            w.peers[luke].saved.get(&format!("yoda_a{round}.mp4")),
            Some(&a)
        );
        assert_eq!(
            w.peers[yoda].saved.get(&format!("luke_b{round}.mp4")),
            Some(&b)
        );
    }
}

#[test]
fn eight_concurrent_transfers_on_one_socket_each_progress_every_round_trip() {
    let mut w = World::new();
    // Each path is a 2 MB/s link, so a 600 kB file takes many round trips.
    w.link.rate = Some(2_000_000);
    w.link.queue_bytes = 1 << 20;
    let yoda = w.join("yoda", "jedi");
    let others = [("luke", "r2d2"), ("leia", "alderaan"), ("hans", "solo")];
    let mut peers = vec![];
    for (name, password) in others.into_iter().chain([("obiwan", "kenobi")]) {
        peers.push((w.join(name, password), name));
    }
    let size = 600_000;
    // (receiving peer, saved name)
    let mut watched = vec![];
    for &(i, name) in &peers {
        w.peers[yoda]
            .sources
            .insert(format!("to_{name}.mp4"), video(size + i));
        w.peers[i]
            .sources
            .insert(format!("from_{name}.mp4"), video(size - i));
        w.type_line(yoda, &format!("UPD {name} to_{name}.mp4"));
        w.type_line(i, &format!("UPD yoda from_{name}.mp4"));
        watched.push((i, format!("yoda_to_{name}.mp4"), size + i));
        watched.push((yoda, format!("{name}_from_{name}.mp4"), size - i));
    }
    let rtt = 2 * w.link.latency_ms;
    let mut last = vec![0usize; watched.len()];
    let mut round = 0;
    while watched.iter().any(|(i, n, len)| w.received(*i, n) < *len) {
        let until = w.now + rtt;
        w.run_until(until, |w| w.now >= until);
        round += 1;
        for (k, (i, name, len)) in watched.iter().enumerate() {
            let got = w.received(*i, name);
            // The first rounds open the transfers (UPD, Hello, the first ACK).
            if round > 3 && last[k] < *len {
                assert!(
                    got > last[k],
                    "{name} made no progress in round trip {round} ({got} of {len} bytes)"
                );
            }
            last[k] = got;
        }
        assert!(round < 1_000, "the transfers never finished");
    }
    w.run_transfers();
    for &(i, name) in &peers {
        assert_eq!(
            w.peers[i].saved.get(&format!("yoda_to_{name}.mp4")),
            Some(&video(size + i))
        );
        assert_eq!(
            w.peers[yoda].saved.get(&format!("{name}_from_{name}.mp4")),
            Some(&video(size - i))
        );
    }
}

#[test]
fn a_new_upload_works_right_after_one_that_was_refused_aborted_or_failed() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(80_000);
    w.peers[yoda].sources.insert("a.mp4".into(), file.clone());

    // Refused by the server: luke blocks yoda.
    w.type_line(luke, "BLK yoda");
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(
        w.shown(yoda).contains("luke has blocked you"),
        "{}",
        w.shown(yoda)
    );
    w.type_line(luke, "UNB yoda");
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&file));

    // Aborted: reading the source fails under the running upload.
    w.peers[yoda]
        .sources
        .insert("broken.mp4".into(), video(500_000));
    w.peers[yoda].failing_reads.insert("broken.mp4".into());
    w.upload(yoda, "luke", "broken.mp4");
    assert!(
        w.shown(yoda)
            .contains("Cannot read broken.mp4 for the upload to luke: input/output error"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.shown(luke)
            .contains("Upload of broken.mp4 from yoda failed"),
        "{}",
        w.shown(luke)
    );
    assert!(w.peers[luke].parts.is_empty());
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a (1).mp4"), Some(&file));

    // Failed: the path loses everything until both sides give up; then it heals.
    w.drop_every = 1;
    w.upload(yoda, "luke", "a.mp4");
    assert!(
        w.shown(yoda).contains("Upload of a.mp4 to luke failed"),
        "{}",
        w.shown(yoda)
    );
    w.drop_every = 0;
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a (2).mp4"), Some(&file));
    assert_eq!(w.count_shown(yoda, "a.mp4 has been uploaded to luke"), 3);
}

#[test]
fn timers_run_after_inputs_so_a_flood_of_forged_datagrams_cannot_keep_a_dead_download_alive() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(300_000));
    // yoda's machine is unplugged before anything gets through.
    w.drop_every = 1;
    w.type_line(yoda, "UPD luke a.mp4");
    assert!(w.peers[luke].client.is_transferring());
    // Then luke's socket gets a forged datagram every millisecond, and the driver hands it
    // nothing else: never an `Input::Timeout`.
    let from: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    for k in 0..12_000u64 {
        w.now += 1;
        let mut forged = b"HU\x01\x02".to_vec();
        forged.extend_from_slice(&k.to_be_bytes());
        forged.extend_from_slice(&[0xA5; 60]);
        let input = Input::Datagram {
            from,
            bytes: Bytes::from(forged),
        };
        w.peers[luke].client.handle_input(input, UnixMillis(w.now));
        while let Some(o) = w.peers[luke].client.poll_output() {
            w.carry_out(luke, o, UnixMillis(w.now));
        }
    }
    assert!(
        w.shown(luke).contains("Upload of a.mp4 from yoda failed"),
        "{}",
        w.shown(luke)
    );
    assert!(!w.peers[luke].client.is_transferring());
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );
}

#[test]
fn a_client_takes_a_bounded_number_of_downloads_and_tells_the_next_presenter_why_at_once() {
    let mut w = World::new();
    let limited = TransferConfig {
        max_incoming: 2,
        ..TransferConfig::default()
    };
    let luke = w.join_with("luke", "r2d2", limited);
    let presenters: Vec<usize> = [("yoda", "jedi"), ("leia", "alderaan"), ("hans", "solo")]
        .into_iter()
        .map(|(n, p)| w.join(n, p))
        .collect();
    for &i in &presenters {
        w.peers[i]
            .sources
            .insert("big.mp4".into(), video(2_000_000));
    }
    w.link.rate = Some(1_000_000);
    for &i in &presenters {
        w.type_line(i, "UPD luke big.mp4");
    }
    let asked = w.now;
    let hans = presenters[2];
    w.run_until(w.now + 5_000, |w| {
        w.shown(hans).contains("Upload of big.mp4 to luke failed")
    });
    assert!(
        w.shown(hans).contains(
            "luke's client is receiving too many files at once; try again when one has finished"
        ),
        "{}",
        w.shown(hans)
    );
    assert!(w.now - asked < 1_000, "told at once, not after a timeout");
    assert!(
        w.shown(luke)
            .contains("Refused the upload of big.mp4 from hans: already receiving 2 files at once"),
        "{}",
        w.shown(luke)
    );
    assert!(
        w.peers[luke].parts.len() <= 2,
        "no part file for the refused one"
    );
    w.run_transfers();
    assert!(w.peers[luke].saved.contains_key("yoda_big.mp4"));
    assert!(w.peers[luke].saved.contains_key("leia_big.mp4"));
    // Once they are done, hans's next try works.
    w.upload(hans, "luke", "big.mp4");
    assert_eq!(
        w.peers[luke].saved.get("hans_big.mp4"),
        Some(&video(2_000_000))
    );
}

#[test]
fn a_presenter_is_told_at_once_when_the_audience_cannot_create_or_write_the_file() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    w.peers[yoda].sources.insert("a.mp4".into(), video(500_000));
    w.peers[luke].failing_creates = true;
    w.type_line(yoda, "UPD luke a.mp4");
    let asked = w.now;
    w.run_until(w.now + 20_000, |w| w.shown(yoda).contains("failed"));
    assert!(
        w.shown(yoda)
            .contains("Upload of a.mp4 to luke failed: luke's client cannot save the file"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.now - asked < 1_000,
        "told at once, not after the idle timeout"
    );
    assert!(
        w.shown(luke)
            .contains("Cannot save yoda_a.mp4 from yoda: permission denied")
    );

    // Writing fails half way (the disk filled up).
    w.peers[luke].failing_creates = false;
    w.peers[luke].failing_writes = true;
    w.type_line(yoda, "UPD luke a.mp4");
    let asked = w.now;
    w.run_until(w.now + 20_000, |w| w.count_shown(yoda, "failed") == 2);
    assert!(w.now - asked < 1_000, "told at once");
    assert_eq!(
        w.count_shown(yoda, "luke's client cannot save the file"),
        2,
        "{}",
        w.shown(yoda)
    );
    assert!(
        w.peers[luke].parts.is_empty(),
        "the partial file is removed"
    );

    // And when the disk is fine again, the next upload works.
    w.peers[luke].failing_writes = false;
    w.upload(yoda, "luke", "a.mp4");
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&video(500_000)));
}

#[test]
fn a_presenter_runs_a_bounded_number_of_uploads_and_is_told_before_the_server_is_asked() {
    let mut w = World::new();
    let limited = TransferConfig {
        max_outgoing: 2,
        ..TransferConfig::default()
    };
    let yoda = w.join_with("yoda", "jedi", limited);
    w.join("luke", "r2d2");
    w.link.rate = Some(1_000_000);
    for n in 0..3 {
        w.peers[yoda]
            .sources
            .insert(format!("{n}.mp4"), video(1_000_000));
        w.type_line(yoda, &format!("UPD luke {n}.mp4"));
    }
    assert!(
        w.shown(yoda).contains(
            "Cannot upload 2.mp4: 2 uploads are running already (the most at once); wait for one to finish"
        ),
        "{}",
        w.shown(yoda)
    );
    assert!(!w.server_log_has("asked to upload 2.mp4"));
    w.run_transfers();
    w.upload(yoda, "luke", "2.mp4");
    assert_eq!(w.count_shown(yoda, "has been uploaded to luke"), 3);
}

#[test]
fn an_audience_that_logs_out_right_after_a_download_still_confirms_it_to_the_presenter() {
    let mut w = World::new();
    let yoda = w.join("yoda", "jedi");
    let luke = w.join("luke", "r2d2");
    let file = video(200_000);
    w.peers[yoda].sources.insert("a.mp4".into(), file.clone());
    // luke's first two confirmations (`Done`, 36 bytes) are lost on the way.
    w.drop_sized = Some((36, 2));
    w.type_line(yoda, "UPD luke a.mp4");
    w.run_until(w.now + 10_000, |w| w.shown(luke).contains("Received a.mp4"));
    assert_eq!(w.peers[luke].saved.get("yoda_a.mp4"), Some(&file));
    // luke leaves at once; its client stays until yoda surely knows.
    w.type_line(luke, "OUT");
    w.run_until(w.now + 10_000, |w| w.peers[luke].exit.is_some());
    assert_eq!(w.peers[luke].exit, Some(ExitStatus::LoggedOut));
    w.run_transfers();
    assert!(
        w.shown(yoda).contains("a.mp4 has been uploaded to luke"),
        "{}",
        w.shown(yoda)
    );
    assert!(
        !w.shown(luke).contains("Logging out once"),
        "nothing was running"
    );
}

#[test]
fn three_thousand_pipelined_announcements_open_at_most_the_limit_of_part_files() {
    // A hostile (or broken) server pushes 3,000 upload announcements at once.
    let mut w = World::new();
    let luke = w.join("luke", "r2d2");
    let now = UnixMillis(w.now);
    let mut lines = String::new();
    for i in 0..3_000u64 {
        let grant = crate::proto::upload::UploadGrant {
            id: TransferId(0x1000 + i),
            secret: crate::transfer::TransferSecret([i as u8; 32]),
            peer: "127.0.0.1:9000".parse().unwrap(),
            user: UserName::new("yoda").unwrap(),
            size: 1_000_000,
            name: format!("v{i}.mp4"),
        };
        lines.push_str(&format!("* {grant}\n"));
    }
    let p = &mut w.peers[luke];
    p.client
        .handle_input(Input::ServerBytes(Bytes::from(lines)), now);
    let (mut creates, mut refusals, mut aborts) = (0, 0, 0);
    while let Some(o) = p.client.poll_output() {
        match o {
            ClientOutput::File(FileOp::CreatePart { .. }) => creates += 1,
            ClientOutput::Show(d) if d.text.contains("already receiving 16 files at once") => {
                refusals += 1
            }
            ClientOutput::Transmit { .. } => aborts += 1,
            _ => {}
        }
    }
    let max = TransferConfig::default().max_incoming;
    assert_eq!(creates, max, "one part file per accepted download, no more");
    assert_eq!(refusals, 3_000 - max);
    assert_eq!(aborts, 3_000 - max, "each refused presenter is told");
    // The refusals linger briefly to repeat themselves, then are gone.
    assert_eq!(w.peers[luke].client.transfers.held(), 3_000);
    w.run_until(w.now + 5_000, |_| false);
    assert_eq!(w.peers[luke].client.transfers.held(), max);
}
