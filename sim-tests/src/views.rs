//! What a script reads out of reply texts: the board as `RDM` lists it, the number and
//! timestamp a `MSG`/`EDT` reply names.
//!
//! The wire formats are specified in `core/PROTOCOL.md`; these helpers read only what the
//! scripts need to choose their next request and to check acknowledgements.

use huddle_core::proto::reply::Reply;

/// One post as `RDM` lists it: `#n@id author, DD Mon YYYY HH:MM:SS: text[ (edited)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its number at the time of the listing.
    pub number: u32,
    /// Its stable id.
    pub id: u64,
    /// Its author.
    pub author: String,
    /// Its timestamp as the server writes it (the version `EDT`/`DLT` must name).
    pub at: String,
    /// Its text.
    pub text: String,
    /// Whether it was edited.
    pub edited: bool,
}

/// Every post in an `RDM` reply (none for "No new messages").
pub fn parse_rdm(reply: &Reply) -> Vec<Listed> {
    reply
        .lines
        .iter()
        .skip(1)
        .filter_map(|l| parse_listed(l))
        .collect()
}

fn parse_listed(line: &str) -> Option<Listed> {
    let rest = line.strip_prefix('#')?;
    let (token, rest) = rest.split_once(' ')?;
    let (number, id) = token.split_once('@')?;
    let (author, rest) = rest.split_once(", ")?;
    let at = rest.get(..20)?;
    let text = rest.get(20..)?.strip_prefix(": ")?;
    let (text, edited) = match text.strip_suffix(" (edited)") {
        Some(t) => (t, true),
        None => (text, false),
    };
    Some(Listed {
        number: number.parse().ok()?,
        id: id.parse().ok()?,
        author: author.to_string(),
        at: at.to_string(),
        text: text.to_string(),
        edited,
    })
}

/// The number and timestamp in `Message #3 posted at …` / `Message #3 edited at …`.
pub fn parse_numbered(reply: &Reply) -> Option<(u32, String)> {
    let text = reply.lines.first()?;
    let rest = text.strip_prefix("Message #")?;
    let (number, rest) = rest.split_once(' ')?;
    let at = rest
        .strip_prefix("posted at ")
        .or_else(|| rest.strip_prefix("edited at "))
        .or_else(|| rest.strip_prefix("deleted at "))?;
    Some((number.parse().ok()?, at.to_string()))
}

/// The `RDM` timestamp that lists every post.
pub const BEGINNING: &str = "01 Jan 2000 00:00:00";

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_core::proto::reply::Code;

    #[test]
    fn reads_an_rdm_listing_with_semicolons_and_edits() {
        let r = Reply::lines(
            Code::OK,
            vec![
                "2 messages since 01 Jan 2000 00:00:00:".into(),
                "#1@4 yoda, 21 Nov 2026 10:26:41: a: b; c".into(),
                "#2@9 luke, 21 Nov 2026 10:26:42: x (edited)".into(),
            ],
        );
        let l = parse_rdm(&r);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].text, "a: b; c");
        assert_eq!(l[0].at, "21 Nov 2026 10:26:41");
        assert!(l[1].edited && l[1].author == "luke" && (l[1].number, l[1].id) == (2, 9));
    }

    #[test]
    fn reads_the_number_and_timestamp_of_an_acknowledgement() {
        let r = Reply::new(Code::OK, "Message #3 posted at 21 Nov 2026 22:30:01");
        assert_eq!(parse_numbered(&r), Some((3, "21 Nov 2026 22:30:01".into())));
    }
}
