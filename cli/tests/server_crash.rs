//! `kill -9` the real server while clients post: every acknowledged post survives, no file is
//! left half-written, and the restarted server reads everything back without a warning.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const HUDDLE: &str = env!("CARGO_BIN_EXE_huddle");
const USERS: [(&str, &str); 4] = [
    ("yoda", "jedi*knight"),
    ("obiwan", "hellothere"),
    ("luke", "r2d2"),
    ("leia", "alderaan"),
];

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary on `dir`; returns it, its address and the lines it printed before.
fn start(dir: &Path) -> (Running, SocketAddr, Vec<String>, BufReader<ChildStdout>) {
    let child = Command::new(HUDDLE)
        .args(["server", "0", "3", "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut before = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.split("huddle server listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (server, addr, before, stdout);
        }
        before.push(line);
    }
}

/// A reply, or `None` once the connection is gone.
fn reply(reader: &mut impl BufRead) -> Option<String> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line.starts_with("* ") || line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return Some(line.trim_end().to_string());
    }
}

/// Log in and post until the connection dies; report each acknowledged post.
fn poster(addr: SocketAddr, user: &str, password: &str, acks: mpsc::Sender<(u32, String)>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    reply(&mut reader).unwrap();
    writer
        .write_all(format!("{user}\n{password}\n").as_bytes())
        .unwrap();
    reply(&mut reader).unwrap();
    assert!(reply(&mut reader).unwrap().starts_with("230 "));
    for i in 0.. {
        let text = format!("{user}; post {i}; \"quoted\" ✓");
        if writer
            .write_all(format!("MSG {text}\n").as_bytes())
            .is_err()
        {
            return;
        }
        let Some(r) = reply(&mut reader) else { return };
        let number = r
            .strip_prefix("250 Message #")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{r}"));
        if acks.send((number, text)).is_err() {
            return;
        }
    }
}

#[test]
fn kill_9_loses_no_acknowledged_post_and_leaves_no_half_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds: String = USERS.iter().map(|(u, p)| format!("{u} {p}\n")).collect();
    std::fs::write(dir.path().join("credentials.txt"), creds).unwrap();

    let (mut server, addr, _, _stdout) = start(dir.path());
    let (tx, rx) = mpsc::channel();
    let posters: Vec<_> = USERS
        .iter()
        .map(|(u, p)| {
            let tx = tx.clone();
            thread::spawn(move || poster(addr, u, p, tx))
        })
        .collect();
    drop(tx);
    let mut acked: BTreeMap<u32, String> = BTreeMap::new();
    for (number, text) in rx.iter() {
        assert!(
            acked.insert(number, text).is_none(),
            "#{number} acknowledged twice"
        );
        if acked.len() == 200 {
            server.0.kill().unwrap(); // SIGKILL
            break;
        }
    }
    // Acknowledgements already on their way count too.
    acked.extend(rx.iter());
    for p in posters {
        p.join().unwrap();
    }

    let log = std::fs::read_to_string(dir.path().join("messagelog.txt")).unwrap();
    assert!(
        log.is_empty() || log.ends_with('\n'),
        "half-written last line"
    );
    let lines: Vec<&str> = log.lines().collect();
    for (number, text) in &acked {
        let line = lines
            .get(*number as usize - 1)
            .unwrap_or_else(|| panic!("acknowledged post #{number} lost"));
        assert!(
            line.starts_with(&format!("{number}; ")) && line.ends_with(&format!("; {text}; no")),
            "#{number}: {line}"
        );
    }
    drop(server);

    let (_again, _, printed, _stdout) = start(dir.path());
    assert!(
        !printed.iter().any(|l| l.contains("warning")),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains(&format!("4 accounts, {} messages", lines.len()))),
        "{printed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("userlog.txt")).unwrap(),
        ""
    );
}
