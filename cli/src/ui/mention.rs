//! Finding mentions of the user's own name in what others wrote.

use std::ops::Range;

use huddle_core::client::{Display, Tone};

/// Whether `b` can be part of a user name (`UserName`'s alphabet, less `.`, which more often
/// ends a sentence than continues a name: `thanks, yoda.` mentions yoda).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Byte ranges of `text` where `name` appears as a whole word, in any case (`Yoda`, `@yoda`,
/// `yoda:` all count; `yodas` and `ayoda` do not).
pub fn find(text: &str, name: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    if name.is_empty() || !name.is_ascii() {
        return found;
    }
    let hay = text.as_bytes();
    let needle = name.as_bytes();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let end = i + needle.len();
        if hay[i..end].eq_ignore_ascii_case(needle)
            && (i == 0 || !is_name_byte(hay[i - 1]))
            && (end == hay.len() || !is_name_byte(hay[end]))
        {
            found.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

/// Where the words of a post or private message begin in its displayed text: after the first
/// `": "`, which ends the header (`#3@17 luke, 07:46: `, `#3 luke, 01 Dec 2026 07:46:05: `,
/// `Private message from luke, 07:46: `; a time's own colons are never followed by a space).
/// The header names the author, which is no mention.
///
/// A stopgap: once the core marks the body of a post in [`Display`] (see the report of issue
/// 12), this reads that instead of the text.
fn body_start(text: &str) -> usize {
    text.find(": ").map_or(0, |i| i + 2)
}

/// The mentions of `name` in `display`: only in posts and private messages, only in their
/// words. Byte ranges into `display.text`.
pub fn in_display(display: &Display, name: &str) -> Vec<Range<usize>> {
    if !matches!(display.tone, Tone::Post | Tone::Private) {
        return Vec::new();
    }
    let start = body_start(&display.text);
    find(&display.text[start..], name)
        .into_iter()
        .map(|r| r.start + start..r.end + start)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(text: &str) -> Display {
        Display {
            tone: Tone::Post,
            text: text.into(),
            pushed: true,
        }
    }

    #[test]
    fn whole_words_in_any_case() {
        assert_eq!(find("hi yoda", "yoda").first(), Some(&(3..7)));
        assert_eq!(find("@Yoda: look", "yoda").first(), Some(&(1..5)));
        assert_eq!(find("thanks, YODA.", "yoda").len(), 1);
        assert!(find("yodas ayoda yoda_1 yoda-x", "yoda").is_empty());
        assert_eq!(find("yoda yoda", "yoda"), vec![0..4, 5..9]);
    }

    #[test]
    fn the_author_of_a_post_is_no_mention() {
        let own = post("#1 yoda (01 Dec 2026 07:46:05): back soon");
        assert!(in_display(&own, "yoda").is_empty());
        let other = post("#2 luke (01 Dec 2026 07:46:09): yoda, are you there?");
        let spans = in_display(&other, "yoda");
        assert_eq!(spans.len(), 1);
        assert_eq!(&other.text[spans[0].clone()], "yoda");
    }

    #[test]
    fn replies_and_notices_never_mention() {
        let d = Display {
            tone: Tone::Notice,
            text: "yoda is now online".into(),
            pushed: true,
        };
        assert!(in_display(&d, "yoda").is_empty());
    }

    #[test]
    fn hostile_text_is_searched_in_bounded_time() {
        let text = "yod".repeat(3000);
        assert!(find(&text, "yoda").is_empty());
        assert_eq!(find("é yoda é", "yoda").first(), Some(&(3..7)));
        assert!(find("yoda", "").is_empty());
    }
}
