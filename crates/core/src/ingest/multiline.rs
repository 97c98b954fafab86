//! Lines of a file into events: a line that does not start an event continues the one before it
//! (by default, a line that starts with a space or a tab, as the frames of Java and Python stack
//! traces do; or any line the start pattern does not match). An event is complete when the next
//! one starts, when no line came for a while (the caller asks), or when it reaches the size
//! limit. Each event carries the byte offset just past its last line, so a reader can say how
//! far its file has been turned into events.

use regex::bytes::Regex;

/// Which lines start an event.
#[derive(Debug, Clone)]
pub enum StartRule {
    /// Every line not starting with a space or a tab.
    NotIndented,
    /// Every line the pattern matches.
    Pattern(Regex),
}

impl StartRule {
    fn starts(&self, line: &[u8]) -> bool {
        match self {
            StartRule::NotIndented => !matches!(line.first(), Some(b' ' | b'\t')),
            StartRule::Pattern(pattern) => pattern.is_match(line),
        }
    }
}

/// One event's text (its lines joined with `\n`) and the file offset just past its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub text: Vec<u8>,
    pub end_offset: u64,
}

/// Joins continuation lines to the event they continue.
#[derive(Debug, Clone)]
pub struct Multiline {
    rule: StartRule,
    max_bytes: usize,
    pending: Option<Assembled>,
    /// When the last line was taken (the caller's clock, milliseconds).
    last_line_ms: i64,
}

impl Multiline {
    /// `max_bytes`: an event that reaches it is complete (what follows starts a new one).
    pub fn new(rule: StartRule, max_bytes: usize) -> Self {
        Self {
            rule,
            max_bytes: max_bytes.max(1),
            pending: None,
            last_line_ms: 0,
        }
    }

    /// Takes one line (without its `\n`) ending at `end_offset`; returns the event it completed,
    /// if it completed one.
    pub fn push(&mut self, line: &[u8], end_offset: u64, now_ms: i64) -> Option<Assembled> {
        self.last_line_ms = now_ms;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match &mut self.pending {
            Some(event)
                if !self.rule.starts(line)
                    && event.text.len() + 1 + line.len() <= self.max_bytes =>
            {
                event.text.push(b'\n');
                event.text.extend_from_slice(line);
                event.end_offset = end_offset;
                None
            }
            _ => self.pending.replace(Assembled {
                text: line.to_vec(),
                end_offset,
            }),
        }
    }

    /// The pending event, when no line came for `idle_ms`.
    pub fn flush_idle(&mut self, now_ms: i64, idle_ms: i64) -> Option<Assembled> {
        if now_ms - self.last_line_ms >= idle_ms {
            self.pending.take()
        } else {
            None
        }
    }

    /// The pending event, whatever its age (the file ended for good).
    pub fn flush(&mut self) -> Option<Assembled> {
        self.pending.take()
    }

    /// Forgets the pending event (its lines will be read again).
    pub fn clear(&mut self) {
        self.pending = None;
    }

    /// Whether an event is waiting for its next line.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(rule: StartRule, text: &str, max: usize) -> Vec<Assembled> {
        let mut m = Multiline::new(rule, max);
        let mut offset = 0u64;
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            offset += line.len() as u64;
            out.extend(m.push(line.trim_end_matches('\n').as_bytes(), offset, 0));
        }
        out.extend(m.flush());
        out
    }

    fn texts(events: &[Assembled]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.text).into_owned())
            .collect()
    }

    #[test]
    fn a_stack_trace_is_one_event() {
        let log = "ERROR boom\njava.lang.IllegalStateException: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\nINFO next\n";
        let events = feed(StartRule::NotIndented, log, 1 << 20);
        assert_eq!(
            texts(&events),
            [
                "ERROR boom",
                "java.lang.IllegalStateException: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)",
                "INFO next"
            ]
        );
        assert_eq!(events[1].end_offset, log.find("INFO").expect("INFO") as u64);
        assert_eq!(events[2].end_offset, log.len() as u64);
    }

    #[test]
    fn a_start_pattern_decides() {
        let rule = StartRule::Pattern(Regex::new(r"^\d{4}-").expect("regex"));
        let log = "2026-12-01 ERROR x\nTraceback (most recent call last):\n  File \"a.py\"\nValueError: y\n2026-12-01 INFO z\n";
        assert_eq!(
            texts(&feed(rule, log, 1 << 20)),
            [
                "2026-12-01 ERROR x\nTraceback (most recent call last):\n  File \"a.py\"\nValueError: y",
                "2026-12-01 INFO z"
            ]
        );
    }

    #[test]
    fn the_size_limit_ends_an_event_and_idle_time_flushes_it() {
        assert_eq!(
            texts(&feed(StartRule::NotIndented, "a\n b\n c\n d\n", 6)),
            ["a\n b", " c\n d"]
        );
        let mut m = Multiline::new(StartRule::NotIndented, 100);
        assert_eq!(m.push(b"x", 2, 1000), None);
        assert_eq!(m.flush_idle(1500, 1000), None);
        assert!(m.is_pending());
        assert_eq!(m.flush_idle(2000, 1000).map(|e| e.end_offset), Some(2));
        assert!(!m.is_pending());
    }

    proptest! {
        /// Joined back, the events are the lines (CR dropped), in order, and each event's end
        /// offset is the end of its last line.
        #[test]
        fn events_are_the_lines_in_order(lines in prop::collection::vec("[ \tA-Za-z0-9]{0,20}", 0..50), max in 1usize..64) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let events = feed(StartRule::NotIndented, &text, max);
            let joined: Vec<String> = texts(&events).iter().flat_map(|t| t.split('\n').map(str::to_owned).collect::<Vec<_>>()).collect();
            prop_assert_eq!(&joined, &lines);
            let mut ends = Vec::new();
            let mut offset = 0u64;
            for l in &lines { offset += l.len() as u64 + 1; ends.push(offset); }
            for e in &events { prop_assert!(ends.contains(&e.end_offset)); }
            prop_assert!(events.windows(2).all(|w| w[0].end_offset < w[1].end_offset));
            if let Some(last) = events.last() { prop_assert_eq!(last.end_offset, offset); }
        }
    }
}
