//! Client state machine tests, against the real server core in one process (quinn's `Pair`
//! style): bytes are shuttled between the two machines, no sockets, virtual time.

use std::net::SocketAddr;

use super::*;
use crate::server::{ConnId, DataFiles, Output, Server, ServerConfig};
use crate::store::DataFile;

const T0: UnixMillis = UnixMillis(1_795_300_000_000);

struct Pair {
    server: Server,
    client: Client,
    conn: ConnId,
    shown: Vec<Display>,
    prompts: Vec<Prompt>,
    exit: Option<ExitStatus>,
    /// The last list of known users the client handed out.
    users: Vec<KnownUser>,
    /// `messagelog.txt` as the server wrote it.
    messagelog: String,
    /// Every line the client sent, in order.
    sent: String,
    /// The time both machines are handed.
    now: UnixMillis,
}

fn server() -> Server {
    let mut files = DataFiles::new();
    files.insert(DataFile::Credentials, "yoda jedi\nluke r2d2\n");
    Server::new(
        ServerConfig {
            hash_memory_kib: 64,
            ..ServerConfig::default()
        },
        &files,
        T0,
    )
    .expect("the folder is clean")
}

impl Pair {
    fn new(server: Server, config: ClientConfig) -> Self {
        let mut server = server;
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let conn = server.handle_connect(peer, T0);
        let mut p = Pair {
            server,
            client: Client::new(config, T0),
            conn,
            shown: vec![],
            prompts: vec![],
            exit: None,
            users: vec![],
            messagelog: String::new(),
            sent: String::new(),
            now: T0,
        };
        p.pump();
        p
    }

    /// Move bytes both ways until neither side has anything more to say.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(o) = self.server.poll_output() {
                let mine: Vec<Vec<u8>> = o
                    .sends()
                    .into_iter()
                    .filter(|(c, _)| *c == self.conn)
                    .map(|(_, b)| b.to_vec())
                    .collect();
                for bytes in mine {
                    self.client.handle_server_bytes(&bytes, self.now);
                    moved = true;
                }
                match o {
                    Output::Close { conn } if conn == self.conn => {
                        self.client.handle_server_closed(self.now);
                        moved = true;
                    }
                    Output::Persist(crate::store::Persist::Append {
                        file: DataFile::MessageLog,
                        text,
                    }) => {
                        self.messagelog.push_str(&String::from_utf8_lossy(&text));
                    }
                    Output::Persist(crate::store::Persist::Replace {
                        file: DataFile::MessageLog,
                        text,
                    }) => {
                        self.messagelog = String::from_utf8_lossy(&text).into_owned();
                    }
                    Output::Hash(job) => {
                        let done = job.run(&mut crate::server::HashMemory::new());
                        self.server
                            .handle_input(crate::server::Input::Hashed(done), self.now);
                        moved = true;
                    }
                    _ => {}
                }
            }
            while let Some(o) = self.client.poll_output() {
                moved = true;
                match o {
                    ClientOutput::Send(b) => {
                        self.sent.push_str(&String::from_utf8_lossy(&b));
                        self.server.handle_bytes(self.conn, &b, self.now)
                    }
                    ClientOutput::Show(d) => self.shown.push(d),
                    ClientOutput::Prompt(p) => self.prompts.push(p),
                    ClientOutput::Exit(s) => self.exit = Some(s),
                    ClientOutput::Users(u) => self.users = u,
                    // Asked once at start by a client with a UDP port.
                    ClientOutput::File(FileOp::RemoveStaleParts { .. }) => {}
                    other => panic!("no transfers in these tests: {other:?}"),
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        self.client.handle_user_line(line, self.now);
        self.pump();
    }

    fn last_prompt(&self) -> Option<&Prompt> {
        self.prompts.last()
    }

    fn texts(&self) -> String {
        self.shown
            .iter()
            .map(|d| d.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn asks_for_user_name_then_password_then_commands() {
    let mut p = Pair::new(server(), ClientConfig::default());
    assert_eq!(p.last_prompt(), Some(&Prompt::UserName));
    p.type_line("yoda");
    assert_eq!(p.last_prompt(), Some(&Prompt::Password));
    p.type_line("jedi");
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("yoda".into())));
    assert!(p.texts().contains("Welcome to huddle, yoda!"));
    assert_eq!(p.client.user(), Some("yoda"));
}

#[test]
fn the_prompt_shows_the_name_as_the_account_spells_it_not_as_typed() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("YODA");
    p.type_line("jedi");
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("yoda".into())));
    assert_eq!(p.client.user(), Some("yoda"));
    // Its own posts are its own whatever the case it typed.
    p.type_line("MSG hello");
    assert!(p.texts().contains("Message #1 posted at"), "{}", p.texts());
    assert!(
        p.messagelog.contains("; yoda; hello; no"),
        "{}",
        p.messagelog
    );
}

#[test]
fn declares_its_udp_port_before_login() {
    let mut p = Pair::new(
        server(),
        ClientConfig {
            udp_port: Some(6000),
            ..Default::default()
        },
    );
    p.type_line("yoda");
    p.type_line("jedi");
    assert!(
        p.server
            .render_file(DataFile::UserLog)
            .ends_with("; yoda; 127.0.0.1; 6000\n")
    );
}

#[test]
fn a_wrong_password_is_asked_again_and_lockout_exits_non_zero() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("x");
    assert_eq!(p.last_prompt(), Some(&Prompt::Password));
    assert!(p.texts().contains("Invalid password"));
    p.type_line("y");
    p.type_line("z");
    assert_eq!(p.exit, Some(ExitStatus::LockedOut));
    assert_ne!(ExitStatus::LockedOut.code(), 0);
}

#[test]
fn interactive_sign_up_asks_for_the_password_twice() {
    let mut p = Pair::new(
        server(),
        ClientConfig {
            interactive: true,
            ..ClientConfig::default()
        },
    );
    p.type_line("rey");
    assert_eq!(p.last_prompt(), Some(&Prompt::NewPassword));
    p.type_line("one");
    assert_eq!(p.last_prompt(), Some(&Prompt::ConfirmPassword));
    p.type_line("two");
    assert!(p.texts().contains("The two passwords differ"));
    assert_eq!(p.last_prompt(), Some(&Prompt::NewPassword));
    p.type_line("jakku");
    p.type_line("jakku");
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("rey".into())));
}

#[test]
fn interactive_enter_on_an_empty_new_password_goes_back_to_the_user_name() {
    let mut p = Pair::new(
        server(),
        ClientConfig {
            interactive: true,
            ..ClientConfig::default()
        },
    );
    for _ in 0..3 {
        p.type_line("yodaa");
        assert_eq!(p.last_prompt(), Some(&Prompt::NewPassword));
        assert!(p.texts().contains("Enter on an empty line goes back"));
        p.type_line("");
        assert!(
            p.texts().contains("Sign-up of yodaa cancelled"),
            "{}",
            p.texts()
        );
        assert_eq!(p.last_prompt(), Some(&Prompt::UserName));
    }
    p.type_line("yoda");
    assert_eq!(p.last_prompt(), Some(&Prompt::Password));
    p.type_line("jedi");
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("yoda".into())));
}

#[test]
fn piped_sign_up_takes_the_password_once() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("rey");
    p.type_line("jakku");
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("rey".into())));
}

#[test]
fn a_piped_login_whose_name_is_refused_stops_instead_of_sending_the_next_lines_as_names() {
    let no_signup = || {
        let mut files = DataFiles::new();
        files.insert(DataFile::Credentials, "yoda jedi\n");
        let config = ServerConfig {
            hash_memory_kib: 64,
            allow_signup: false,
            ..ServerConfig::default()
        };
        Server::new(config, &files, T0).expect("the folder is clean")
    };
    // A script written for one name, one password, then commands.
    let mut p = Pair::new(no_signup(), ClientConfig::default());
    for line in ["stranger", "s3cret-password", "ATU", "MSG hello", "OUT"] {
        p.type_line(line);
    }
    assert_eq!(p.exit, Some(ExitStatus::LoginFailed));
    assert_eq!(ExitStatus::LoginFailed.code(), 3);
    assert_eq!(p.sent, "stranger\n", "only the name went to the server");
    let said: Vec<&str> = p.shown.iter().map(|d| d.text.as_str()).collect();
    assert!(
        said.iter()
            .any(|t| t.starts_with("Login failed: input that is not a terminal gives one user name, one password, then commands, so this client does not try another user name")),
        "{said:?}"
    );
    // A person at a terminal is asked for another name.
    let mut q = Pair::new(
        no_signup(),
        ClientConfig {
            interactive: true,
            ..ClientConfig::default()
        },
    );
    q.type_line("stranger");
    assert_eq!(q.last_prompt(), Some(&Prompt::UserName));
    q.type_line("yoda");
    q.type_line("jedi");
    assert_eq!(q.last_prompt(), Some(&Prompt::Command("yoda".into())));
    assert_eq!(q.exit, None);
}

#[test]
fn a_malformed_command_is_refused_locally_with_its_usage_and_the_prompt_again() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("jedi");
    let before = p.prompts.len();
    p.type_line("EDT 1 yesterday hello");
    assert!(
        p.shown
            .last()
            .unwrap()
            .text
            .contains("Usage: EDT n timestamp message")
    );
    assert_eq!(p.shown.last().unwrap().tone, Tone::Error);
    assert_eq!(p.prompts.len(), before + 1);
}

#[test]
fn replies_are_shown_and_out_exits_zero() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("jedi");
    p.type_line("msg hello there");
    let last = p.shown.last().unwrap();
    assert!(last.text.starts_with("Message #1 posted at "), "{last:?}");
    assert_eq!(last.tone, Tone::Success);
    p.type_line("OUT");
    assert_eq!(p.exit, Some(ExitStatus::LoggedOut));
    assert_eq!(ExitStatus::LoggedOut.code(), 0);
}

#[test]
fn end_of_input_at_the_prompt_logs_out_and_before_login_fails() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("jedi");
    p.client.handle_input_closed(T0);
    p.pump();
    assert_eq!(p.exit, Some(ExitStatus::LoggedOut));

    let mut q = Pair::new(server(), ClientConfig::default());
    q.type_line("yoda");
    q.client.handle_input_closed(T0);
    q.pump();
    assert_eq!(q.exit, Some(ExitStatus::LoginFailed));
}

#[test]
fn events_are_shown_as_pushed_lines() {
    let mut c = Client::new(ClientConfig::default(), T0);
    c.handle_server_bytes(b"331 hi\n* PVT 21 Nov 2026 22:30:01 yoda psst\n", T0);
    let shown: Vec<Display> = std::iter::from_fn(|| c.poll_output())
        .filter_map(|o| match o {
            ClientOutput::Show(d) => Some(d),
            _ => None,
        })
        .collect();
    let pvt = shown.iter().find(|d| d.pushed).unwrap();
    assert_eq!(
        pvt.text,
        "Private message from yoda, 21 Nov 2026 22:30:01: psst"
    );
    assert_eq!(pvt.tone, Tone::Private);
}

#[test]
fn a_lost_connection_exits_non_zero() {
    let mut c = Client::new(ClientConfig::default(), T0);
    c.handle_server_closed(T0);
    let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
    assert!(outs.contains(&ClientOutput::Exit(ExitStatus::ConnectionLost)));
}

#[test]
fn garbage_from_the_server_is_a_protocol_error_not_a_panic() {
    let mut c = Client::new(ClientConfig::default(), T0);
    c.handle_server_bytes(b"hello\n", T0);
    let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
    assert!(outs.contains(&ClientOutput::Exit(ExitStatus::ProtocolError)));
}

#[test]
fn a_closing_reply_is_shown_on_its_own_line_and_exits_with_server_closed() {
    // At the command prompt (nothing asked) and while waiting for a reply alike.
    for waiting in [false, true] {
        let mut c = Client::new(ClientConfig::default(), T0);
        c.handle_server_bytes(b"331 Welcome\n", T0);
        c.handle_user_line("yoda", T0);
        c.handle_server_bytes(b"332 Password for yoda:\n", T0);
        c.handle_user_line("jedi", T0);
        c.handle_server_bytes(b"230 Welcome to huddle, yoda!\n", T0);
        if waiting {
            c.handle_user_line("ATU", T0);
        }
        let _: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
        c.handle_server_bytes(b"421 The server is shutting down. Goodbye.\n", T0);
        let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
        let shown: Vec<&Display> = outs
            .iter()
            .filter_map(|o| match o {
                ClientOutput::Show(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(shown.len(), 1, "{outs:?}");
        assert_eq!(
            shown[0].text,
            "Disconnected by the server: The server is shutting down. Goodbye."
        );
        assert!(shown[0].pushed, "printed above the line being typed");
        assert_eq!(
            outs.last(),
            Some(&ClientOutput::Exit(ExitStatus::ServerClosed))
        );
        assert_eq!(ExitStatus::ServerClosed.code(), 7);
        // The socket's end that follows changes nothing.
        c.handle_server_closed(T0);
        assert_eq!(c.poll_output(), None);
    }
}

impl Pair {
    fn interactive() -> Self {
        Pair::new(
            server(),
            ClientConfig {
                interactive: true,
                ..ClientConfig::default()
            },
        )
    }

    fn last_text(&self) -> &str {
        self.shown.last().map_or("", |d| d.text.as_str())
    }

    /// The last line shown starts with `prefix` (else the test fails, showing every line).
    #[track_caller]
    fn assert_last_starts_with(&self, prefix: &str) {
        assert!(self.last_text().starts_with(prefix), "{}", self.texts());
    }
}

#[test]
fn dlt_n_and_edt_n_fill_in_the_timestamp_the_client_saw_and_the_server_still_checks_it() {
    let mut p = Pair::interactive();
    p.type_line("yoda");
    p.type_line("jedi");
    p.type_line("MSG one");
    p.type_line("MSG two");
    p.type_line("MSG three");
    p.type_line("EDT 2 two, edited");
    p.assert_last_starts_with("Message #2 edited at ");
    // The edit's new timestamp is the one used next.
    p.type_line("EDT #2 two, again");
    p.assert_last_starts_with("Message #2 edited at ");
    p.type_line("DLT 1");
    p.assert_last_starts_with("Message #1 deleted at ");
    // Numbers follow the board's, as the server renumbers it: "two, again" is #1 now, and
    // "three" #2.
    p.type_line("DLT 2");
    p.assert_last_starts_with("Message #2 deleted at ");
    assert!(
        p.messagelog.contains("; two, again; yes") && !p.messagelog.contains("; three; no"),
        "{}",
        p.messagelog
    );
    // Never seen: said so, nothing sent.
    let before = p.shown.len();
    p.type_line("DLT 7");
    assert!(
        p.last_text()
            .starts_with("This client has not seen message #7, so it cannot fill in its timestamp"),
        "{}",
        p.texts()
    );
    assert_eq!(p.shown.len(), before + 1);
    assert_eq!(p.last_prompt(), Some(&Prompt::Command("yoda".into())));
    // DESIGN's forms are unchanged, and a mistyped timestamp is not taken for a text.
    p.type_line("EDT 1 21 Nov 2026 22:30 oops");
    assert!(p.last_text().contains("Usage: EDT"), "{}", p.texts());
}

#[test]
fn a_script_keeps_the_exact_grammar_without_shortcuts() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("jedi");
    p.type_line("MSG one");
    p.type_line("DLT 1");
    assert!(
        p.last_text().contains("missing timestamp. Usage: DLT"),
        "{}",
        p.texts()
    );
    p.type_line("EDT 1 yesterday hello");
    assert!(
        p.last_text().contains("Usage: EDT n timestamp message"),
        "{}",
        p.texts()
    );
    assert!(
        p.messagelog.ends_with("; yoda; one; no\n"),
        "{}",
        p.messagelog
    );
}

#[test]
fn the_names_the_client_hears_of_are_handed_out_online_first() {
    let mut p = Pair::interactive();
    p.type_line("yoda");
    p.type_line("jedi");
    let peer: SocketAddr = "127.0.0.1:5558".parse().unwrap();
    let luke = p.server.handle_connect(peer, T0);
    p.server.handle_bytes(luke, b"luke\nr2d2\nMSG hello\n", T0);
    p.pump();
    assert_eq!(
        p.users,
        vec![KnownUser {
            name: "luke".into(),
            online: true
        }]
    );
    p.type_line("RCU");
    assert!(p.users.iter().all(|u| u.name != "yoda"), "not yourself");
    p.server.handle_bytes(luke, b"OUT\n", T0);
    p.pump();
    assert_eq!(
        p.users,
        vec![KnownUser {
            name: "luke".into(),
            online: false
        }]
    );
}

#[test]
fn posts_read_the_same_live_and_after_an_edit_with_short_times_and_a_day_line_at_a_terminal() {
    let mut t = render::Timeline::new(true);
    let post = |n: u32, at: &str, edited: bool| Event::Post {
        number: crate::types::MessageNumber::new(n).unwrap(),
        id: crate::types::PostId(n.into()),
        at: crate::proto::timestamp::parse_civil_time(at).unwrap(),
        author: UserName::new("yoda").unwrap(),
        edited,
        text: "do or do not".into(),
    };
    assert_eq!(
        t.event(&post(1, "30 Nov 2026 23:59:10", false)).1,
        "Day changed to 30 Nov 2026\n#1@1 yoda, 23:59: do or do not"
    );
    assert_eq!(
        t.event(&post(2, "30 Nov 2026 23:59:50", true)).1,
        "#2@2 yoda, 23:59: do or do not (edited)"
    );
    assert_eq!(
        t.event(&post(3, "01 Dec 2026 00:00:01", false)).1,
        "Day changed to 01 Dec 2026\n#3@3 yoda, 00:00: do or do not"
    );
    // A script gets the full timestamp on every line, in the RDM listing's layout.
    let mut piped = render::Timeline::new(false);
    assert_eq!(
        piped.event(&post(3, "01 Dec 2026 00:00:01", false)).1,
        "#3 yoda, 01 Dec 2026 00:00:01: do or do not"
    );
}

#[test]
fn the_catch_up_comes_under_a_while_you_were_away_header_without_your_own_posts() {
    let mut p = Pair::new(server(), ClientConfig::default());
    p.type_line("yoda");
    p.type_line("jedi");
    p.type_line("MSG mine");
    p.type_line("OUT");
    let peer: SocketAddr = "127.0.0.1:5559".parse().unwrap();
    let luke = p.server.handle_connect(peer, T0);
    p.server.handle_bytes(
        luke,
        b"luke\nr2d2\nMSG while away\nPVT yoda psst\nOUT\n",
        T0,
    );
    p.pump();
    let mut q = Pair::new(
        std::mem::replace(&mut p.server, server()),
        ClientConfig::default(),
    );
    q.type_line("yoda");
    q.type_line("jedi");
    let t = q.texts();
    assert!(
        t.contains("While you were away: 1 private message and 1 post."),
        "{t}"
    );
    let away = t.find("While you were away").unwrap();
    assert!(t[away..].contains("Private message from luke"), "{t}");
    assert!(t[away..].contains("#2 luke, "), "{t}");
    assert!(!t.contains("mine"), "your own post is not news: {t}");
}

/// The board's texts, in order.
fn board(server: &Server) -> Vec<String> {
    server
        .render_file(DataFile::MessageLog)
        .lines()
        .map(|l| l.rsplit("; ").nth(1).unwrap_or_default().to_string())
        .collect()
}

#[test]
fn dlt_by_the_number_shown_never_hits_a_post_that_moved_into_it() {
    let mut p = Pair::new(server(), ClientConfig::default());
    // luke, on a connection of his own, posts #1.
    let luke = p
        .server
        .handle_connect("127.0.0.1:6666".parse().unwrap(), T0);
    for line in ["luke\n", "r2d2\n", "MSG first\n"] {
        p.server.handle_bytes(luke, line.as_bytes(), T0);
        p.pump();
    }
    p.type_line("yoda");
    p.type_line("jedi");
    // yoda posts "a" (#2) and "b" (#3), all in the same second.
    p.type_line("MSG a");
    p.type_line("MSG b");
    let ts = crate::time::Zone::UTC.render(T0.timestamp());
    // A script sees the numbers as ever (the client keeps the ids to itself).
    p.type_line("RDM 01 Jan 2000 00:00:00");
    assert!(
        p.texts().contains(&format!("\n#2 yoda, {ts}: a")),
        "{}",
        p.texts()
    );
    // luke deletes his #1 meanwhile: "a" is now #1, "b" #2.
    p.server
        .handle_bytes(luke, format!("DLT 1 {ts}\n").as_bytes(), T0);
    p.pump();
    assert!(
        p.texts().contains("luke deleted message #1;"),
        "{}",
        p.texts()
    );
    // yoda deletes what he saw as #2 ("a"): the client sends the id with the number, and the
    // server refuses, since #2 is now "b" (same author, same second).
    p.type_line(&format!("DLT 2 {ts}"));
    let last = p.shown.last().unwrap();
    assert!(
        last.text.starts_with("Message @2 is now #1, not #2"),
        "{last:?}"
    );
    assert_eq!(last.tone, Tone::Error);
    assert_eq!(board(&p.server), ["a", "b"]);
    // By its id it goes, wherever it is now.
    p.type_line(&format!("DLT @2 {ts}"));
    assert!(
        p.shown
            .last()
            .unwrap()
            .text
            .starts_with("Message #1 deleted")
    );
    assert_eq!(board(&p.server), ["b"]);
    // "b" was shown as #3: EDT 3 means it, and it is refused for having moved, not applied
    // to whatever is #3 now (nothing).
    p.type_line(&format!("EDT 3 {ts} bee"));
    assert!(
        p.shown
            .last()
            .unwrap()
            .text
            .starts_with("Message @3 is now #1, not #3"),
        "{}",
        p.texts()
    );
    p.type_line(&format!("EDT 1@3 {ts} bee"));
    assert!(
        p.shown
            .last()
            .unwrap()
            .text
            .starts_with("Message #1 edited")
    );
    assert_eq!(board(&p.server), ["bee"]);
}

#[test]
fn a_person_at_a_terminal_sees_each_posts_id_beside_its_number() {
    let config = ClientConfig {
        interactive: true,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(server(), config);
    let luke = p
        .server
        .handle_connect("127.0.0.1:6666".parse().unwrap(), T0);
    p.type_line("yoda");
    p.type_line("jedi");
    for line in ["luke\n", "r2d2\n", "MSG first\n", "MSG second\n"] {
        p.server.handle_bytes(luke, line.as_bytes(), T0);
        p.pump();
    }
    let ts = crate::time::Zone::UTC.render(T0.timestamp());
    assert!(
        p.texts()
            .contains(&format!("#2@2 luke, {}: second", &ts[12..17])),
        "{}",
        p.texts()
    );
    p.type_line("RDM 01 Jan 2000 00:00:00");
    assert!(
        p.texts().contains(&format!("#1@1 luke, {ts}: first")),
        "{}",
        p.texts()
    );
    p.server
        .handle_bytes(luke, format!("DLT @1 {ts}\n").as_bytes(), T0);
    p.pump();
    assert!(
        p.texts().contains("luke deleted message #1@1;"),
        "{}",
        p.texts()
    );
}

// The shortcuts after the board was renumbered: the client follows DESIGN §2's renumbering
// as it hears of it, so `DLT n` / `EDT n text` mean the post numbered n now.

impl Pair {
    /// Another user, logged in on a connection of their own from `port`.
    fn other(&mut self, name: &str, password: &str, port: u16) -> ConnId {
        let peer: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let conn = self.server.handle_connect(peer, self.now);
        self.other_says(conn, name);
        self.other_says(conn, password);
        conn
    }

    /// `conn` sends `line` (its replies are not this client's business).
    fn other_says(&mut self, conn: ConnId, line: &str) {
        self.server
            .handle_bytes(conn, format!("{line}\n").as_bytes(), self.now);
        self.pump();
    }

    /// A second later, so every post and edit has a timestamp of its own.
    fn tick(&mut self) {
        self.now = UnixMillis(self.now.0 + 1000);
    }

    /// The current time as the server writes it.
    fn ts(&self) -> String {
        crate::time::Zone::UTC.render(self.now.timestamp())
    }
}

#[test]
fn after_a_delete_announced_live_dlt_n_and_edt_n_mean_the_posts_now_numbered_n() {
    let mut p = Pair::interactive();
    let luke = p.other("luke", "r2d2", 6666);
    p.type_line("yoda");
    p.type_line("jedi");
    let first = p.ts();
    p.other_says(luke, "MSG first");
    for text in ["a", "b", "c"] {
        p.tick();
        p.type_line(&format!("MSG {text}"));
    }
    // luke deletes his #1: a is #1 now, b #2, c #3, and yoda's client is told so.
    p.other_says(luke, &format!("DLT 1 {first}"));
    assert!(
        p.last_text()
            .contains("luke deleted message #1@1; later messages moved up one number"),
        "{}",
        p.texts()
    );
    p.type_line("DLT 2");
    p.assert_last_starts_with("Message #2 deleted at ");
    assert_eq!(board(&p.server), ["a", "c"]);
    // yoda's own delete renumbers too: c is #2.
    p.tick();
    p.type_line("EDT 2 see");
    p.assert_last_starts_with("Message #2 edited at ");
    // The edit's new timestamp is the one filled in next.
    p.tick();
    p.type_line("EDT 2 sea");
    p.assert_last_starts_with("Message #2 edited at ");
    p.type_line("EDT 1 aa");
    p.assert_last_starts_with("Message #1 edited at ");
    assert_eq!(board(&p.server), ["aa", "sea"]);
}

#[test]
fn a_live_edit_then_a_delete_leave_the_edited_timestamp_under_the_new_number() {
    let mut p = Pair::interactive();
    let luke = p.other("luke", "r2d2", 6666);
    p.type_line("yoda");
    p.type_line("jedi");
    let first = p.ts();
    p.other_says(luke, "MSG first");
    p.tick();
    p.other_says(luke, "MSG second");
    let second = p.ts();
    p.tick();
    p.other_says(luke, &format!("EDT 2 {second} second, edited"));
    let edited = p.ts();
    p.tick();
    p.other_says(luke, &format!("DLT 1 {first}"));
    let now_first = p.client.times.get(1).expect("luke's #2 is #1 now");
    assert_eq!(now_first.at.to_string(), edited);
    assert_eq!(now_first.id, Some(crate::types::PostId(2)));
    assert_eq!(p.client.times.get(2), None);
    // The server has the last word on whose it is.
    p.type_line("DLT 1");
    assert!(
        p.last_text()
            .starts_with("Message #1 was posted by luke; you can only delete your own messages"),
        "{}",
        p.texts()
    );
}

#[test]
fn posts_caught_up_at_login_and_listed_by_rdm_follow_a_delete_the_client_never_saw_the_post_of() {
    let mut p = Pair::interactive();
    let luke = p.other("luke", "r2d2", 6666);
    let first = p.ts();
    p.other_says(luke, "MSG first");
    p.tick();
    p.type_line("yoda");
    p.type_line("jedi");
    p.type_line("MSG a");
    p.type_line("OUT");
    // While yoda is away luke posts #3; yoda's next session catches it up, and nothing else.
    p.tick();
    p.other_says(luke, "MSG while away");
    let mut q = Pair::new(std::mem::replace(&mut p.server, server()), {
        ClientConfig {
            interactive: true,
            ..ClientConfig::default()
        }
    });
    q.now = p.now;
    q.tick();
    q.type_line("yoda");
    q.type_line("jedi");
    assert!(q.texts().contains("#3@3 luke, "), "{}", q.texts());
    // luke deletes #1, a post this session never saw: "while away" is #2, "a" #1.
    q.tick();
    q.other_says(luke, &format!("DLT 1 {first}"));
    q.type_line("DLT 2");
    assert!(
        q.last_text()
            .starts_with("Message #2 was posted by luke; you can only delete your own messages"),
        "{}",
        q.texts()
    );
    q.type_line("DLT 1");
    assert!(
        q.last_text()
            .starts_with("This client has not seen message #1"),
        "{}",
        q.texts()
    );
    // An RDM listing names "a"; a delete after it moves the listed numbers too.
    q.type_line("RDM 01 Jan 2000 00:00:00");
    q.tick();
    q.type_line("MSG b");
    q.tick();
    q.type_line("DLT 1");
    q.assert_last_starts_with("Message #1 deleted at ");
    q.type_line("EDT 2 bee");
    q.assert_last_starts_with("Message #2 edited at ");
    assert_eq!(board(&q.server), ["while away", "bee"]);
}

#[test]
fn the_unknown_command_error_lists_this_clients_own_commands_and_an_extra_space_is_named() {
    for interactive in [false, true] {
        let mut p = Pair::new(
            server(),
            ClientConfig {
                interactive,
                ..ClientConfig::default()
            },
        );
        p.type_line("yoda");
        p.type_line("jedi");
        p.type_line("FOO bar");
        let last = p.shown.last().unwrap();
        assert_eq!(last.tone, Tone::Error);
        assert!(
            last.text
                .starts_with("unknown command \"FOO\"; commands are MSG, PVT, ")
                && last.text.ends_with(", HELP, ACCEPT, DECLINE, CANCEL"),
            "{}",
            last.text
        );
        // HELP shows the same commands.
        p.type_line("HELP");
        for word in local::words() {
            assert!(p.last_text().contains(&format!("\n  {word} ")), "{word}");
        }
        p.type_line(" MSG x");
        assert!(
            p.last_text()
                .starts_with("extra space at the start of the line: begin with the command;"),
            "{}",
            p.texts()
        );
        p.type_line("PVT  luke hi");
        assert!(
            p.last_text()
                .starts_with("extra space before the user name"),
            "{}",
            p.texts()
        );
        assert_eq!(p.last_prompt(), Some(&Prompt::Command("yoda".into())));
        assert!(p.messagelog.is_empty(), "nothing was posted");
    }
}

#[test]
fn a_server_that_accepts_but_never_greets_is_said_so_after_the_greeting_timeout() {
    // Found by hand: `huddle client` against a port whose service waits for its client to
    // speak (an HTTP server) waited for ever and showed nothing.
    let exit_of = |c: &mut Client| {
        std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                ClientOutput::Exit(s) => Some(s),
                ClientOutput::Show(d) => {
                    assert!(d.text.contains("said nothing for 10 s"), "{}", d.text);
                    None
                }
                _ => None,
            })
            .last()
    };
    let mut c = Client::new(ClientConfig::default(), T0);
    assert_eq!(c.poll_timeout(), Some(T0.plus_millis(10_000)));
    c.handle_input(Input::Timeout, T0.plus_millis(9_999));
    assert_eq!(exit_of(&mut c), None);
    c.handle_input(Input::Timeout, T0.plus_millis(10_000));
    assert_eq!(exit_of(&mut c), Some(ExitStatus::ConnectionLost));
    assert_eq!(ExitStatus::ConnectionLost.code(), 5);
    // A server that greets, however late its later replies, is not timed out.
    let mut c = Client::new(ClientConfig::default(), T0);
    c.handle_input(
        Input::ServerBytes(Bytes::from_static(b"331 hi\n")),
        T0.plus_millis(5),
    );
    assert_eq!(c.poll_timeout(), None);
    c.handle_input(Input::Timeout, T0.plus_millis(60_000));
    assert!(!c.is_done());
}
