//! A WebSocket frame into events, free of I/O. A frame holds one event as a JSON object (what
//! the generator's `/ws/logs` sends, even pretty-printed over several lines), or NDJSON / text
//! lines, one event per non-blank line, each read as `format=auto` reads it (shippers' JSON, any
//! text line). A binary frame is read as text when it is UTF-8, else refused whole (`not_utf8`);
//! a frame with nothing but blanks is refused (`empty`); a line longer than the line limit is
//! refused alone (`too_long`).

use logstream_core::ingest::text_line::{self, LineFormat};
use logstream_core::ingest::LineError;
use logstream_core::LogEvent;

/// How frames are read.
#[derive(Debug, Clone)]
pub struct Parsing {
    /// Service of an event that names none.
    pub default_service: String,
    /// Longest line (or JSON object) accepted.
    pub max_line_bytes: usize,
}

/// Calls `each` with every event of `frame` or why it is not one, in order; `binary` tells a
/// binary frame (its text not checked yet) from a text one; `now_ms` dates events without a time.
pub fn each_event(
    frame: &[u8],
    binary: bool,
    parsing: &Parsing,
    now_ms: i64,
    mut each: impl FnMut(Result<LogEvent, LineError>),
) {
    if binary && std::str::from_utf8(frame).is_err() {
        each(Err(LineError::new(
            "not_utf8",
            "a binary frame that is not UTF-8 text",
            None,
        )));
        return;
    }
    let trimmed = frame.trim_ascii();
    if trimmed.is_empty() {
        each(Err(LineError::new("empty", "an empty frame", None)));
        return;
    }
    if one_json_document(trimmed) {
        each(line_event(trimmed, parsing, now_ms));
        return;
    }
    for line in trimmed.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        each(line_event(line, parsing, now_ms));
    }
}

/// Whether a frame of several lines is one JSON object after all (pretty-printed), not NDJSON.
fn one_json_document(trimmed: &[u8]) -> bool {
    trimmed.contains(&b'\n')
        && trimmed.starts_with(b"{")
        && trimmed.ends_with(b"}")
        && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok()
}

/// One line's event, or why it is not one.
fn line_event(line: &[u8], parsing: &Parsing, now_ms: i64) -> Result<LogEvent, LineError> {
    if line.len() > parsing.max_line_bytes {
        return Err(LineError::new(
            "too_long",
            format!(
                "a line of {} bytes, over the limit of {} (LOGSTREAM_INGEST_MAX_LINE_BYTES)",
                line.len(),
                parsing.max_line_bytes
            ),
            None,
        ));
    }
    text_line::event_from_line(LineFormat::Auto, line, &parsing.default_service, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_791_640_536_789;

    fn outcomes(frame: &[u8], binary: bool) -> Vec<Result<(String, String), &'static str>> {
        let parsing = Parsing {
            default_service: "ws".into(),
            max_line_bytes: 100,
        };
        let mut got = Vec::new();
        each_event(frame, binary, &parsing, NOW, |r| {
            got.push(r.map(|e| (e.service, e.message)).map_err(|e| e.reason))
        });
        got
    }

    fn event(service: &str, message: &str) -> Result<(String, String), &'static str> {
        Ok((service.to_owned(), message.to_owned()))
    }

    #[test]
    fn a_json_frame_is_one_event() {
        let frame = br#"{"timestamp":"2026-10-10T13:55:36Z","level":"INFO","service":"api","message":"hi"}"#;
        assert_eq!(outcomes(frame, false), [event("api", "hi")]);
        let pretty = b"{\n  \"message\": \"pretty\",\n  \"service\": \"api\"\n}\n";
        assert_eq!(outcomes(pretty, false), [event("api", "pretty")]);
    }

    #[test]
    fn lines_are_events_each_and_blank_lines_are_skipped() {
        let frame =
            b"{\"message\":\"a\"}\r\n\n  \nplain b\n{\"message\":\"c\",\"timestamp\":[1]}\n";
        assert_eq!(
            outcomes(frame, false),
            [
                event("ws", "a"),
                event("ws", "plain b"),
                Err("invalid_field")
            ]
        );
    }

    #[test]
    fn empty_long_and_wrong_frames_are_rejected() {
        assert_eq!(outcomes(b"", false), [Err("empty")]);
        assert_eq!(outcomes(b" \n\r\n ", true), [Err("empty")]);
        assert_eq!(outcomes(b"\xff\xfe\x00garbage", true), [Err("not_utf8")]);
        assert_eq!(
            outcomes(br#"{"level":"info"}"#, false),
            [Err("missing_field")]
        );
        let long = [b"x".repeat(101), b"\nshort".to_vec()].concat();
        assert_eq!(
            outcomes(&long, false),
            [Err("too_long"), event("ws", "short")]
        );
        assert_eq!(
            outcomes(b"binary but text", true),
            [event("ws", "binary but text")]
        );
    }
}
