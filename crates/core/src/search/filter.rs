//! A search's filters matched against one event: what the live tail applies to each event it
//! reads, with the meaning the search's SQL gives them for stored events.

use serde_json::Value;

use super::words::Words;
use super::AttributeFilter;
use crate::{Level, LogEvent};

/// Every filter of a search but its time range (empty or None: no filter).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub services: Vec<String>,
    pub levels: Vec<Level>,
    pub host: Option<String>,
    pub trace_id: Option<String>,
    pub attributes: Vec<AttributeFilter>,
    /// The text query; `Some(None)`: a query without words, which matches nothing.
    pub words: Option<Option<Words>>,
}

impl EventFilter {
    pub fn matches(&self, event: &LogEvent) -> bool {
        (self.services.is_empty() || self.services.contains(&event.service))
            && (self.levels.is_empty() || self.levels.contains(&event.level))
            && equal(self.host.as_deref(), event.host.as_deref())
            && equal(self.trace_id.as_deref(), event.trace_id.as_deref())
            && self.attributes_match(event.attributes.as_deref())
            && match &self.words {
                None => true,
                Some(None) => false,
                Some(Some(words)) => words.matches(&event.message),
            }
    }

    fn attributes_match(&self, attributes: Option<&str>) -> bool {
        if self.attributes.is_empty() {
            return true;
        }
        let Some(value) = attributes.and_then(|a| serde_json::from_str::<Value>(a).ok()) else {
            return false;
        };
        self.attributes.iter().all(|filter| {
            let mut at = &value;
            for key in &filter.path {
                match at.get(key) {
                    Some(next) => at = next,
                    None => return false,
                }
            }
            as_text(at).is_some_and(|text| text == filter.value)
        })
    }
}

/// A wanted value (None: any) against the event's.
fn equal(wanted: Option<&str>, actual: Option<&str>) -> bool {
    wanted.is_none_or(|w| actual == Some(w))
}

/// A JSON value as PostgreSQL's `#>>` gives it: a string without quotes, null as no value, the
/// rest as JSON text.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> LogEvent {
        LogEvent {
            timestamp_ms: 0,
            level: Level::Error,
            service: "payments".into(),
            component: None,
            host: Some("db-1".into()),
            message: "payment 1 declined: issuer unavailable".into(),
            trace_id: Some("t1".into()),
            span_id: None,
            parent_id: None,
            attributes: Some(
                r#"{"http": {"status": 500, "path": "/pay"}, "none": null, "ok": true}"#.into(),
            ),
        }
    }

    fn attr(name: &str, value: &str) -> AttributeFilter {
        AttributeFilter::parse(name, value)
            .expect("attribute parameter")
            .expect("valid")
    }

    #[test]
    fn each_filter_decides() {
        let e = event();
        let all = EventFilter::default();
        assert!(all.matches(&e));
        let cases = [
            (
                EventFilter {
                    services: vec!["orders".into(), "payments".into()],
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    services: vec!["orders".into()],
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    levels: vec![Level::Warn, Level::Error],
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    levels: vec![Level::Info],
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    host: Some("db-1".into()),
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    host: Some("db-2".into()),
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    trace_id: Some("t2".into()),
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.http.status", "500")],
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.http.path", "/pay")],
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.ok", "true")],
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.none", "null")],
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.http.status", "200")],
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    attributes: vec![attr("attr.http.nope", "500")],
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    words: Some(Words::parse("\"issuer unavailable\"")),
                    ..all.clone()
                },
                true,
            ),
            (
                EventFilter {
                    words: Some(Words::parse("timeout")),
                    ..all.clone()
                },
                false,
            ),
            (
                EventFilter {
                    words: Some(None),
                    ..all.clone()
                },
                false,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.matches(&e), expected, "{filter:?}");
        }
    }
}
