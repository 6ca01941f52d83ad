//! Cutting a TCP byte stream into lines.

use super::MAX_LINE;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`] bytes; its bytes were discarded up to its end.
    TooLong,
}

/// Accumulates bytes and yields whole lines.
///
/// Holds at most [`MAX_LINE`] bytes of an unfinished line; once a line is known to be too long
/// the rest of it is dropped as it arrives and a single [`Frame::TooLong`] is reported when it
/// ends, so the connection stays usable. When idle the buffer is released, so an idle
/// connection costs no buffer memory.
#[derive(Debug, Default)]
pub struct LineFramer {
    partial: Vec<u8>,
    overflowing: bool,
}

impl LineFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed `bytes`, appending every frame completed by them to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (head, rest) = (&bytes[..i], &bytes[i + 1..]);
                    bytes = rest;
                    if self.overflowing || self.partial.len() + head.len() > MAX_LINE + 1 {
                        self.overflowing = false;
                        self.partial = Vec::new();
                        out.push(Frame::TooLong);
                        continue;
                    }
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(head);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > MAX_LINE {
                        out.push(Frame::TooLong);
                    } else {
                        out.push(Frame::Line(line));
                    }
                }
                None => {
                    if !self.overflowing {
                        if self.partial.len() + bytes.len() > MAX_LINE + 1 {
                            self.overflowing = true;
                            self.partial = Vec::new();
                        } else {
                            self.partial.extend_from_slice(bytes);
                        }
                    }
                    bytes = &[];
                }
            }
        }
    }

    /// Whether an unfinished line is pending (used to report a truncated last line at EOF).
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty() || self.overflowing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        out
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_crlf() {
        let out = frames(&[b"MSG he", b"llo\r\nOU", b"T\n"]);
        assert_eq!(
            out,
            vec![
                Frame::Line(b"MSG hello".to_vec()),
                Frame::Line(b"OUT".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let mut line = vec![b'a'; MAX_LINE];
        line.push(b'\n');
        assert_eq!(frames(&[&line]), vec![Frame::Line(vec![b'a'; MAX_LINE])]);
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_the_stream_recovers() {
        let big = vec![b'x'; MAX_LINE * 3];
        let out = frames(&[&big, &big, b"\nOUT\n"]);
        assert_eq!(out, vec![Frame::TooLong, Frame::Line(b"OUT".to_vec())]);
    }

    #[test]
    fn an_oversized_line_in_one_chunk_is_refused() {
        let mut big = vec![b'x'; MAX_LINE + 1];
        big.extend_from_slice(b"\nATU\n");
        assert_eq!(
            frames(&[&big]),
            vec![Frame::TooLong, Frame::Line(b"ATU".to_vec())]
        );
    }
}
