//! The JSON wire form of a [`LogEvent`]:
//! `{"timestamp": RFC 3339 string or epoch milliseconds, "level", "service", "component", "host",
//! "message", "trace_id", "span_id", "parent_id", "attributes": {...}}`.
//!
//! Decoding never panics: anything that is not a valid event becomes a [`DecodeError`] whose
//! [`reason`](DecodeError::reason) is the short label used for dead-lettering and metrics.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::{Level, LogEvent};

mod flat;

/// Why bytes could not be decoded into a [`LogEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not valid UTF-8: {0}")]
    InvalidUtf8(String),
    #[error("payload is not a JSON object: {0}")]
    InvalidJson(String),
    #[error("field has the wrong type: {0}")]
    InvalidField(String),
    #[error("required field `{0}` is missing or empty")]
    MissingField(&'static str),
    #[error("invalid timestamp {0:?} (expected RFC 3339 or epoch milliseconds)")]
    InvalidTimestamp(String),
    #[error("invalid level: {0}")]
    InvalidLevel(String),
}

impl DecodeError {
    /// Every label [`reason`](DecodeError::reason) returns.
    pub const REASONS: [&'static str; 6] = [
        "invalid_utf8",
        "invalid_json",
        "invalid_field",
        "missing_field",
        "invalid_timestamp",
        "invalid_level",
    ];

    /// A short, stable label (bounded cardinality) for the `reason` metric label and DLQ header.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8(_) => "invalid_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::InvalidField(_) => "invalid_field",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::InvalidTimestamp(_) => "invalid_timestamp",
            DecodeError::InvalidLevel(_) => "invalid_level",
        }
    }
}

/// Epoch milliseconds (integer or float) or RFC 3339 text. Deserialized by a visitor rather
/// than `#[serde(untagged)]`, which buffers every value before trying each variant.
enum WireTimestamp<'a> {
    Millis(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTimestamp<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = WireTimestamp<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 time")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Millis(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(WireTimestamp::Float(v as f64), WireTimestamp::Millis))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Float(v))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default)]
struct WireIn<'a> {
    #[serde(default, borrow)]
    timestamp: Option<WireTimestamp<'a>>,
    #[serde(default, borrow)]
    level: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    service: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    component: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    attributes: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    timestamp: String,
    level: &'static str,
    service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<&'a RawValue>,
}

/// Earliest accepted event time: 1970-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest accepted event time: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Longest accepted `service` (it is part of the aggregates' primary key).
pub const MAX_SERVICE_LEN: usize = 256;

/// Deepest nesting of arrays and objects accepted in attributes: serde_json's own limit (its
/// parser refuses a 128th level), which `jsonb` would otherwise meet as a stack depth error.
pub const MAX_NESTING: usize = 127;

/// What one pass over JSON text finds out without parsing it into a tree.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    /// Nested at most the limit, and no number that an `f64` might not hold.
    Plain,
    /// Nested deeper than the limit.
    TooDeep,
    /// A number with an exponent or a run of 300 digits or more: only a full parse tells
    /// whether serde_json refuses it (out of range).
    BigNumber,
}

/// The [`Shape`] of JSON text `raw`, with nesting limited to `max` levels (brackets and digits
/// inside strings do not count). One pass, no allocation.
fn shape(raw: &str, max: usize) -> Shape {
    let (mut depth, mut digits, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    let mut big = false;
    for &b in raw.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'0'..=b'9' => {
                digits += 1;
                big |= digits >= 300;
                continue;
            }
            b'e' | b'E' if digits > 0 => big = true,
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Shape::TooDeep;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // A '.' continues a number's digits (an integer part and its fraction).
        if b != b'.' {
            digits = 0;
        }
    }
    if big {
        Shape::BigNumber
    } else {
        Shape::Plain
    }
}

/// [`storable_json`] of attributes serde_json has already read as one JSON value (a
/// `RawValue`, whose syntax it checked): the same verdict, but only attributes with a number
/// that might be out of an `f64`'s range are parsed again into a tree; for the rest one pass
/// checks the nesting.
fn storable_raw_value(raw: &str) -> Result<String, DecodeError> {
    match shape(raw, MAX_NESTING) {
        Shape::Plain => Ok(raw.to_owned()),
        Shape::TooDeep => Err(DecodeError::InvalidField(format!(
            "attributes: nested more than {MAX_NESTING} levels deep"
        ))),
        Shape::BigNumber => storable_json(raw),
    }
}

/// Attributes as they came, once they are known to be one JSON value of bounded nesting
/// (serde_json's limit of 128, which `jsonb` would otherwise meet as a stack depth error). What `jsonb` would refuse in them (`\u0000`, lone surrogates,
/// numbers beyond `numeric`) is made storable after decoding, for every format alike
/// (`crate::storable`).
pub(crate) fn storable_json(raw: &str) -> Result<String, DecodeError> {
    // serde_json's full parse checks the nesting, but refuses what the storability check
    // mends (lone surrogates, numbers out of range): check the mended text.
    let mended = crate::storable::json(raw).map(|(text, _)| text);
    serde_json::from_str::<serde_json::Value>(mended.as_deref().unwrap_or(raw))
        .map_err(|e| DecodeError::InvalidField(format!("attributes: {e}")))?;
    Ok(raw.to_owned())
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_timestamp(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Appends the JSON form of `event` to `out`.
pub fn encode_into(event: &LogEvent, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let attributes = match event.attributes.as_deref() {
        Some(text) => Some(serde_json::from_str::<&RawValue>(text)?),
        None => None,
    };
    let wire = WireOut {
        timestamp: format_timestamp(event.timestamp_ms),
        level: event.level.as_str(),
        service: &event.service,
        component: event.component.as_deref(),
        host: event.host.as_deref(),
        message: &event.message,
        trace_id: event.trace_id.as_deref(),
        span_id: event.span_id.as_deref(),
        parent_id: event.parent_id.as_deref(),
        attributes,
    };
    serde_json::to_writer(out, &wire)
}

/// The JSON form of `event`.
pub fn encode(event: &LogEvent) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(384);
    encode_into(event, &mut out)?;
    Ok(out)
}

fn non_empty(field: Option<Cow<'_, str>>) -> Option<String> {
    field.filter(|v| !v.is_empty()).map(Cow::into_owned)
}

/// Decodes one event from its JSON bytes.
pub fn decode(bytes: &[u8]) -> Result<LogEvent, DecodeError> {
    let wire = match flat::read(bytes) {
        Some(wire) => wire,
        None => read_with_serde(bytes)?,
    };
    event_of(wire)
}

/// The wire form as serde_json reads it, or why it is not one.
fn read_with_serde(bytes: &[u8]) -> Result<WireIn<'_>, DecodeError> {
    // No UTF-8 pass over the whole record first: serde_json checks the strings it keeps (and
    // the raw attributes); only a record it refuses is looked at again, to say why.
    serde_json::from_slice(bytes).map_err(|e| {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(utf8) => return DecodeError::InvalidUtf8(utf8.to_string()),
        };
        if e.classify() == serde_json::error::Category::Data && text.trim_start().starts_with('{') {
            DecodeError::InvalidField(e.to_string())
        } else {
            DecodeError::InvalidJson(e.to_string())
        }
    })
}

/// The event of a wire form, or why it is not one.
fn event_of(wire: WireIn<'_>) -> Result<LogEvent, DecodeError> {
    let timestamp_ms = match wire.timestamp {
        None => return Err(DecodeError::MissingField("timestamp")),
        Some(WireTimestamp::Millis(ms)) => ms,
        Some(WireTimestamp::Float(ms)) if ms.is_finite() && ms.abs() < 9.0e15 => ms as i64,
        Some(WireTimestamp::Float(ms)) => {
            return Err(DecodeError::InvalidTimestamp(ms.to_string()))
        }
        Some(WireTimestamp::Text(text)) => parse_rfc3339_ms(&text)
            .ok_or_else(|| DecodeError::InvalidTimestamp(text.into_owned()))?,
    };
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&timestamp_ms) {
        return Err(DecodeError::InvalidTimestamp(timestamp_ms.to_string()));
    }
    let level = match wire.level.as_deref() {
        None | Some("") => return Err(DecodeError::MissingField("level")),
        Some(text) => text
            .parse::<Level>()
            .map_err(|e| DecodeError::InvalidLevel(e.to_string()))?,
    };
    let service = non_empty(wire.service).ok_or(DecodeError::MissingField("service"))?;
    if service.len() > MAX_SERVICE_LEN {
        return Err(DecodeError::InvalidField(format!(
            "service must be at most {MAX_SERVICE_LEN} bytes"
        )));
    }
    let attributes = match wire.attributes.map(RawValue::get) {
        None | Some("null") => None,
        Some(raw) => Some(storable_raw_value(raw)?),
    };
    Ok(LogEvent {
        timestamp_ms,
        level,
        service,
        component: non_empty(wire.component),
        host: non_empty(wire.host),
        message: wire.message.map(Cow::into_owned).unwrap_or_default(),
        trace_id: non_empty(wire.trace_id),
        span_id: non_empty(wire.span_id),
        parent_id: non_empty(wire.parent_id),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> LogEvent {
        LogEvent {
            timestamp_ms: 1_763_900_000_123,
            level: Level::Warn,
            service: "orders".into(),
            component: Some("api".into()),
            host: Some("host-1".into()),
            message: "slow \"query\"\ttook 812 ms".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: Some("00f067aa0ba902b7".into()),
            parent_id: None,
            attributes: Some(r#"{"table":"orders","rows":3}"#.into()),
        }
    }

    #[test]
    fn round_trips() {
        let event = sample();
        let bytes = encode(&event).expect("encodes");
        assert_eq!(decode(&bytes), Ok(event));
    }

    proptest! {
        /// The one-pass nesting check agrees with serde_json's full parse (which the 5424
        /// path still uses) on valid JSON of any depth, brackets in strings included.
        #[test]
        fn nesting_check_agrees_with_serde_json(
            depth in 100usize..140,
            opens in proptest::collection::vec(prop_oneof![Just('['), Just('{')], 140),
            inner in r#"[\[\]{}a"]{0,4}"#,
        ) {
            let mut text = String::new();
            for open in &opens[..depth] {
                text.push_str(if *open == '[' { "[" } else { r#"{"k":"# });
            }
            text.push_str(&serde_json::to_string(&inner).expect("a string"));
            for open in opens[..depth].iter().rev() {
                text.push(if *open == '[' { ']' } else { '}' });
            }
            let parsed = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            prop_assert_eq!(shape(&text, MAX_NESTING) == Shape::Plain, parsed);
            prop_assert_eq!(storable_raw_value(&text).is_ok(), storable_json(&text).is_ok());
        }

        /// Numbers of any size and exponent: the same verdict as the full parse.
        #[test]
        fn numbers_get_the_full_parse_verdict(
            number in r"-?(0|[1-9][0-9]{0,399})(\.[0-9]{1,400})?([eE][+-]?[0-9]{1,6})?",
        ) {
            let text = format!(r#"{{"n":{number},"b":true,"s":"1e999"}}"#);
            prop_assert_eq!(storable_raw_value(&text).is_ok(), storable_json(&text).is_ok());
        }
    }

    #[test]
    fn numbers_out_of_range_are_refused_as_before() {
        for n in ["1e400", "-1e309", &"9".repeat(400)] {
            let text = format!(r#"{{"n":{n}}}"#);
            assert_eq!(
                storable_raw_value(&text).is_ok(),
                storable_json(&text).is_ok(),
                "{n}"
            );
        }
        assert_eq!(shape(r#"{"n":1e400}"#, MAX_NESTING), Shape::BigNumber);
        assert_eq!(
            shape(r#"{"s":"1e400","t":true}"#, MAX_NESTING),
            Shape::Plain
        );
    }

    #[test]
    fn invalid_utf8_in_an_unknown_field_is_dropped_with_it() {
        // serde_json checks the UTF-8 of the strings it keeps; an unknown field is skipped.
        let mut bytes = br#"{"timestamp":1,"level":"INFO","service":"a","x":""#.to_vec();
        bytes.extend_from_slice(b"\xff\"}");
        assert!(decode(&bytes).is_ok());
        let mut kept = br#"{"timestamp":1,"level":"INFO","service":"a","message":""#.to_vec();
        kept.extend_from_slice(b"\xff\"}");
        assert_eq!(decode(&kept).map_err(|e| e.reason()), Err("invalid_utf8"));
    }

    #[test]
    fn rejects_what_postgres_cannot_store() {
        let deep = format!(
            r#"{{"level":"INFO","service":"a","timestamp":1,"attributes":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            decode(deep.as_bytes()).map_err(|e| e.reason()),
            Err("invalid_field")
        );
        let long = format!(
            r#"{{"level":"INFO","service":"{}","timestamp":1}}"#,
            "s".repeat(MAX_SERVICE_LEN + 1)
        );
        assert_eq!(
            decode(long.as_bytes()).map_err(|e| e.reason()),
            Err("invalid_field")
        );
    }

    #[test]
    fn accepts_epoch_millis_and_aliases() {
        let e = decode(br#"{"timestamp":1700000000000,"level":"warning","service":"a"}"#)
            .expect("valid");
        assert_eq!(e.timestamp_ms, 1_700_000_000_000);
        assert_eq!(e.level, Level::Warn);
        assert_eq!(e.message, "");
    }

    #[test]
    fn classifies_bad_input() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe{}", "invalid_utf8"),
            (b"not json", "invalid_json"),
            (b"[1,2]", "invalid_json"),
            (b"{\"level\":", "invalid_json"),
            (
                br#"{"level":5,"service":"a","timestamp":1}"#,
                "invalid_field",
            ),
            (br#"{"level":"INFO","service":"a"}"#, "missing_field"),
            (br#"{"level":"INFO","timestamp":1}"#, "missing_field"),
            (br#"{"service":"a","timestamp":1}"#, "missing_field"),
            (
                br#"{"level":"LOUD","service":"a","timestamp":1}"#,
                "invalid_level",
            ),
            (
                br#"{"level":"INFO","service":"a","timestamp":"yesterday"}"#,
                "invalid_timestamp",
            ),
            (
                br#"{"level":"INFO","service":"a","timestamp":-5}"#,
                "invalid_timestamp",
            ),
            (
                br#"{"level":"INFO","service":"a","timestamp":99999999999999999}"#,
                "invalid_timestamp",
            ),
        ];
        for (input, reason) in cases {
            let err = decode(input).expect_err("must be rejected");
            assert!(DecodeError::REASONS.contains(&err.reason()));
            assert_eq!(
                err.reason(),
                *reason,
                "input {:?}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn what_postgres_cannot_store_is_decoded_and_left_to_the_storability_check() {
        for input in [
            &br#"{"level":"INFO","service":"a","timestamp":1,"attributes":{"x":"\u0000"}}"#[..],
            br#"{"level":"INFO","service":"a","timestamp":1,"attributes":{"x":"\ud800"}}"#,
            br#"{"level":"INFO","service":"a","timestamp":1,"attributes":{"x":1e1000000}}"#,
            br#"{"level":"INFO","service":"a\u0000b","timestamp":1}"#,
        ] {
            let mut event = decode(input).expect("decodes");
            let changed = crate::storable::event(&mut event);
            assert!(changed.any(), "{}", String::from_utf8_lossy(input));
            assert!(!event.service.contains('\0'));
            if let Some(attributes) = &event.attributes {
                assert!(!attributes.contains("\\u0000") && !attributes.contains("\\ud800"));
            }
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn round_trips_arbitrary_text(
            message in ".*",
            service in "[a-z][a-z0-9-]{0,20}",
            ts in 0i64..4_102_444_800_000,
            level in 0usize..6,
        ) {
            let event = LogEvent {
                timestamp_ms: ts,
                level: Level::ALL[level],
                service,
                component: None,
                host: None,
                message,
                trace_id: None,
                span_id: None,
                parent_id: None,
                attributes: None,
            };
            let bytes = encode(&event).expect("encodes");
            prop_assert_eq!(decode(&bytes), Ok(event));
        }
    }
}
