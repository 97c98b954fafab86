//! Syslog over a byte stream (TCP, TLS): the two framings of RFC 6587, told apart at the start
//! of every frame. A frame starting with a digit is octet-counted (`LEN SP MSG`, §3.4.1); any
//! other is a line ended by LF (non-transparent framing, §3.4.2; a CR before the LF and NUL as
//! a delimiter, as some senders write, are taken too). Pure: the connection pushes the bytes it
//! reads and takes the frames out.
//!
//! A frame longer than the limit is not buffered: an octet-counted one is skipped by its count
//! (reported as `TooLong(count)`), a line is discarded up to its LF (reported as
//! `TooLong(limit + 1)`, whatever its length); either once, and the frames after it are kept.

/// Why bytes of the stream could not be a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes or more is longer than the limit")]
    TooLong(usize),
    #[error("octet count {0:?} is not a number followed by a space")]
    BadCount(String),
}

impl FrameError {
    /// A short stable label (the `reason` of the rejected counter).
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooLong(_) => "too_long",
            FrameError::BadCount(_) => "bad_octet_count",
        }
    }
}

/// Digits an octet count may have (RFC 6587 allows any; more than 9 is beyond any limit).
const MAX_COUNT_DIGITS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Start,
    /// Skipping this many more bytes of an octet-counted frame over the limit.
    Skipping(usize),
    /// Discarding a line over the limit up to its LF.
    Discarding,
}

/// The frames of one connection.
#[derive(Debug)]
pub struct Framer {
    buffer: Vec<u8>,
    /// Where the unread bytes of `buffer` start.
    start: usize,
    max_frame: usize,
    state: State,
}

/// One frame: a message, or what went wrong instead.
pub type Frame = Result<Vec<u8>, FrameError>;

impl Framer {
    pub fn new(max_frame: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            max_frame,
            state: State::Start,
        }
    }

    /// Bytes held that are not a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if the bytes pushed hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let unread = &self.buffer[self.start..];
            match self.state {
                State::Skipping(left) => {
                    let skip = left.min(unread.len());
                    self.start += skip;
                    if skip < left {
                        self.state = State::Skipping(left - skip);
                        return None;
                    }
                    self.state = State::Start;
                }
                State::Discarding => match unread.iter().position(|&b| b == b'\n' || b == b'\0') {
                    Some(at) => {
                        self.start += at + 1;
                        self.state = State::Start;
                    }
                    None => {
                        self.start = self.buffer.len();
                        return None;
                    }
                },
                State::Start => {
                    // Blank separators between frames are not frames.
                    let blank = unread
                        .iter()
                        .take_while(|&&b| matches!(b, b'\n' | b'\r' | b'\0'))
                        .count();
                    self.start += blank;
                    let unread = &self.buffer[self.start..];
                    let first = *unread.first()?;
                    return if first.is_ascii_digit() {
                        self.octet_counted()
                    } else {
                        self.line()
                    };
                }
            }
        }
    }

    /// The last frame of a stream that ended: a line without its LF.
    pub fn finish(&mut self) -> Option<Frame> {
        let frame = self.next_frame();
        if frame.is_some() {
            return frame;
        }
        let rest = &self.buffer[self.start..];
        if self.state != State::Start || rest.is_empty() {
            return None;
        }
        let frame = trim_line(rest).to_vec();
        self.start = self.buffer.len();
        (!frame.is_empty()).then_some(Ok(frame))
    }

    fn octet_counted(&mut self) -> Option<Frame> {
        let unread = &self.buffer[self.start..];
        let digits = unread.iter().take_while(|b| b.is_ascii_digit()).count();
        let Some(&after) = unread.get(digits) else {
            if digits > MAX_COUNT_DIGITS {
                return Some(self.bad_count(digits));
            }
            return None;
        };
        if after != b' ' || digits > MAX_COUNT_DIGITS {
            return Some(self.bad_count(digits));
        }
        // Digits only: the parse cannot fail, nor overflow with at most 9 of them.
        let count: usize = std::str::from_utf8(&unread[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        if count > self.max_frame {
            self.start += digits + 1;
            self.state = State::Skipping(count);
            return Some(Err(FrameError::TooLong(count)));
        }
        let body = digits + 1;
        if unread.len() < body + count {
            return None;
        }
        let frame = unread[body..body + count].to_vec();
        self.start += body + count;
        Some(Ok(frame))
    }

    /// Not a count after all: the frame is taken for a line (discarded up to its LF).
    fn bad_count(&mut self, digits: usize) -> Frame {
        let unread = &self.buffer[self.start..];
        let shown = String::from_utf8_lossy(&unread[..(digits + 1).min(unread.len()).min(16)]);
        let error = FrameError::BadCount(shown.into_owned());
        self.state = State::Discarding;
        Err(error)
    }

    fn line(&mut self) -> Option<Frame> {
        let unread = &self.buffer[self.start..];
        let searched = unread.len().min(self.max_frame + 2);
        match unread[..searched]
            .iter()
            .position(|&b| b == b'\n' || b == b'\0')
        {
            Some(at) => {
                let frame = trim_line(&unread[..at]);
                self.start += at + 1;
                if frame.len() > self.max_frame {
                    return Some(Err(FrameError::TooLong(self.max_frame + 1)));
                }
                Some(Ok(frame.to_vec()))
            }
            // Longer than the limit however it goes on: skip what was searched, then the rest
            // of the line (the frames after it are kept, however the stream was split).
            None if searched == self.max_frame + 2 => {
                self.start += searched;
                self.state = State::Discarding;
                Some(Err(FrameError::TooLong(self.max_frame + 1)))
            }
            None => None,
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    fn ok(text: &str) -> Frame {
        Ok(text.as_bytes().to_vec())
    }

    #[test]
    fn both_framings_are_read_even_mixed_on_one_connection() {
        let mut f = Framer::new(100);
        f.push(b"<13>a line\n12 <13>counted\n<13>crlf\r\n\n");
        assert_eq!(
            frames(&mut f),
            vec![ok("<13>a line"), ok("<13>counted\n"), ok("<13>crlf")]
        );
        f.push(b"5 ab");
        assert_eq!(frames(&mut f), vec![]);
        f.push(b"cd\0<13>nul-ended\0");
        assert_eq!(frames(&mut f), vec![ok("abcd\0"), ok("<13>nul-ended")]);
        f.push(b"<13>no lf at the end");
        assert_eq!(frames(&mut f), vec![]);
        assert_eq!(f.finish(), Some(ok("<13>no lf at the end")));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn frames_over_the_limit_are_skipped_and_reported_once() {
        let mut f = Framer::new(10);
        f.push(b"20 0123456789");
        assert_eq!(frames(&mut f), vec![Err(FrameError::TooLong(20))]);
        f.push(b"0123456789<13>ok\n");
        assert_eq!(frames(&mut f), vec![ok("<13>ok")]);
        f.push(b"<13>this line is too long");
        assert_eq!(frames(&mut f), vec![Err(FrameError::TooLong(11))]);
        f.push(b" and goes on\n<13>next\n");
        assert_eq!(frames(&mut f), vec![ok("<13>next")]);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn a_count_that_is_not_one_discards_the_line() {
        let mut f = Framer::new(100);
        f.push(b"2026-10-10 a line starting with a digit\n<13>next\n");
        let got = frames(&mut f);
        assert_eq!(got.len(), 2);
        assert!(matches!(got[0], Err(FrameError::BadCount(_))));
        assert_eq!(got[1], ok("<13>next"));
        let mut f = Framer::new(100);
        f.push(b"12345678901234");
        assert!(matches!(f.next_frame(), Some(Err(FrameError::BadCount(_)))));
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_the_stream_gives_the_same_frames(
            messages in proptest::collection::vec("[ -~]{0,90}", 0..20),
            counted in proptest::collection::vec(proptest::prelude::any::<bool>(), 20),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let m = format!("<13>{m}");
                if counted[i] {
                    stream.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    stream.extend_from_slice(format!("{m}\n").as_bytes());
                }
                let kept = if counted[i] { m.as_str() } else { m.trim_end_matches('\r') };
                expected.push(match (kept.len() > 64, counted[i]) {
                    (false, _) => ok(kept),
                    (true, true) => Err(FrameError::TooLong(kept.len())),
                    (true, false) => Err(FrameError::TooLong(65)),
                });
            }
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < stream.len()).collect();
            cuts.sort_unstable();
            let mut f = Framer::new(64);
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                f.push(&stream[from..cut]);
                from = cut;
                got.extend(frames(&mut f));
            }
            got.extend(f.finish());
            proptest::prop_assert_eq!(got, expected);
        }

        #[test]
        fn never_panics_nor_holds_more_than_the_limit(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100), 0..20),
        ) {
            let mut f = Framer::new(32);
            for chunk in chunks {
                f.push(&chunk);
                while let Some(frame) = f.next_frame() {
                    if let Ok(frame) = frame {
                        proptest::prop_assert!(frame.len() <= 32);
                    }
                }
                proptest::prop_assert!(f.pending() <= 32 + 2 + 100, "{}", f.pending());
            }
        }
    }
}
