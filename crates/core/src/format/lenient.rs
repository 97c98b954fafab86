//! Records that name no format (no `content-type` header: lines as shippers and files give
//! them), read leniently. The format is detected; invalid UTF-8 is replaced with U+FFFD and
//! flagged (`"_invalid_utf8": true` in the attributes); a line that turns out to be in no known
//! format is kept as a plain message (`"_format": "plain"`), its level read from the markers
//! it carries ([`level_marker`]), its service from the record key, its time the reader's clock.
//! Only what cannot be an event at all is rejected: an empty line, a JSON object that is not an
//! event, a time or a service beyond the bounds every format has.
//!
//! A record whose `content-type` names its format is read strictly ([`decode::decode`]): its
//! sender promised that format, and a mismatch is worth a dead letter with the reason.

use std::borrow::Cow;

use super::decode::{self, Rejected};
use super::{level_marker, Format};
use crate::event::{Level, LogEvent};
use crate::json::DecodeError;
use crate::storable::with_member;

/// The service of a plain line when the record has no key.
pub const UNKNOWN_SERVICE: &str = "unknown";

/// A decoded record, and what was assumed to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: LogEvent,
    /// The format the record was read in (named or detected); a plain line's is the one it was
    /// taken for.
    pub format: Format,
    /// Kept as a plain message: the line is in no known format.
    pub plain: bool,
    /// Bytes that were not UTF-8 were replaced with U+FFFD.
    pub replaced_utf8: bool,
}

/// Decodes a record as the collector reads it: strictly in the format its `content-type`
/// names, leniently (this module) when it names none.
pub fn decode_record(
    content_type: Option<&str>,
    bytes: &[u8],
    key: Option<&[u8]>,
    now_ms: i64,
) -> Result<Decoded, Rejected> {
    if content_type.is_some() {
        let format = decode::format_of(content_type, bytes)?;
        return decode::decode(format, bytes, key, now_ms).map(|event| Decoded {
            event,
            format,
            plain: false,
            replaced_utf8: false,
        });
    }
    let text = String::from_utf8_lossy(bytes);
    let replaced_utf8 = matches!(text, Cow::Owned(_));
    let format = decode::detect(text.as_bytes());
    let (mut event, plain) = match decode::decode_text(format, &text, key, now_ms) {
        Ok(event) => (event, false),
        Err(e) if unparsed(format, &e) => (plain(&text, key, now_ms, format, &e)?, true),
        Err(e) => return Err(e),
    };
    if replaced_utf8 {
        let attributes = event.attributes.take().unwrap_or_else(|| "{}".to_owned());
        event.attributes = Some(with_member(attributes, "\"_invalid_utf8\":true"));
    }
    Ok(Decoded {
        event,
        format,
        plain,
        replaced_utf8,
    })
}

/// Whether `error` says only that the line is not in `format` (so it may be a plain line), not
/// that it is an event of that format with a bad field.
fn unparsed(format: Format, error: &Rejected) -> bool {
    match format {
        Format::Json => error.reason == DecodeError::InvalidJson(String::new()).reason(),
        Format::Apache => error.reason == "invalid_apache",
        Format::Syslog5424 => error.reason == "invalid_syslog5424",
        Format::Syslog3164 => error.reason == "invalid_syslog3164",
    }
}

/// `line` as a plain message. The parse error is kept when the line looked like a format
/// (a `<PRI>`, a `{`, a BSD time), not for the catch-all (Apache), which most lines are not.
fn plain(
    line: &str,
    key: Option<&[u8]>,
    now_ms: i64,
    looked_like: Format,
    error: &Rejected,
) -> Result<LogEvent, Rejected> {
    let message = line.trim_matches(['\r', '\n']);
    if message.trim().is_empty() {
        return Err(Rejected {
            reason: "missing_field",
            detail: "the line is empty".to_owned(),
        });
    }
    let mut attributes = serde_json::json!({ "_format": "plain" });
    if looked_like != Format::Apache {
        attributes["_parse_error"] = serde_json::Value::String(error.to_string());
    }
    let service = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|k| !k.is_empty())
        .unwrap_or(UNKNOWN_SERVICE);
    decode::checked(LogEvent {
        timestamp_ms: now_ms,
        level: level_marker::level_in(message).unwrap_or(Level::Info),
        service: service.to_owned(),
        component: None,
        host: None,
        message: message.to_owned(),
        trace_id: None,
        span_id: None,
        parent_id: None,
        attributes: Some(attributes.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_791_640_536_789; // 2026-10-10T13:55:36.789Z

    fn lenient(bytes: &[u8], key: Option<&[u8]>) -> Result<Decoded, &'static str> {
        decode_record(None, bytes, key, NOW).map_err(|e| e.reason)
    }

    #[test]
    fn lines_in_no_known_format_are_kept_as_plain_messages_with_their_level() {
        let cases: [(&[u8], Level); 5] = [
            (
                b"[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
                Level::Error,
            ),
            (
                b"E0512 12:00:00.000123  4242 server.cc:42] lost",
                Level::Error,
            ),
            (b"2026-10-10 13:55:36,789 WARN  pool exhausted", Level::Warn),
            (b"ts=2026-10-10 level=debug msg=hello", Level::Debug),
            (b"just some words\n", Level::Info),
        ];
        for (line, level) in cases {
            let got = lenient(line, Some(b"web")).expect("stored");
            assert!(got.plain && !got.replaced_utf8);
            assert_eq!(got.event.level, level, "{}", String::from_utf8_lossy(line));
            assert_eq!(
                (got.event.service.as_str(), got.event.timestamp_ms),
                ("web", NOW)
            );
            assert_eq!(got.event.message, String::from_utf8_lossy(line).trim_end());
            assert_eq!(
                got.event.attributes.as_deref(),
                Some(r#"{"_format":"plain"}"#)
            );
        }
        let unkeyed = lenient(b"words", None).expect("stored");
        assert_eq!(unkeyed.event.service, UNKNOWN_SERVICE);
        let pri = lenient(b"<13>Foo bar", None).expect("stored");
        assert!(pri.plain);
        assert!(pri
            .event
            .attributes
            .is_some_and(|a| a.contains("_parse_error") && a.contains("invalid_syslog3164")));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged_not_rejected() {
        let access = b"10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] \"GET /a HTTP/1.1\" 200 5 \"http://x/\xe9t\xe9\" \"curl\"";
        let got = lenient(access, None).expect("stored");
        assert!(!got.plain && got.replaced_utf8);
        let attributes = got.event.attributes.expect("attributes");
        assert!(attributes.contains("\u{FFFD}t\u{FFFD}"), "{attributes}");
        assert!(
            attributes.ends_with(r#","_invalid_utf8":true}"#),
            "{attributes}"
        );
        let garbage = lenient(&[0xff, 0xfe, b'{', b'}'], None).expect("stored");
        assert!(garbage.plain && garbage.replaced_utf8);
        assert_eq!(
            garbage.event.attributes.as_deref(),
            Some(r#"{"_format":"plain","_invalid_utf8":true}"#)
        );
    }

    #[test]
    fn what_cannot_be_an_event_is_still_rejected() {
        assert_eq!(lenient(b"", None), Err("missing_field"));
        assert_eq!(lenient(b" \r\n", None), Err("missing_field"));
        assert_eq!(
            lenient(br#"{"timestamp":1,"service":"a"}"#, None),
            Err("missing_field")
        );
        let long_key = vec![b'k'; 300];
        assert_eq!(lenient(b"words", Some(&long_key)), Err("invalid_field"));
    }

    #[test]
    fn a_named_format_is_read_strictly() {
        let strict = decode_record(Some("text/apache-combined"), b"words", None, NOW);
        assert_eq!(strict.map_err(|e| e.reason), Err("invalid_apache"));
        let strict = decode_record(Some("text/apache-combined"), b"\xff", None, NOW);
        assert_eq!(strict.map_err(|e| e.reason), Err("invalid_utf8"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_are_rejected_with_a_known_reason(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            match decode_record(None, &bytes, Some(b"svc"), NOW) {
                Ok(decoded) => {
                    proptest::prop_assert!(crate::json::encode(&decoded.event).is_ok());
                    if decoded.plain {
                        proptest::prop_assert_eq!(decoded.event.timestamp_ms, NOW);
                    }
                }
                Err(e) => proptest::prop_assert!(decode::REASONS.contains(&e.reason)),
            }
        }

        #[test]
        fn printable_lines_are_never_rejected(line in "[ -~]{1,200}") {
            let stored = line.trim().is_empty()
                || line.trim_start().starts_with('{')
                || decode_record(None, line.as_bytes(), Some(b"svc"), NOW).is_ok();
            proptest::prop_assert!(stored, "{}", line);
        }
    }
}
