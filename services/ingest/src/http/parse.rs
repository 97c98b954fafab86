//! A request body into events and per-line rejections, by what the body is: NDJSON (one JSON
//! object per line), a JSON array of objects, or text lines in a format (or `auto`). Lines
//! are numbered from 1 (an array's elements too); blank lines are skipped, not counted.

use logstream_core::ingest::shipper_json::{self, Defaults};
use logstream_core::ingest::text_line::{self, LineFormat};
use logstream_core::ingest::LineError;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::publisher::{Encoded, Publisher};

/// What a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Ndjson,
    JsonArray,
    Lines(LineFormat),
}

impl BodyKind {
    /// From the `Content-Type` (and the `format` asked for), else from the first byte.
    pub fn of(content_type: Option<&str>, format: LineFormat, body: &[u8]) -> Self {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        let mut mime = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        // What clients send when they name nothing (curl -d, libcurl in syslog-ng's http()).
        if mime == "application/x-www-form-urlencoded" || mime == "application/octet-stream" {
            mime.clear();
        }
        let json_like = matches!(
            mime.as_str(),
            "application/json"
                | "application/x-ndjson"
                | "application/ndjson"
                | "application/jsonlines"
                | "application/x-json-stream"
        );
        match (json_like, mime.is_empty(), format) {
            (_, _, LineFormat::Named(logstream_core::format::Format::Json)) => BodyKind::Ndjson,
            (true, _, _) | (false, true, LineFormat::Auto) => match first {
                Some(b'[') => BodyKind::JsonArray,
                Some(b'{') => BodyKind::Ndjson,
                _ if json_like => BodyKind::Ndjson,
                _ => BodyKind::Lines(format),
            },
            _ => BodyKind::Lines(format),
        }
    }
}

/// One line that was not accepted, as the answer lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Rejection {
    /// The line's number in the body, from 1 (an array's element's).
    pub line: usize,
    pub error: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub field: Option<&'static str>,
    #[serde(skip)]
    #[schema(ignore)]
    pub reason: &'static str,
}

/// A body taken apart.
#[derive(Default)]
pub struct Parsed {
    /// Events received (accepted or rejected).
    pub received: usize,
    /// The accepted events with their line numbers.
    pub accepted: Vec<(usize, Encoded)>,
    /// The first [`MAX_LISTED`] rejections.
    pub rejected: Vec<Rejection>,
    /// All rejections, by reason.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// List every rejection, not only the first [`MAX_LISTED`] (an answer that has one item per
    /// event, as the bulk API's, needs them all; the event limit bounds them).
    pub list_all: bool,
}

impl Parsed {
    /// Keeps a rejection (listed while there are fewer than [`MAX_LISTED`]).
    pub fn reject(&mut self, rejection: Rejection) {
        *self.rejected_by_reason.entry(rejection.reason).or_default() += 1;
        if self.list_all || self.rejected.len() < MAX_LISTED {
            self.rejected.push(rejection);
        }
    }

    /// Takes one line (number `line`) read by `read`: accepted (encoded for Kafka), or
    /// rejected with why; the whole body is refused past the event limit.
    pub fn take(
        &mut self,
        limits: Limits,
        line: usize,
        bytes: &[u8],
        read: impl FnOnce(&[u8]) -> Result<logstream_core::LogEvent, LineError>,
    ) -> Result<(), BodyRefused> {
        if self.received >= limits.max_events {
            return Err(BodyRefused::TooManyEvents(limits.max_events));
        }
        self.received += 1;
        let outcome = if bytes.len() > limits.max_line {
            Err(LineError::new(
                "too_long",
                format!(
                    "{} bytes is more than the line limit of {}",
                    bytes.len(),
                    limits.max_line
                ),
                None,
            ))
        } else {
            read(bytes).and_then(|event| {
                Publisher::encode(&event)
                    .map_err(|e| LineError::new("invalid_field", e.to_string(), Some("attributes")))
            })
        };
        match outcome {
            Ok(encoded) => self.accepted.push((line, encoded)),
            Err(e) => self.reject(Rejection {
                line,
                error: e.error,
                field: e.field,
                reason: e.reason,
            }),
        }
        Ok(())
    }
}

/// Rejections an answer lists at most (the count is always whole).
pub const MAX_LISTED: usize = 1000;

/// The whole body cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyRefused {
    #[error("the body is not a JSON array of objects: {0}")]
    NotAnArray(String),
    #[error("the body holds more than {0} events; send it in smaller batches")]
    TooManyEvents(usize),
}

/// Limits on one body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    pub max_events: usize,
}

/// Takes `body` apart into events (encoded for Kafka) and rejections.
pub fn parse(
    kind: BodyKind,
    body: &[u8],
    defaults: Defaults<'_>,
    limits: Limits,
) -> Result<Parsed, BodyRefused> {
    let mut parsed = Parsed::default();
    match kind {
        BodyKind::JsonArray => {
            let elements: Vec<&RawValue> =
                serde_json::from_slice(body).map_err(|e| BodyRefused::NotAnArray(e.to_string()))?;
            for (i, raw) in elements.iter().enumerate() {
                parsed.take(limits, i + 1, raw.get().as_bytes(), |b| {
                    shipper_json::event_from_json(b, defaults)
                })?;
            }
        }
        BodyKind::Ndjson | BodyKind::Lines(_) => {
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match kind {
                    BodyKind::Lines(format) => parsed.take(limits, i + 1, line, |b| {
                        text_line::event_from_line(format, b, defaults.service, defaults.now_ms)
                    })?,
                    _ => parsed.take(limits, i + 1, line, |b| {
                        shipper_json::event_from_json(b, defaults)
                    })?,
                }
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstream_core::format::Format;

    fn limits(max_line: usize) -> Limits {
        Limits {
            max_line,
            max_events: 100,
        }
    }

    const DEFAULTS: Defaults<'static> = Defaults {
        service: "web",
        now_ms: 1_791_640_536_789,
    };

    #[test]
    fn the_kind_comes_from_the_content_type_then_the_first_byte() {
        let auto = LineFormat::Auto;
        assert_eq!(
            BodyKind::of(Some("application/json"), auto, b" [{}]"),
            BodyKind::JsonArray
        );
        assert_eq!(
            BodyKind::of(Some("application/json"), auto, b"{}\n{}"),
            BodyKind::Ndjson
        );
        assert_eq!(
            BodyKind::of(Some("application/x-ndjson; charset=utf-8"), auto, b"x"),
            BodyKind::Ndjson
        );
        assert_eq!(BodyKind::of(None, auto, b"{}"), BodyKind::Ndjson);
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(BodyKind::of(form, auto, b"{}"), BodyKind::Ndjson);
        assert_eq!(
            BodyKind::of(None, auto, b"Nov 30 ..."),
            BodyKind::Lines(auto)
        );
        assert_eq!(
            BodyKind::of(Some("text/plain"), auto, b"{}"),
            BodyKind::Lines(auto)
        );
        let apache = LineFormat::Named(Format::Apache);
        assert_eq!(BodyKind::of(None, apache, b"{}"), BodyKind::Lines(apache));
        let json = LineFormat::Named(Format::Json);
        assert_eq!(
            BodyKind::of(Some("text/plain"), json, b"{}"),
            BodyKind::Ndjson
        );
    }

    #[test]
    fn a_bad_line_is_rejected_alone_with_its_number() {
        let body = b"{\"msg\":\"one\"}\n\nnot json\r\n{\"msg\":\"three\",\"level\":\"LOUD\"}\n{\"msg\":\"four\"}";
        let parsed = parse(BodyKind::Ndjson, body, DEFAULTS, limits(1000)).expect("parsed");
        assert_eq!((parsed.received, parsed.accepted.len()), (4, 2));
        let lines: Vec<(usize, &str, Option<&str>)> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason, r.field))
            .collect();
        assert_eq!(
            lines,
            vec![
                (3, "invalid_json", None),
                (4, "invalid_level", Some("level"))
            ]
        );
    }

    #[test]
    fn arrays_and_text_lines_and_the_line_limit() {
        let parsed = parse(
            BodyKind::JsonArray,
            br#"[{"msg":"a"}, 5, {"msg":"b"}]"#,
            DEFAULTS,
            limits(1000),
        )
        .expect("parsed");
        assert_eq!((parsed.received, parsed.accepted.len()), (3, 2));
        assert_eq!(parsed.rejected[0].line, 2);
        assert!(parse(BodyKind::JsonArray, b"[{", DEFAULTS, limits(1000)).is_err());
        let text = b"WARN a\nERROR b\n".to_vec();
        let parsed = parse(
            BodyKind::Lines(LineFormat::Auto),
            &text,
            DEFAULTS,
            limits(1000),
        )
        .expect("parsed");
        assert_eq!((parsed.received, parsed.accepted.len()), (2, 2));
        let parsed = parse(
            BodyKind::Lines(LineFormat::Auto),
            b"short\nthis one is long",
            DEFAULTS,
            limits(8),
        )
        .expect("parsed");
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(
            (parsed.rejected[0].line, parsed.rejected[0].reason),
            (2, "too_long")
        );
    }

    #[test]
    fn a_body_of_too_many_events_is_refused_and_rejections_are_listed_up_to_a_limit() {
        let many = b"x\n".repeat(101);
        let refused = parse(
            BodyKind::Lines(LineFormat::Auto),
            &many,
            DEFAULTS,
            limits(10),
        );
        assert!(matches!(refused, Err(BodyRefused::TooManyEvents(100))));
        let bad = b"{\n".repeat(2000);
        let limits = Limits {
            max_line: 100,
            max_events: 5000,
        };
        let parsed = parse(BodyKind::Ndjson, &bad, DEFAULTS, limits).expect("parsed");
        assert_eq!(
            (
                parsed.rejected.len(),
                parsed.rejected_by_reason.values().sum::<u64>()
            ),
            (MAX_LISTED, 2000)
        );
    }
}
