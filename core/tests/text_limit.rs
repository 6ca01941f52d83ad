//! Issue 9, item 3: every line the server sends fits the client's limit. The longest text the
//! server accepts, from the longest user name, reaches another huddle client live, at catch-up
//! and by `RDM`, and that client stays connected.

use std::net::SocketAddr;

use huddle_core::UnixMillis;
use huddle_core::client::{Client, ClientConfig, ClientOutput, ExitStatus, Input};
use huddle_core::proto::{MAX_LINE, MAX_TEXT};
use huddle_core::server::{ConnId, DataFiles, Server, ServerConfig};
use huddle_core::store::DataFile;

const T0: u64 = 1_795_300_000_000;

/// The longest user name there can be.
const AUTHOR: &str = "abcdefghijklmnopqrstuvwxyz012345";

fn server() -> Server {
    let mut files = DataFiles::new();
    files.insert(
        DataFile::Credentials,
        format!("{AUTHOR} pw\nluke r2d2\n").into_bytes(),
    );
    Server::new(
        ServerConfig {
            hash_memory_kib: 64,
            ..ServerConfig::default()
        },
        &files,
        UnixMillis(T0),
    )
    .expect("the folder is clean")
}

/// A server, a raw connection for the author and a huddle client core for the reader.
struct World {
    server: Server,
    now: u64,
    author: ConnId,
    author_lines: Vec<String>,
    reader: Option<(ConnId, Client)>,
    reader_shown: String,
    reader_exit: Option<ExitStatus>,
    longest_line: usize,
}

impl World {
    fn new() -> Self {
        let mut server = server();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let author = server.handle_connect(peer, UnixMillis(T0));
        let mut w = World {
            server,
            now: T0,
            author,
            author_lines: Vec::new(),
            reader: None,
            reader_shown: String::new(),
            reader_exit: None,
            longest_line: 0,
        };
        w.say(&format!("{AUTHOR}\npw"));
        w
    }

    fn say(&mut self, lines: &str) {
        self.now += 1000;
        self.server.handle_bytes(
            self.author,
            format!("{lines}\n").as_bytes(),
            UnixMillis(self.now),
        );
        self.pump();
    }

    fn connect_reader(&mut self) {
        let peer: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let conn = self.server.handle_connect(peer, UnixMillis(self.now));
        self.reader = Some((
            conn,
            Client::new(ClientConfig::default(), UnixMillis(self.now)),
        ));
        self.pump();
        self.type_line("luke");
        self.type_line("r2d2");
    }

    fn type_line(&mut self, line: &str) {
        if let Some((_, c)) = &mut self.reader {
            c.handle_input(Input::UserLine(line.to_owned()), UnixMillis(self.now));
        }
        self.pump();
    }

    fn drop_reader(&mut self) {
        if let Some((conn, _)) = self.reader.take() {
            self.now += 1000;
            self.server.handle_disconnect(conn, UnixMillis(self.now));
            self.pump();
        }
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let mut outs = Vec::new();
            while let Some(out) = self.server.poll_output() {
                outs.push(out);
            }
            let sends: Vec<(ConnId, bytes::Bytes)> = outs
                .iter()
                .flat_map(|o| o.sends())
                .map(|(c, b)| (c, b.clone()))
                .collect();
            for (conn, bytes) in sends {
                self.server
                    .handle_written(conn, bytes.len(), UnixMillis(self.now));
                moved = true;
                for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    self.longest_line = self.longest_line.max(line.len());
                }
                if conn == self.author {
                    self.author_lines
                        .extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
                } else if let Some((c, client)) = &mut self.reader
                    && *c == conn
                {
                    client.handle_input(Input::ServerBytes(bytes.clone()), UnixMillis(self.now));
                    moved = true;
                }
            }
            if let Some((conn, client)) = &mut self.reader {
                while let Some(out) = client.poll_output() {
                    match out {
                        ClientOutput::Send(b) => {
                            self.server.handle_bytes(*conn, &b, UnixMillis(self.now));
                            moved = true;
                        }
                        ClientOutput::Show(d) => {
                            self.reader_shown.push_str(&d.text);
                            self.reader_shown.push('\n');
                        }
                        ClientOutput::Exit(s) => self.reader_exit = Some(s),
                        _ => {}
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }
}

/// The longest text accepted, in two-byte characters (so bytes, not characters, are counted).
fn longest_text(tag: char) -> String {
    let mut t = "é".repeat(MAX_TEXT / 2 - 1);
    t.push(tag);
    t.push('!');
    assert_eq!(t.len(), MAX_TEXT);
    t
}

#[test]
fn the_longest_post_and_private_message_reach_a_client_live_at_catch_up_and_by_rdm() {
    let mut w = World::new();
    let post = longest_text('p');
    let letter = longest_text('l');

    // Stored while luke is away, then delivered at his login (catch-up).
    w.say(&format!("MSG {post}"));
    assert!(w.author_lines.last().unwrap().starts_with("250 Message #1"));
    w.say(&format!("PVT luke {letter}"));
    assert!(w.author_lines.last().unwrap().contains("offline"));
    w.connect_reader();
    assert!(w.reader_shown.contains(&post), "catch-up post");
    assert!(w.reader_shown.contains(&letter), "stored letter");

    // Live: a post edited (the longest event carries "yes"), a private message.
    w.reader_shown.clear();
    let edited = longest_text('e');
    let stamp = w
        .author_lines
        .iter()
        .find_map(|l| l.strip_prefix("250 Message #1 posted at "))
        .unwrap()
        .to_owned();
    w.say(&format!("EDT 1 {stamp} {edited}"));
    assert!(
        w.author_lines
            .last()
            .unwrap()
            .starts_with("250 Message #1 edited"),
        "{:?}",
        w.author_lines.last()
    );
    w.say(&format!("PVT luke {letter}"));
    w.say(&format!("MSG {post}"));
    assert!(w.reader_shown.contains(&edited), "live edit");
    assert!(w.reader_shown.contains(&letter), "live private message");
    assert!(w.reader_shown.contains(&post), "live post");

    // By RDM: both posts, one of them "(edited)".
    w.reader_shown.clear();
    w.type_line("RDM 01 Jan 2000 00:00:00");
    assert!(w.reader_shown.contains(&edited) && w.reader_shown.contains(&post));
    assert!(w.reader_shown.contains("(edited)"));

    // A second catch-up, after a logout, with the edited post.
    w.drop_reader();
    w.say(&format!("MSG {post}"));
    w.connect_reader();
    assert!(w.reader_shown.contains(&post));

    assert_eq!(w.reader_exit, None, "the reader stayed connected");
    assert!(
        w.longest_line <= MAX_LINE,
        "a line of {} bytes",
        w.longest_line
    );
    assert!(
        w.longest_line > MAX_TEXT,
        "the test did send the longest lines"
    );
}

#[test]
fn one_byte_more_is_refused_with_the_limit_and_nobody_is_disconnected() {
    let mut w = World::new();
    w.connect_reader();
    let mut text = longest_text('x');
    text.push('y');
    w.say(&format!("MSG {text}"));
    let reply = w.author_lines.last().unwrap().clone();
    assert!(
        reply.starts_with("501 ") && reply.contains(&format!("at most {MAX_TEXT} bytes")),
        "{reply}"
    );
    w.say(&format!("PVT luke {text}"));
    assert!(w.author_lines.last().unwrap().starts_with("501 "));
    w.say("MSG still here");
    assert!(w.author_lines.last().unwrap().starts_with("250 Message #1"));
    assert!(w.reader_shown.contains("still here"));
    assert_eq!(w.reader_exit, None);
}
