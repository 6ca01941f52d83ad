//! A server of one runtime serves clients of the other, and both servers answer the same
//! script with the same bytes: the runtimes only move bytes, the core decides.

mod common;

use common::*;

/// Every pairing of a server runtime with a client runtime of the other kind.
const PAIRS: &[(&str, &str)] = &[("std", "smol"), ("smol", "std")];

#[test]
fn a_server_of_one_runtime_serves_live_clients_of_the_other() {
    for &(server_rt, client_rt) in PAIRS {
        let dir = data_dir();
        let server = ServerProc::start(server_rt, dir.path(), &[]);
        // luke on the other runtime, yoda on the server's own.
        let mut luke = LiveClient::login_on(&server, client_rt, "luke", "r2d2");
        let mut yoda = LiveClient::login_on(&server, server_rt, "yoda", "jedi*knight");
        luke.out.wait_for("yoda is now online");
        yoda.command("MSG across runtimes", "Message #1 posted at");
        luke.out.wait_for(": across runtimes");
        luke.command("PVT yoda heard you", "Private message sent to yoda");
        yoda.out.wait_for("Private message from luke, ");
        luke.command("OUT", "Goodbye, luke!");
        assert_eq!(
            luke.wait_exit(),
            0,
            "{server_rt} server, {client_rt} client"
        );
        yoda.out.wait_for("luke went offline");
        server.log.wait_for("luke logged out");
    }
}

#[test]
fn an_upload_goes_from_a_client_of_one_runtime_to_a_client_of_the_other() {
    for &(server_rt, client_rt) in PAIRS {
        let dir = data_dir();
        let server = ServerProc::start(server_rt, dir.path(), &[]);
        let source = tempfile::tempdir().unwrap();
        let clip: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = source.path().join("clip.mp4");
        std::fs::write(&path, &clip).unwrap();

        let mut luke = LiveClient::login_on(&server, client_rt, "luke", "r2d2");
        let mut yoda = LiveClient::login_on(&server, server_rt, "yoda", "jedi*knight");
        let from = yoda.out.len();
        yoda.send(&format!("UPD luke {}", path.display()));
        yoda.out
            .wait_for_after(from, "clip.mp4 has been uploaded to luke");
        luke.out.wait_for("saved as yoda_clip.mp4");
        let got = std::fs::read(luke.downloads.path().join("yoda_clip.mp4")).unwrap();
        assert!(got == clip, "{server_rt} server: the file arrived changed");
        luke.command("OUT", "Goodbye, luke!");
        yoda.command("OUT", "Goodbye, yoda!");
    }
}

/// Digits vary from run to run (timestamps, ports), and so does the TLS line's fingerprint
/// (every data folder makes its own certificate); everything else must not.
fn without_digits(text: &str) -> String {
    let fingerprint = |w: &str| w.starts_with("(SHA256:") || w.starts_with("SHA256:");
    text.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| if fingerprint(w) { "SHA256:…" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

#[test]
fn both_server_runtimes_answer_the_same_script_with_the_same_text() {
    let script = [
        "yoda",
        "wrong",
        "jedi*knight",
        "MSG first; with a semicolon",
        "MSG second",
        "EDT 1 01 Jan 2000 00:00:00 too late",
        "RDM 01 Jan 2000 00:00:00",
        "PVT luke stored for later",
        "BLK hans",
        "FOO bar",
        "RCU",
        "OUT",
    ];
    let mut transcripts = Vec::new();
    for &rt in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(rt, dir.path(), &[]);
        // The same client runtime for both, so only the server differs.
        let (code, out) = run_script_on(&server, "std", &script);
        assert_eq!(code, 0, "{rt}: {out}");
        let files: Vec<String> = ["messagelog.txt", "userlog.txt"]
            .iter()
            .map(|f| without_digits(&server.file(f)))
            .collect();
        transcripts.push((rt, without_digits(&out), files));
    }
    let (first_rt, first_out, first_files) = &transcripts[0];
    for (rt, out, files) in &transcripts[1..] {
        assert_eq!(out, first_out, "{rt} and {first_rt} servers differ");
        assert_eq!(
            files, first_files,
            "{rt} and {first_rt} data folders differ"
        );
    }
}
