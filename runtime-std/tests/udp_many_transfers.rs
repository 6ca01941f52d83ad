//! One client socket receiving from two presenters at once while sending a file of its own,
//! over real loopback UDP: the core's `TransferSet` routes by transfer id, and the runtime
//! loop below (what a client runtime does) only moves bytes, files and time.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huddle_core::UnixMillis;
use huddle_core::transfer::{
    AbortReason, Receiver, ReceiverEvent, Sender, SenderEvent, SetEvent, TransferConfig,
    TransferId, TransferSecret, TransferSet,
};
use huddle_runtime_std::udp::files::{DatagramArena, PartFile, SourceFile};
use huddle_runtime_std::udp::{DEFAULT_SOCKET_BUFFER, DatagramSocket, bind_udp};

fn now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

/// What one transfer ended with, as the node saw it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    Saved(PathBuf),
    Failed(String),
}

/// A client's transfer loop: one socket, one set, files by transfer id.
fn drive(
    socket: UdpSocket,
    mut set: TransferSet,
    mut sources: BTreeMap<TransferId, SourceFile>,
    mut parts: BTreeMap<TransferId, PartFile>,
) -> BTreeMap<TransferId, Outcome> {
    socket.prepare().unwrap();
    let mut arena = DatagramArena::new();
    let mut outcomes = BTreeMap::new();
    let expected = set.ids().count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes.len() < expected && Instant::now() < deadline {
        let t = now();
        loop {
            match socket.recv_from(arena.space()) {
                Ok((n, from)) => set.handle_datagram(from, &arena.take(n), t),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        set.handle_timeout(t);
        loop {
            let mut moved = false;
            while let Some((id, ev)) = set.poll_event() {
                moved = true;
                match ev {
                    SetEvent::Sender(SenderEvent::Read { offset, len }) => {
                        match sources.get_mut(&id).map(|f| f.read_at(offset, len)) {
                            Some(Ok(data)) => set.handle_file_data(id, offset, data, t),
                            _ => set.abort(id, AbortReason::LocalIo, t),
                        }
                    }
                    SetEvent::Sender(SenderEvent::Complete) => {
                        outcomes.insert(id, Outcome::Sent);
                    }
                    SetEvent::Sender(SenderEvent::Aborted(r)) => {
                        outcomes.insert(id, Outcome::Failed(r.to_string()));
                    }
                    SetEvent::Receiver(ReceiverEvent::Write { offset, data }) => {
                        let ok = parts.get_mut(&id).map(|p| p.write_at(offset, data).is_ok());
                        if ok != Some(true) {
                            set.abort(id, AbortReason::LocalIo, t);
                        }
                    }
                    SetEvent::Receiver(ReceiverEvent::Complete { .. }) => {
                        let saved = parts.remove(&id).map(|mut p| p.finish());
                        let outcome = match saved {
                            Some(Ok(path)) => Outcome::Saved(path),
                            Some(Err(e)) => Outcome::Failed(e.to_string()),
                            None => Outcome::Failed("no .part file".into()),
                        };
                        outcomes.insert(id, outcome);
                    }
                    SetEvent::Receiver(ReceiverEvent::Aborted(r)) => {
                        parts.remove(&id);
                        outcomes.insert(id, Outcome::Failed(r.to_string()));
                    }
                }
            }
            while let Some(tx) = set.poll_transmit(t) {
                moved = true;
                let _ = socket.send_to(&tx.contents, tx.to);
            }
            if !moved {
                break;
            }
        }
        let wait = set
            .poll_timeout()
            .map_or(10, |d| d.0.saturating_sub(now().0))
            .clamp(0, 10);
        if wait > 0 {
            socket.wait(false, Duration::from_millis(wait)).unwrap();
        }
    }
    outcomes
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

struct Node {
    socket: UdpSocket,
    addr: SocketAddr,
    set: TransferSet,
    sources: BTreeMap<TransferId, SourceFile>,
    parts: BTreeMap<TransferId, PartFile>,
}

fn node() -> Node {
    let (socket, _) = bind_udp("127.0.0.1:0".parse().unwrap(), DEFAULT_SOCKET_BUFFER).unwrap();
    let addr = socket.local_addr().unwrap();
    Node {
        socket,
        addr,
        set: TransferSet::new(),
        sources: BTreeMap::new(),
        parts: BTreeMap::new(),
    }
}

/// Set up transfer `id` of `data` from `from` to `to` (what the server's handshake arranges).
fn arrange(id: u64, data: &[u8], dir: &Path, from: &mut Node, to: &mut Node) {
    let tid = TransferId(id);
    let secret = TransferSecret([id as u8; 32]);
    let config = TransferConfig::default();
    let src = dir.join(format!("src-{id}.bin"));
    std::fs::write(&src, data).unwrap();
    let source = SourceFile::open(&src).unwrap();
    let t = now();
    from.set.add_sender(
        Sender::new(tid, &secret, source.len(), config.clone(), t),
        to.addr,
    );
    from.sources.insert(tid, source);
    let downloads = dir.join(format!("downloads-{}", to.addr.port()));
    std::fs::create_dir_all(&downloads).unwrap();
    to.parts.insert(
        tid,
        PartFile::create(&downloads, &format!("user{id}_clip.mp4"), true).unwrap(),
    );
    to.set
        .add_receiver(Receiver::new(tid, &secret, data.len() as u64, config, t));
}

#[test]
fn one_socket_receives_from_two_presenters_while_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c) = (node(), node(), node());
    let files: Vec<Vec<u8>> = vec![
        content(3 << 20, 1),
        content(2 << 20, 2),
        content(1 << 20, 3),
    ];
    arrange(1, &files[0], dir.path(), &mut b, &mut a); // b presents to a
    arrange(2, &files[1], dir.path(), &mut c, &mut a); // c presents to a, at the same time
    arrange(3, &files[2], dir.path(), &mut a, &mut b); // a presents to b meanwhile

    let run = |n: Node| thread::spawn(move || drive(n.socket, n.set, n.sources, n.parts));
    let (ha, hb, hc) = (run(a), run(b), run(c));
    let (oa, ob, oc) = (ha.join().unwrap(), hb.join().unwrap(), hc.join().unwrap());

    let saved = |o: &BTreeMap<TransferId, Outcome>, id: u64| match o.get(&TransferId(id)) {
        Some(Outcome::Saved(p)) => std::fs::read(p).unwrap(),
        other => panic!("transfer {id}: {other:?}"),
    };
    assert!(saved(&oa, 1) == files[0], "file 1 differs");
    assert!(saved(&oa, 2) == files[1], "file 2 differs");
    assert!(saved(&ob, 3) == files[2], "file 3 differs");
    assert_eq!(oa.get(&TransferId(3)), Some(&Outcome::Sent));
    assert_eq!(ob.get(&TransferId(1)), Some(&Outcome::Sent));
    assert_eq!(oc.get(&TransferId(2)), Some(&Outcome::Sent));
}
