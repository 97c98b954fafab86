//! A JSON object as applications and shippers write it, into the normalised event. Besides the
//! event's own fields, the aliases shippers use are read: `@timestamp`, `time`, `ts` for the
//! time (RFC 3339 text, `YYYY-MM-DD hh:mm:ss[.f]` taken as UTC, or a number of seconds,
//! milliseconds, microseconds or nanoseconds since the epoch, told apart by size); `msg`, `log`
//! for the message; `severity`, `log.level`, `lvl` for the level (a name, or a syslog severity
//! number 0-7); `host.name`, `hostname` for the host; `service.name` for the service; `trace.id`,
//! `span.id`; and the names of syslog-ng's `format-json --scope rfc5424` (the default document of
//! its `elasticsearch-http()`): `MESSAGE`, `PRIORITY`, `PROGRAM` (the service), `HOST`. A dotted
//! name is read as a key of its own (`"log.level"`) or nested
//! (`"log": {"level": ...}`), as ECS writes it. Every other field is kept in `attributes`.
//! What is missing: the time is the receiver's clock, the level the message's markers (else
//! INFO), the service the sender's default.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::LineError;
use crate::event::{Level, LogEvent};
use crate::format::level_marker;
use crate::json::{self, MAX_SERVICE_LEN, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use crate::storable::with_member;

/// Where the fields an object lacks come from.
#[derive(Debug, Clone, Copy)]
pub struct Defaults<'a> {
    /// The service of an event that names none.
    pub service: &'a str,
    /// The receiver's clock (epoch milliseconds).
    pub now_ms: i64,
}

const TIMESTAMP: [&str; 4] = ["timestamp", "@timestamp", "time", "ts"];
const MESSAGE: [&str; 4] = ["message", "msg", "log", "MESSAGE"];
const LEVEL: [&str; 5] = ["level", "severity", "log.level", "lvl", "PRIORITY"];
const SERVICE: [&str; 3] = ["service", "service.name", "PROGRAM"];
const HOST: [&str; 4] = ["host", "host.name", "hostname", "HOST"];

/// The event one JSON object (one NDJSON line, or one element of an array) stands for.
pub fn event_from_json(bytes: &[u8], defaults: Defaults<'_>) -> Result<LogEvent, LineError> {
    let text = String::from_utf8_lossy(bytes);
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| LineError::new("invalid_json", format!("not JSON: {e}"), None))?;
    let replaced_utf8 = matches!(text, std::borrow::Cow::Owned(_));
    event_from_value(value, defaults, replaced_utf8)
}

/// The event a parsed JSON value (an object) stands for; `replaced_utf8` flags the event.
pub fn event_from_value(
    value: Value,
    defaults: Defaults<'_>,
    replaced_utf8: bool,
) -> Result<LogEvent, LineError> {
    let Value::Object(mut map) = value else {
        return Err(LineError::new(
            "invalid_json",
            "an event must be a JSON object",
            None,
        ));
    };
    let message = match take_any(&mut map, &MESSAGE) {
        Some((_, Value::String(m))) if !m.trim().is_empty() => {
            // Docker's json-file `log` (and many shippers' lines) end with the line break.
            let kept = m.trim_end_matches(['\r', '\n']).len();
            let mut m = m;
            m.truncate(kept);
            m
        }
        Some((name, Value::String(_))) => return Err(LineError::missing(name)),
        Some((name, _)) => return Err(LineError::wrong_type(name, "a string")),
        None => return Err(LineError::missing("message")),
    };
    let timestamp_ms = match take_any(&mut map, &TIMESTAMP) {
        None => defaults.now_ms,
        Some((name, value)) => timestamp(name, &value)?,
    };
    let level = match take_any(&mut map, &LEVEL) {
        None => level_marker::level_in(&message).unwrap_or(Level::Info),
        Some((name, value)) => level(name, &value)?,
    };
    let service = match take_any(&mut map, &SERVICE) {
        // ECS: `"service": {"name": ...}` read whole when `service.name` was not a key.
        None => defaults.service.to_owned(),
        Some((name, value)) => text(name, value)?.unwrap_or_else(|| defaults.service.to_owned()),
    };
    if service.len() > MAX_SERVICE_LEN {
        return Err(LineError::new(
            "invalid_field",
            format!("service must be at most {MAX_SERVICE_LEN} bytes"),
            Some("service"),
        ));
    }
    let host = take_text(&mut map, &HOST)?;
    let component = take_text(&mut map, &["component"])?;
    let trace_id = take_text(&mut map, &["trace_id", "trace.id"])?;
    let span_id = take_text(&mut map, &["span_id", "span.id"])?;
    let parent_id = take_text(&mut map, &["parent_id"])?;
    let mut attributes = match map.remove("attributes") {
        None => Map::new(),
        Some(Value::Object(own)) => own,
        Some(other) => {
            let mut kept = Map::new();
            kept.insert("attributes".to_owned(), other);
            kept
        }
    };
    for (name, value) in map {
        attributes.entry(name).or_insert(value);
    }
    let mut attributes = (!attributes.is_empty()).then(|| Value::Object(attributes).to_string());
    if replaced_utf8 {
        let object = attributes.take().unwrap_or_else(|| "{}".to_owned());
        attributes = Some(with_member(object, "\"_invalid_utf8\":true"));
    }
    Ok(LogEvent {
        timestamp_ms,
        level,
        service,
        component,
        host,
        message,
        trace_id,
        span_id,
        parent_id,
        attributes,
    })
}

/// Removes and returns the first of `names` the object has (a dotted name as a key of its own,
/// else nested), with the name it was found under.
fn take_any(map: &mut Map<String, Value>, names: &[&'static str]) -> Option<(&'static str, Value)> {
    names
        .iter()
        .find_map(|&name| take(map, name).map(|v| (name, v)))
}

fn take(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    if let Some(value) = map.remove(name) {
        if let Value::Object(inner) = &value {
            // `"service": {"name": "api"}`: the object stands for its `name`.
            if let Some(Value::String(inner_name)) = inner.get("name") {
                return Some(Value::String(inner_name.clone()));
            }
            if !name.contains('.') {
                // Not a field of ours (e.g. ECS's `log` object): keep it as an attribute.
                map.insert(name.to_owned(), value);
                return None;
            }
        }
        return Some(value);
    }
    let (head, rest) = name.split_once('.')?;
    let Some(Value::Object(inner)) = map.get_mut(head) else {
        return None;
    };
    let value = inner.remove(rest)?;
    if inner.is_empty() {
        map.remove(head);
    }
    Some(value)
}

/// A string field's value (`None` when empty or null).
fn text(name: &'static str, value: Value) -> Result<Option<String>, LineError> {
    match value {
        Value::String(s) => Ok(Some(s).filter(|s| !s.is_empty())),
        Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(LineError::wrong_type(name, "a string")),
    }
}

fn take_text(
    map: &mut Map<String, Value>,
    names: &[&'static str],
) -> Result<Option<String>, LineError> {
    match take_any(map, names) {
        None => Ok(None),
        Some((name, value)) => text(name, value),
    }
}

fn timestamp(name: &'static str, value: &Value) -> Result<i64, LineError> {
    let invalid = |detail: String| LineError::new("invalid_timestamp", detail, Some(name));
    let ms = match value {
        Value::String(s) => parse_time_text(s).ok_or_else(|| {
            invalid(format!(
                "{s:?} is not RFC 3339 (or YYYY-MM-DD hh:mm:ss, UTC) or a number"
            ))
        })?,
        Value::Number(n) => {
            let number = n.as_f64().unwrap_or(f64::NAN);
            epoch_ms(number).ok_or_else(|| invalid(format!("{n} is not a time since the epoch")))?
        }
        _ => return Err(LineError::wrong_type(name, "RFC 3339 text or a number")),
    };
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(invalid(format!("{ms} ms is outside 1970..9999")));
    }
    Ok(ms)
}

fn parse_time_text(text: &str) -> Option<i64> {
    if let Some(ms) = json::parse_rfc3339_ms(text) {
        return Some(ms);
    }
    if let Ok(number) = text.parse::<f64>() {
        return epoch_ms(number);
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

/// A number since the epoch in milliseconds; its unit told by its size (seconds up to 1e11,
/// which is year 5138, milliseconds up to 1e14, microseconds up to 1e17, then nanoseconds).
fn epoch_ms(number: f64) -> Option<i64> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let ms = match number {
        n if n < 1e11 => n * 1e3,
        n if n < 1e14 => n,
        n if n < 1e17 => n / 1e3,
        n => n / 1e6,
    };
    Some(ms as i64)
}

fn level(name: &'static str, value: &Value) -> Result<Level, LineError> {
    match value {
        Value::String(s) => s.trim().parse::<Level>().or_else(|e| {
            // Names the markers know (notice, emerg, ...), else the error.
            level_marker::named(s.trim())
                .ok_or_else(|| LineError::new("invalid_level", e.to_string(), Some(name)))
        }),
        Value::Number(n) => match n.as_u64() {
            Some(severity @ 0..=7) => Ok(crate::format::syslog::level_of(severity as u8)),
            _ => Err(LineError::new(
                "invalid_level",
                format!("{n} is not a syslog severity (0-7)"),
                Some(name),
            )),
        },
        _ => Err(LineError::wrong_type(
            name,
            "a level name or a syslog severity",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_791_640_536_789; // 2026-10-10T13:55:36.789Z
    const DEFAULTS: Defaults<'static> = Defaults {
        service: "web",
        now_ms: NOW,
    };

    fn event(line: &str) -> Result<LogEvent, LineError> {
        event_from_json(line.as_bytes(), DEFAULTS)
    }

    #[test]
    fn syslog_ng_rfc5424_scope_names_are_read() {
        let e = event(
            r#"{"PROGRAM":"sshd","PRIORITY":"err","PID":"42","MESSAGE":"Failed password","HOST":"box","ISODATE":"2026-10-10T13:55:36+00:00","@timestamp":"2026-10-10T13:55:36+00:00"}"#,
        )
        .expect("event");
        assert_eq!(
            (
                e.service.as_str(),
                e.level,
                e.host.as_deref(),
                e.message.as_str()
            ),
            ("sshd", Level::Error, Some("box"), "Failed password")
        );
        assert_eq!(e.timestamp_ms, 1_791_640_536_000);
        let attributes = e.attributes.expect("attributes");
        assert!(attributes.contains("\"PID\":\"42\""), "{attributes}");
    }

    #[test]
    fn our_own_event_reads_as_the_collector_reads_it() {
        let line = r#"{"timestamp":"2026-10-10T13:55:36.789Z","level":"WARN","service":"payments","component":"db","host":"h1","message":"slow","trace_id":"t","span_id":"s","parent_id":"p","attributes":{"a":1}}"#;
        assert_eq!(
            event(line).expect("event"),
            json::decode(line.as_bytes()).expect("collector's event")
        );
    }

    #[test]
    fn shipper_aliases_are_read() {
        let filebeat = r#"{"@timestamp":"2026-10-10T13:55:36.000Z","message":"GET /","log":{"level":"error","file":{"path":"/var/log/a.log"}},"host":{"name":"web-1"},"service":{"name":"shop"},"agent":{"type":"filebeat"}}"#;
        let e = event(filebeat).expect("event");
        assert_eq!(
            (
                e.timestamp_ms,
                e.level,
                e.service.as_str(),
                e.host.as_deref()
            ),
            (1_791_640_536_000, Level::Error, "shop", Some("web-1"))
        );
        assert_eq!(
            e.attributes.as_deref(),
            Some(r#"{"agent":{"type":"filebeat"},"log":{"file":{"path":"/var/log/a.log"}}}"#)
        );
        let zap = r#"{"ts":1791640536.5,"lvl":"debug","msg":"hello","caller":"main.go:1"}"#;
        let e = event(zap).expect("event");
        assert_eq!(
            (
                e.timestamp_ms,
                e.level,
                e.service.as_str(),
                e.message.as_str()
            ),
            (1_791_640_536_500, Level::Debug, "web", "hello")
        );
        assert_eq!(e.attributes.as_deref(), Some(r#"{"caller":"main.go:1"}"#));
        let docker = r#"{"log":"ERROR boom\n","time":"2026-10-10T13:55:36.123456789Z"}"#;
        let e = event(docker).expect("event");
        assert_eq!((e.level, e.timestamp_ms), (Level::Error, 1_791_640_536_123));
        let dotted = r#"{"message":"m","log.level":"warning","host.name":"h","service.name":"s","severity":3}"#;
        let e = event(dotted).expect("event");
        assert_eq!(
            (e.level, e.service.as_str(), e.host.as_deref()),
            (Level::Error, "s", Some("h")),
            "severity is read before log.level"
        );
        let numeric = r#"{"message":"m","time":1791640536789123}"#;
        assert_eq!(
            event(numeric).map(|e| e.timestamp_ms),
            Ok(1_791_640_536_789)
        );
        let nanos = r#"{"message":"m","time":"1791640536789123456"}"#;
        assert_eq!(event(nanos).map(|e| e.timestamp_ms), Ok(1_791_640_536_789));
        let spaced = r#"{"message":"m","time":"2026-10-10 13:55:36.5"}"#;
        assert_eq!(event(spaced).map(|e| e.timestamp_ms), Ok(1_791_640_536_500));
    }

    #[test]
    fn what_is_missing_comes_from_the_defaults_and_the_markers() {
        let e = event(r#"{"msg":"[error] disk full"}"#).expect("event");
        assert_eq!(
            (e.timestamp_ms, e.level, e.service.as_str(), e.attributes),
            (NOW, Level::Error, "web", None)
        );
        let e = event(r#"{"msg":"fine","level":"notice"}"#).expect("event");
        assert_eq!(e.level, Level::Info);
    }

    #[test]
    fn bad_lines_say_what_and_which_field() {
        let cases: [(&str, &str, Option<&str>); 9] = [
            ("nope", "invalid_json", None),
            ("[1]", "invalid_json", None),
            (r#"{"level":"INFO"}"#, "missing_field", Some("message")),
            (r#"{"message":"  "}"#, "missing_field", Some("message")),
            (r#"{"message":1}"#, "invalid_field", Some("message")),
            (
                r#"{"message":"m","level":"LOUD"}"#,
                "invalid_level",
                Some("level"),
            ),
            (
                r#"{"message":"m","level":9}"#,
                "invalid_level",
                Some("level"),
            ),
            (
                r#"{"message":"m","ts":"yesterday"}"#,
                "invalid_timestamp",
                Some("ts"),
            ),
            (
                r#"{"message":"m","host":[1]}"#,
                "invalid_field",
                Some("host"),
            ),
        ];
        for (line, reason, field) in cases {
            let e = event(line).expect_err(line);
            assert_eq!((e.reason, e.field), (reason, field), "{line}: {e}");
        }
        let long = format!(r#"{{"message":"m","service":"{}"}}"#, "s".repeat(300));
        assert_eq!(event(&long).map_err(|e| e.field), Err(Some("service")));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let e = event_from_json(b"{\"message\":\"caf\xe9\"}", DEFAULTS).expect("event");
        assert_eq!(e.message, "caf\u{FFFD}");
        assert_eq!(e.attributes.as_deref(), Some(r#"{"_invalid_utf8":true}"#));
    }

    proptest::proptest! {
        #[test]
        fn every_event_read_is_one_the_collector_stores_alike(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            message in "[ -~]{1,40}",
            level in "[a-zA-Z]{0,8}",
            time in proptest::prelude::any::<f64>(),
        ) {
            let line = serde_json::json!({"msg": message, "level": level, "ts": time, "x": {"y": [1]}});
            for input in [bytes, line.to_string().into_bytes()] {
                if let Ok(event) = event_from_json(&input, DEFAULTS) {
                    let encoded = json::encode(&event).expect("encodes");
                    let decoded = json::decode(&encoded).expect("the collector reads it");
                    proptest::prop_assert_eq!(decoded.timestamp_ms, event.timestamp_ms);
                    proptest::prop_assert_eq!(
                        (decoded.level, decoded.service, decoded.message, decoded.attributes),
                        (event.level, event.service, event.message, event.attributes)
                    );
                }
            }
        }
    }
}
