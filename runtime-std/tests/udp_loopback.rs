//! Files over real loopback UDP with the std driver: they arrive whole, under the right name,
//! without overwriting anything, and a vanished presenter leaves no `.part` file behind.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::thread;

use huddle_core::UserName;
use huddle_core::transfer::{AbortReason, TransferConfig, TransferId, TransferSecret};
use huddle_runtime_std::udp::bench::LossySocket;
use huddle_runtime_std::udp::{
    DEFAULT_SOCKET_BUFFER, ReceiveJob, SendJob, UdpError, bind_udp, receive_file, send_file,
};

fn socket() -> (UdpSocket, SocketAddr) {
    let (s, _) = bind_udp("127.0.0.1:0".parse().unwrap(), DEFAULT_SOCKET_BUFFER).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

fn content(len: usize) -> Vec<u8> {
    // Not compressible, not periodic at any datagram size.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Run {
    sent: Result<huddle_runtime_std::udp::SendReport, UdpError>,
    received: Result<huddle_runtime_std::udp::ReceiveReport, UdpError>,
}

fn transfer(dir: &Path, data: &[u8], config: TransferConfig, loss: f64) -> Run {
    let src = dir.join("clip.mp4");
    std::fs::write(&src, data).unwrap();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let (rx, rx_addr) = socket();
    let (tx, _) = socket();
    let id = TransferId(77);
    let secret = TransferSecret([3; 32]);
    let receive = ReceiveJob {
        dir: downloads,
        presenter: UserName::new("yoda").unwrap(),
        file_name: "clip.mp4".into(),
        size: data.len() as u64,
        id,
        secret: secret.clone(),
        config: config.clone(),
        durable: true,
    };
    let send = SendJob {
        path: src,
        peer: rx_addr,
        id,
        secret,
        config,
    };
    let receiver = thread::spawn(move || {
        let lossy = LossySocket::new(rx, loss, 2);
        receive_file(&lossy, &receive, |_| {})
    });
    let lossy = LossySocket::new(tx, loss, 1);
    let sent = send_file(&lossy, &send, |_| {});
    let received = receiver.join().unwrap();
    Run { sent, received }
}

#[test]
fn a_multi_mib_file_arrives_intact_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(8 << 20);
    let run = transfer(dir.path(), &data, TransferConfig::default(), 0.0);
    let sent = run.sent.expect("sender should succeed");
    let received = run.received.expect("receiver should succeed");
    assert_eq!(sent.bytes, data.len() as u64);
    assert_eq!(
        received.saved_as,
        dir.path().join("downloads").join("yoda_clip.mp4")
    );
    assert!(
        std::fs::read(&received.saved_as).unwrap() == data,
        "saved file differs"
    );
    assert!(
        !dir.path()
            .join("downloads")
            .join("yoda_clip.mp4.part")
            .exists()
    );
}

#[test]
fn large_datagrams_and_five_percent_loss_still_deliver_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(6 << 20);
    let config = TransferConfig {
        max_datagram: 65_000,
        ..TransferConfig::default()
    };
    let run = transfer(dir.path(), &data, config, 0.05);
    run.sent.expect("sender should succeed");
    let received = run.received.expect("receiver should succeed");
    assert!(
        std::fs::read(&received.saved_as).unwrap() == data,
        "saved file differs"
    );
}

#[test]
fn an_existing_file_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("downloads")).unwrap();
    let existing = dir.path().join("downloads").join("yoda_clip.mp4");
    std::fs::write(&existing, b"keep me").unwrap();
    let data = content(300_000);
    let run = transfer(dir.path(), &data, TransferConfig::default(), 0.0);
    let received = run.received.expect("receiver should succeed");
    assert_eq!(
        received.saved_as,
        dir.path().join("downloads").join("yoda_clip (1).mp4")
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert!(std::fs::read(&received.saved_as).unwrap() == data);
}

#[test]
fn a_presenter_that_never_comes_leaves_no_part_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, _) = socket();
    let job = ReceiveJob {
        dir: dir.path().to_path_buf(),
        presenter: UserName::new("yoda").unwrap(),
        file_name: "clip.mp4".into(),
        size: 1000,
        id: TransferId(1),
        secret: TransferSecret([1; 32]),
        config: TransferConfig {
            idle_timeout_ms: 300,
            ..TransferConfig::default()
        },
        durable: true,
    };
    let err = receive_file(&rx, &job, |_| {}).unwrap_err();
    assert!(
        matches!(err, UdpError::Aborted(AbortReason::PeerSilent)),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the .part file must be gone"
    );
}

#[test]
fn a_name_that_escapes_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, _) = socket();
    let job = ReceiveJob {
        dir: dir.path().to_path_buf(),
        presenter: UserName::new("yoda").unwrap(),
        file_name: "../evil.sh".into(),
        size: 10,
        id: TransferId(1),
        secret: TransferSecret([1; 32]),
        config: TransferConfig::default(),
        durable: true,
    };
    assert!(matches!(
        receive_file(&rx, &job, |_| {}),
        Err(UdpError::Name(_))
    ));
}

#[test]
fn a_directory_cannot_be_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = socket();
    let job = SendJob {
        path: dir.path().to_path_buf(),
        peer: "127.0.0.1:9".parse().unwrap(),
        id: TransferId(1),
        secret: TransferSecret([1; 32]),
        config: TransferConfig::default(),
    };
    let err = send_file(&tx, &job, |_| {}).unwrap_err();
    assert!(matches!(err, UdpError::BadSource { .. }), "{err}");
}
