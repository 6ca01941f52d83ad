//! The upload handshake's one structured line: who sends what to whom, and with which secret.
//!
//! The server writes it twice: in the `227` reply to the presenter (naming the audience and the
//! address of the audience's client) and in the `* UPLOAD` event to the audience (naming the
//! presenter and the address of the presenter's client):
//!
//! `UPLOAD <transfer id, 16 hex> <secret, 64 hex> <ip:port> <user> <size> <file name>`

use std::fmt;
use std::net::SocketAddr;

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_till1, take_while_m_n},
    character::complete::{char, digit1},
    combinator::{all_consuming, map_res, rest},
};

use crate::transfer::{TransferId, TransferSecret, names::check_file_name};
use crate::types::UserName;

/// A transfer the server approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    /// The transfer's id, chosen by the server.
    pub id: TransferId,
    /// The secret that keys every datagram of the transfer.
    pub secret: TransferSecret,
    /// The peer's client: where to send (presenter) or who will send (audience).
    pub peer: SocketAddr,
    /// The peer's user name.
    pub user: UserName,
    /// The file size in bytes.
    pub size: u64,
    /// The file's base name.
    pub name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for UploadGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPLOAD {} {} {} {} {} {}",
            self.id,
            hex(&self.secret.0),
            self.peer,
            self.user,
            self.size,
            self.name
        )
    }
}

fn hex_u64(i: &str) -> IResult<&str, u64> {
    map_res(
        take_while_m_n(16, 16, |c: char| c.is_ascii_hexdigit()),
        |s| u64::from_str_radix(s, 16),
    )
    .parse(i)
}

fn secret(i: &str) -> IResult<&str, TransferSecret> {
    map_res(
        take_while_m_n(64, 64, |c: char| c.is_ascii_hexdigit()),
        |s: &str| {
            let mut out = [0u8; 32];
            for (k, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&s[2 * k..2 * k + 2], 16).map_err(|_| "hex")?;
            }
            Ok::<_, &str>(TransferSecret(out))
        },
    )
    .parse(i)
}

/// The grant parser, for embedding in the event parser.
pub(crate) fn grant(i: &str) -> IResult<&str, UploadGrant> {
    let (i, (_, id, _, secret, _, peer, _, user, _, size, _, name)) = (
        tag("UPLOAD "),
        hex_u64,
        char(' '),
        secret,
        char(' '),
        map_res(take_till1(|c| c == ' '), |s: &str| s.parse::<SocketAddr>()),
        char(' '),
        map_res(take_till1(|c| c == ' '), UserName::new),
        char(' '),
        map_res(digit1, |d: &str| d.parse::<u64>()),
        char(' '),
        map_res(rest, |n: &str| check_file_name(n).map(|_| n.to_owned())),
    )
        .parse(i)?;
    Ok((
        i,
        UploadGrant {
            id: TransferId(id),
            secret,
            peer,
            user,
            size,
            name,
        },
    ))
}

/// Parse a grant line (the text of a `227` reply, or an event after `* `).
pub fn parse_upload_grant(s: &str) -> Option<UploadGrant> {
    all_consuming(grant).parse(s).ok().map(|(_, g)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_round_trips_with_spaces_in_the_name() {
        let g = UploadGrant {
            id: TransferId(0x0123_4567_89ab_cdef),
            secret: TransferSecret([0xa5; 32]),
            peer: "127.0.0.1:5000".parse().unwrap(),
            user: UserName::new("bob").unwrap(),
            size: 12_345,
            name: "my clip (final).mp4".into(),
        };
        let text = g.to_string();
        assert!(text.starts_with("UPLOAD 0123456789abcdef a5a5"), "{text}");
        assert_eq!(parse_upload_grant(&text), Some(g));
    }

    #[test]
    fn a_grant_with_an_unsafe_name_is_refused() {
        let bad = format!(
            "UPLOAD {:016x} {} 127.0.0.1:1 bob 3 ../x",
            1,
            "00".repeat(32)
        );
        assert_eq!(parse_upload_grant(&bad), None);
    }
}
