//! Cutting a TCP byte stream into lines.

use super::MAX_LINE;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// A line longer than the limit. Reported as soon as the limit is passed, not when the
    /// line ends; the rest of it is discarded as it arrives, up to its `\n`.
    TooLong,
    /// More than the runaway limit arrived without a newline (see
    /// [`LineFramer::with_limits`]): the peer is not speaking a line protocol. Reported once;
    /// everything after it is discarded.
    Runaway,
}

/// Accumulates bytes and yields whole lines, one at a time.
///
/// Bytes go in with [`LineFramer::extend`] and frames come out with
/// [`LineFramer::next_frame`], so a caller may stop taking frames (a connection whose output
/// is backed up, say) and keep the rest buffered; [`LineFramer::buffered`] says how much that
/// is. An unfinished line is held up to the line limit; past it a [`Frame::TooLong`] is
/// reported at once and the rest of the line is dropped as it arrives, so the connection stays
/// usable and its memory bounded. When idle the buffer is released, so an idle connection
/// costs no buffer memory.
#[derive(Debug)]
pub struct LineFramer {
    /// Unconsumed bytes from `start`: whole lines, then the beginning of an unfinished one.
    buf: Vec<u8>,
    start: usize,
    /// Bytes from `start` known to hold no `\n` (so a long unfinished line is scanned once).
    scanned: usize,
    /// Inside a line already reported too long: how many of its bytes were discarded.
    skipping: Option<u64>,
    /// A runaway line was reported: everything is discarded from now on.
    dead: bool,
    max_line: usize,
    runaway: Option<u64>,
}

impl Default for LineFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineFramer {
    /// A framer for lines of at most [`MAX_LINE`] bytes, with no runaway limit.
    pub fn new() -> Self {
        Self::with_limits(MAX_LINE, None)
    }

    /// A framer for lines of at most `max_line` bytes (without the line ending). With
    /// `runaway`, a line that runs on for more than that many bytes without a newline is
    /// reported as [`Frame::Runaway`] and the framer discards everything after it.
    pub fn with_limits(max_line: usize, runaway: Option<u64>) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: None,
            dead: false,
            max_line,
            runaway,
        }
    }

    /// Feed `bytes`, appending every frame completed by them to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        self.extend(bytes);
        while let Some(frame) = self.next_frame() {
            out.push(frame);
        }
    }

    /// Buffer `bytes`; take the frames with [`LineFramer::next_frame`].
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.dead {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.dead {
                return None;
            }
            let pending = &self.buf[self.start..];
            let newline = pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + self.scanned);
            if let Some(discarded) = self.skipping {
                match newline {
                    Some(i) => {
                        self.skipping = None;
                        self.consume(i + 1);
                        continue;
                    }
                    None => {
                        let len = pending.len();
                        let discarded = discarded + len as u64;
                        self.consume(len);
                        self.skipping = Some(discarded);
                        if self.runaway.is_some_and(|limit| discarded > limit) {
                            self.dead = true;
                            self.buf = Vec::new();
                            self.start = 0;
                            return Some(Frame::Runaway);
                        }
                        return None;
                    }
                }
            }
            return match newline {
                Some(i) => {
                    let mut line = &pending[..i];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    let frame = if line.len() > self.max_line {
                        Frame::TooLong
                    } else {
                        Frame::Line(line.to_vec())
                    };
                    self.consume(i + 1);
                    Some(frame)
                }
                // Longer than any line with its `\r` can be: too long already.
                None if pending.len() > self.max_line + 1 => {
                    let len = pending.len();
                    self.consume(len);
                    self.skipping = Some(len as u64);
                    Some(Frame::TooLong)
                }
                None => {
                    self.scanned = pending.len();
                    None
                }
            };
        }
    }

    /// Drop `n` bytes from the front of the pending ones.
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.scanned = 0;
        if self.start >= self.buf.len() {
            // Idle: give the memory back.
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes held: whole lines not yet taken and the start of an unfinished line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a complete line is waiting to be taken.
    pub fn has_line(&self) -> bool {
        !self.dead && self.buf[self.start..].contains(&b'\n')
    }

    /// Whether [`LineFramer::next_frame`] has something to do: a whole line, or bytes that
    /// are already too long or belong to a line being discarded.
    pub fn has_frame(&self) -> bool {
        let pending = &self.buf[self.start..];
        !self.dead
            && !pending.is_empty()
            && (self.skipping.is_some()
                || pending.len() > self.max_line + 1
                || pending[self.scanned..].contains(&b'\n'))
    }

    /// Whether an unfinished line is pending (used to report a truncated last line at EOF).
    pub fn has_partial(&self) -> bool {
        self.buffered() > 0 || self.skipping.is_some()
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
    fn a_line_of_exactly_the_limit_is_accepted_with_either_ending() {
        let mut line = vec![b'a'; MAX_LINE];
        line.extend_from_slice(b"\r\n");
        line.extend(vec![b'b'; MAX_LINE]);
        line.push(b'\n');
        assert_eq!(
            frames(&[&line]),
            vec![
                Frame::Line(vec![b'a'; MAX_LINE]),
                Frame::Line(vec![b'b'; MAX_LINE])
            ]
        );
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

    #[test]
    fn a_line_is_reported_too_long_as_soon_as_it_passes_the_limit_before_its_newline() {
        let mut f = LineFramer::new();
        f.extend(&vec![b'x'; MAX_LINE + 1]);
        assert_eq!(f.next_frame(), None, "could still end in \\r\\n");
        f.extend(b"x");
        assert_eq!(f.next_frame(), Some(Frame::TooLong));
        // What follows is dropped without being held.
        f.extend(&vec![b'x'; 100_000]);
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
        f.extend(b"tail\nATU\n");
        assert_eq!(f.next_frame(), Some(Frame::Line(b"ATU".to_vec())));
    }

    #[test]
    fn a_runaway_line_is_reported_once_and_the_rest_discarded() {
        let mut f = LineFramer::with_limits(MAX_LINE, Some(1 << 20));
        let chunk = vec![b'y'; 64 * 1024];
        let mut seen = Vec::new();
        for _ in 0..20 {
            f.extend(&chunk);
            while let Some(frame) = f.next_frame() {
                seen.push(frame);
            }
            assert!(f.buffered() <= chunk.len());
        }
        assert_eq!(seen, vec![Frame::TooLong, Frame::Runaway]);
        f.extend(b"\nATU\n");
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn frames_can_be_taken_one_at_a_time_and_the_rest_stays_buffered() {
        let mut f = LineFramer::new();
        f.extend(b"ATU\nRCU\nMSG unfinished");
        assert!(f.has_line());
        assert_eq!(f.next_frame(), Some(Frame::Line(b"ATU".to_vec())));
        assert_eq!(f.buffered(), b"RCU\nMSG unfinished".len());
        assert_eq!(f.next_frame(), Some(Frame::Line(b"RCU".to_vec())));
        assert!(!f.has_line());
        assert_eq!(f.next_frame(), None);
        f.extend(b"\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Line(b"MSG unfinished".to_vec()))
        );
        assert!(!f.has_partial());
    }

    #[test]
    fn many_small_lines_in_one_chunk_cost_linear_time() {
        let mut f = LineFramer::new();
        let chunk = b"ATU\n".repeat(100_000);
        f.extend(&chunk);
        let mut n = 0;
        while let Some(Frame::Line(_)) = f.next_frame() {
            n += 1;
        }
        assert_eq!(n, 100_000);
    }
}
