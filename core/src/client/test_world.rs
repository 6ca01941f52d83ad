//! A world for client tests: a server core, client cores, an in-memory "disk" per client and
//! seeded datagram paths between the clients (latency, optional loss), all in virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;

use super::*;
use crate::server::{ConnId, DataFiles, Output, Server, ServerConfig};
use crate::store::DataFile;
use crate::transfer::netem::{Netem, NetemConfig};

/// Datagrams one send of a peer's socket takes, as a socket with UDP GSO would say: the
/// transfers batch, and [`World::carry_out`] splits each batch into its datagrams.
const WORLD_GSO_SEGMENTS: usize = 16;

pub(super) const T0: u64 = 1_795_300_000_000;

pub(super) struct Peer {
    pub(super) client: Client,
    pub(super) conn: ConnId,
    pub(super) udp: SocketAddr,
    pub(super) shown: Vec<String>,
    /// Every progress report, with the virtual time it came at.
    pub(super) progress: Vec<(u64, Progress)>,
    pub(super) sources: BTreeMap<String, Vec<u8>>,
    /// Paths whose reads fail (a disk error under a running upload).
    pub(super) failing_reads: BTreeSet<String>,
    /// The download folder cannot take new files (missing, full, read-only).
    pub(super) failing_creates: bool,
    /// Writes to part files fail (the disk filled up).
    pub(super) failing_writes: bool,
    pub(super) open: BTreeMap<TransferId, String>,
    pub(super) parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    /// The part file name of each running download.
    pub(super) part_names: BTreeMap<TransferId, String>,
    /// Parts kept for resuming, by part file name: their bytes and their sidecar.
    pub(super) kept: BTreeMap<String, (Vec<u8>, Bytes)>,
    /// Reads of kept parts fail (the disk went bad under them).
    pub(super) failing_part_reads: bool,
    pub(super) saved: BTreeMap<String, Vec<u8>>,
    pub(super) exit: Option<ExitStatus>,
    /// Command prompts shown: each lets a person (or a script) type one line.
    pub(super) prompts: usize,
    /// File checks are held here, unanswered, while this is on (a slow disk).
    pub(super) hold_inspections: bool,
    pub(super) held_inspections: Vec<String>,
    /// The process was killed: it sends nothing more, on either link.
    pub(super) crashed: bool,
    /// Looking for kept parts hangs while this is on (a slow download folder).
    pub(super) hold_finds: bool,
    pub(super) held_finds: Vec<FileOp>,
}

impl Peer {
    /// What the driver's file check says of `path`.
    fn inspect(&self, path: &str) -> Result<u64, FileProblem> {
        self.sources
            .get(path)
            .map(|b| b.len() as u64)
            .ok_or(FileProblem::NotFound)
    }
}

pub(super) struct World {
    pub(super) server: Server,
    pub(super) peers: Vec<Peer>,
    pub(super) now: u64,
    /// What every path between two clients does (one seeded `Netem` per ordered pair).
    pub(super) link: NetemConfig,
    pub(super) links: BTreeMap<(usize, usize), Netem>,
    /// Drop every n-th datagram (0: none).
    pub(super) drop_every: u64,
    /// Drop the next this many datagrams of this exact length (a `Done` is 44 bytes).
    pub(super) drop_sized: Option<(usize, u32)>,
    pub(super) sent: u64,
    pub(super) server_log: Vec<String>,
}

impl World {
    /// Bytes of running download `id` that peer `i` has in order, written or not yet (the
    /// receiver hands its writes on a block at a time).
    pub(super) fn in_order(&self, i: usize, id: TransferId) -> usize {
        let p = &self.peers[i];
        p.client
            .transfers
            .set()
            .received_in_order(id)
            .map_or_else(|| p.parts.get(&id).map_or(0, |d| d.1.len()), |n| n as usize)
    }

    pub(super) fn new() -> Self {
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

    pub(super) fn join(&mut self, name: &str, password: &str) -> usize {
        self.join_with(name, password, TransferConfig::default())
    }

    pub(super) fn join_with(
        &mut self,
        name: &str,
        password: &str,
        transfer: TransferConfig,
    ) -> usize {
        self.join_configured(
            name,
            password,
            ClientConfig {
                transfer,
                ..ClientConfig::default()
            },
        )
    }

    /// Join with this client configuration (its UDP port is the world's; its generator seed
    /// its own).
    pub(super) fn join_configured(
        &mut self,
        name: &str,
        password: &str,
        config: ClientConfig,
    ) -> usize {
        let i = self.peers.len();
        let udp: SocketAddr = format!("127.0.0.1:{}", 6000 + i).parse().unwrap();
        let tcp: SocketAddr = format!("127.0.0.1:{}", 7000 + i).parse().unwrap();
        let conn = self.server.handle_connect(tcp, UnixMillis(self.now));
        let config = ClientConfig {
            udp_port: Some(udp.port()),
            rng_seed: [i as u8 + 1; 32],
            ..config
        };
        let mut client = Client::new(config, UnixMillis(self.now));
        client.set_max_segments(WORLD_GSO_SEGMENTS);
        self.peers.push(Peer {
            client,
            conn,
            udp,
            shown: vec![],
            progress: vec![],
            sources: BTreeMap::new(),
            failing_reads: BTreeSet::new(),
            failing_creates: false,
            failing_writes: false,
            open: BTreeMap::new(),
            parts: BTreeMap::new(),
            part_names: BTreeMap::new(),
            kept: BTreeMap::new(),
            failing_part_reads: false,
            saved: BTreeMap::new(),
            exit: None,
            prompts: 0,
            hold_inspections: false,
            held_inspections: Vec::new(),
            crashed: false,
            hold_finds: false,
            held_finds: Vec::new(),
        });
        self.settle();
        self.type_line(i, name);
        self.type_line(i, password);
        assert_eq!(self.peers[i].client.user(), Some(name));
        i
    }

    /// Peer `i`'s process is killed (`kill -9`): its sockets close, the server sees its
    /// connection end, and it says nothing more.
    pub(super) fn crash(&mut self, i: usize) {
        self.peers[i].crashed = true;
        self.peers[i].exit = Some(ExitStatus::ConnectionLost);
        self.server
            .handle_disconnect(self.peers[i].conn, UnixMillis(self.now));
        self.settle();
    }

    /// Answer the file checks held so far.
    pub(super) fn release_inspections(&mut self, i: usize) {
        self.peers[i].hold_inspections = false;
        for path in std::mem::take(&mut self.peers[i].held_inspections) {
            let r = self.peers[i].inspect(&path);
            self.peers[i]
                .client
                .handle_input(Input::Inspected(r), UnixMillis(self.now));
        }
        self.settle();
    }

    pub(super) fn type_line(&mut self, i: usize, line: &str) {
        self.peers[i]
            .client
            .handle_input(Input::UserLine(line.into()), UnixMillis(self.now));
        self.settle();
    }

    /// Move bytes, due datagrams and file results until nothing moves.
    pub(super) fn settle(&mut self) {
        let now = UnixMillis(self.now);
        loop {
            let mut moved = false;
            while let Some(o) = self.server.poll_output() {
                match o {
                    Output::Send { conn, bytes } => {
                        if let Some(p) =
                            self.peers.iter_mut().find(|p| p.conn == conn && !p.crashed)
                        {
                            p.client.handle_input(Input::ServerBytes(bytes), now);
                            moved = true;
                        }
                    }
                    // A fanned-out event (a post, a presence change): to every member.
                    Output::Broadcast { audience, bytes } => {
                        for p in self
                            .peers
                            .iter_mut()
                            .filter(|p| !p.crashed && audience.contains(p.conn))
                        {
                            p.client
                                .handle_input(Input::ServerBytes(bytes.clone()), now);
                            moved = true;
                        }
                    }
                    Output::Log(l) => self.server_log.push(l),
                    _ => {}
                }
            }
            for i in 0..self.peers.len() {
                if self.peers[i].crashed {
                    continue;
                }
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

    pub(super) fn carry_out(&mut self, i: usize, o: ClientOutput, now: UnixMillis) {
        match o {
            ClientOutput::Send(b) => {
                let conn = self.peers[i].conn;
                self.server.handle_bytes(conn, &b, now);
            }
            ClientOutput::Show(d) => self.peers[i].shown.push(d.text),
            ClientOutput::Progress(p) => self.peers[i].progress.push((now.0, p)),
            ClientOutput::Prompt(Prompt::Command(_)) => self.peers[i].prompts += 1,
            ClientOutput::Prompt(_) | ClientOutput::PinServer(_) | ClientOutput::Users(_) => {}
            ClientOutput::Exit(s) => self.peers[i].exit = Some(s),
            ClientOutput::Transmit {
                to,
                bytes,
                segment_size,
            } => {
                let seg = segment_size.max(1);
                assert!(
                    bytes.len().div_ceil(seg) <= WORLD_GSO_SEGMENTS,
                    "a batch larger than the socket takes"
                );
                // Each datagram of the batch on its own, as the kernel splits a GSO send.
                for at in (0..bytes.len()).step_by(seg) {
                    let d = bytes.slice(at..(at + seg).min(bytes.len()));
                    self.deliver(i, to, d, now);
                }
            }
            ClientOutput::InspectFile { path } if self.peers[i].hold_inspections => {
                self.peers[i].held_inspections.push(path);
            }
            ClientOutput::InspectFile { path } => {
                let r = self.peers[i].inspect(&path);
                self.peers[i].client.handle_input(Input::Inspected(r), now);
            }
            ClientOutput::File(op) => self.file_op(i, op, now),
        }
    }

    /// One datagram from peer `i` to `to` enters the network.
    fn deliver(&mut self, i: usize, to: SocketAddr, bytes: Bytes, now: UnixMillis) {
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

    /// Answer the searches for kept parts held so far.
    pub(super) fn release_finds(&mut self, i: usize) {
        self.peers[i].hold_finds = false;
        for op in std::mem::take(&mut self.peers[i].held_finds) {
            self.file_op(i, op, UnixMillis(self.now));
        }
        self.settle();
    }

    pub(super) fn file_op(&mut self, i: usize, op: FileOp, now: UnixMillis) {
        let p = &mut self.peers[i];
        if p.hold_finds && matches!(op, FileOp::FindResumable { .. }) {
            p.held_finds.push(op);
            return;
        }
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
                p.part_names.insert(id, part);
            }
            FileOp::RemoveStaleParts { .. } => {}
            FileOp::Write { id, offset, data } => {
                let part = &mut p.parts.get_mut(&id).unwrap().1;
                assert!(offset as usize <= part.len(), "writes leave no holes");
                part.truncate(offset as usize);
                part.extend_from_slice(&data);
            }
            FileOp::KeepPart { id, held, sidecar } => {
                let (_, mut data) = p.parts.remove(&id).unwrap();
                data.truncate(held as usize);
                let name = p.part_names.remove(&id).unwrap();
                p.kept.insert(name, (data, sidecar));
            }
            FileOp::FindResumable { id, saved_as } => {
                let found = p
                    .kept
                    .iter()
                    .filter(|(name, _)| crate::transfer::is_part_of(name, &saved_as))
                    .map(|(name, (data, sidecar))| KeptPart {
                        part: name.clone(),
                        len: data.len() as u64,
                        sidecar: sidecar.clone(),
                    })
                    .collect();
                let result = FileResult::Resumable(found);
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::OpenPart { id, part, keep } => {
                let result = match p.kept.remove(&part) {
                    Some((mut data, _)) => {
                        data.truncate(keep as usize);
                        let len = data.len() as u64;
                        let name = part.rsplitn(3, '.').nth(2).unwrap_or_default().to_string();
                        p.parts.insert(id, (name, data));
                        p.part_names.insert(id, part);
                        FileResult::Resumed { len }
                    }
                    None => FileResult::Failed(FileProblem::NotFound),
                };
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::ReadPart { id, offset, len } => {
                let data = &p.parts[&id].1;
                let range = offset as usize..offset as usize + len;
                let result = match data.get(range) {
                    Some(bytes) if !p.failing_part_reads => FileResult::Data {
                        offset,
                        data: Bytes::copy_from_slice(bytes),
                    },
                    _ => FileResult::Failed(FileProblem::Other("input/output error".into())),
                };
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::Finish { id, name } => {
                // Exactly the name offered, never over an existing file.
                let result = if p.saved.contains_key(&name) {
                    FileResult::NameTaken
                } else {
                    let (_, data) = p.parts.remove(&id).unwrap();
                    p.part_names.remove(&id);
                    p.saved.insert(name.clone(), data);
                    FileResult::Saved { name }
                };
                p.client.handle_input(Input::File { id, result }, now);
            }
            FileOp::Discard { id } => {
                p.parts.remove(&id);
                p.part_names.remove(&id);
            }
        }
    }

    /// Advance virtual time to the next wake-up of any client or path and run the timers.
    pub(super) fn tick(&mut self) {
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
    pub(super) fn run_transfers(&mut self) {
        let limit = self.now + 60_000;
        self.run_until(limit, |w| {
            !w.peers.iter().any(|p| p.client.is_transferring())
        });
    }

    /// Run until `done` holds or virtual time reaches `limit` (ms since the epoch).
    pub(super) fn run_until(&mut self, limit: u64, mut done: impl FnMut(&World) -> bool) {
        self.settle();
        while !done(self) && self.now < limit {
            self.tick();
            self.settle();
        }
    }

    pub(super) fn shown(&self, i: usize) -> String {
        self.peers[i].shown.join("\n")
    }

    /// The last line peer `i` was shown that contains `needle` (the test fails without one).
    #[track_caller]
    pub(super) fn line_with(&self, i: usize, needle: &str) -> String {
        self.shown(i)
            .lines()
            .rfind(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.shown(i)))
            .to_string()
    }

    /// Fail, showing everything peer `i` was shown, unless some of it contains `needle`.
    #[track_caller]
    pub(super) fn assert_shown(&self, i: usize, needle: &str) {
        let shown = self.shown(i);
        assert!(shown.contains(needle), "no {needle:?} in:\n{shown}");
    }

    pub(super) fn count_shown(&self, i: usize, needle: &str) -> usize {
        self.peers[i]
            .shown
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Type `UPD to path` at peer `i` and wait until it is over on both sides.
    pub(super) fn upload(&mut self, i: usize, to: &str, path: &str) {
        self.type_line(i, &format!("UPD {to} {path}"));
        self.run_transfers();
    }
}

pub(super) fn video(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
