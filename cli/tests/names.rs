//! User names with the real binary, both runtimes: case does not make a new user, look-alikes
//! are refused at sign-up naming the user they look like.

mod common;

use common::{RUNTIMES, ServerProc, data_dir, run_script};

#[test]
fn a_name_in_another_case_logs_in_as_the_account_and_look_alikes_cannot_sign_up() {
    for &runtime in RUNTIMES {
        let dir = data_dir();
        let server = ServerProc::start(runtime, dir.path(), &[]);
        let before = server.file("credentials.txt");
        // A script that gives a look-alike stops there (exit 3): its next line is a password.
        for (name, like) in [("Ieia", "leia"), ("1uke", "luke")] {
            let (code, out) = run_script(&server, &[name, "r2d2", "OUT"]);
            assert_eq!(code, 3, "{runtime}: {out}");
            assert!(
                out.contains(&format!(
                    "{name} looks too much like the existing user {like}"
                )),
                "{runtime}: {out}"
            );
        }
        let (code, out) = run_script(&server, &["LUKE", "r2d2", "OUT"]);
        assert_eq!(code, 0, "{runtime}: {out}");
        assert!(out.contains("Welcome to huddle, luke!"), "{runtime}: {out}");
        // luke's plaintext password is rehashed at his first login; nobody was added.
        let names = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.split(' ').next())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            names(&server.file("credentials.txt")),
            names(&before),
            "{runtime}: no new account"
        );
        // A new name that looks like nobody signs up, and is protected in turn.
        let (code, out) = run_script(&server, &["Rey", "skywalker", "skywalker", "OUT"]);
        assert_eq!(code, 0, "{runtime}: {out}");
        let (_, out) = run_script(&server, &["REY", "skywalker", "OUT"]);
        assert!(out.contains("Welcome to huddle, Rey!"), "{runtime}: {out}");
    }
}
