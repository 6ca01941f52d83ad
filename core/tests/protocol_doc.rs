//! PROTOCOL.md documents every reply code the server can send: each `pub const … : Code` of
//! `proto/reply.rs` has a row in its table of reply codes. Read from the sources, so a new
//! code without a row fails here.

const REPLY_RS: &str = include_str!("../src/proto/reply.rs");
const PROTOCOL_MD: &str = include_str!("../PROTOCOL.md");

/// `(name, number)` of every `pub const NAME: Code = Code(NNN);` in reply.rs.
fn codes() -> Vec<(String, u16)> {
    REPLY_RS
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": Code = Code(")?;
            let number = rest.strip_suffix(");")?.parse().ok()?;
            Some((name.to_string(), number))
        })
        .collect()
}

#[test]
fn every_reply_code_has_a_row_in_the_protocol_table() {
    let codes = codes();
    assert!(
        codes.len() >= 20,
        "the parser found too few codes: {codes:?}"
    );
    let missing: Vec<_> = codes
        .iter()
        .filter(|(_, n)| !PROTOCOL_MD.contains(&format!("\n| {n} | ")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a row in PROTOCOL.md: {missing:?}"
    );
}

#[test]
fn every_row_of_the_table_is_a_code_of_the_server() {
    let numbers: Vec<u16> = codes().into_iter().map(|(_, n)| n).collect();
    let table = PROTOCOL_MD
        .split("## Reply codes")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("a reply codes section");
    for row in table.lines().filter(|l| l.starts_with("| ")) {
        let cell = row[2..].split(' ').next().unwrap_or("");
        if let Ok(n) = cell.parse::<u16>() {
            assert!(numbers.contains(&n), "{n} is documented but no Code has it");
        }
    }
}
