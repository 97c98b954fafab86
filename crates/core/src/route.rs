//! Filter and route rules: which events the collector drops, and which it also sends to extra
//! destinations (Kafka topics, NDJSON files, stdout, an S3 archive) besides PostgreSQL. Pure: parsing and
//! matching only; the collector's sinks do the sending.
//!
//! A rule is a conjunction of conditions joined by ` and `, or `*` for every event:
//!
//! - `level>=WARN`, `level==ERROR`, `level!=DEBUG`, `level<INFO` (severity order)
//! - `service==orders`, `service!=orders` (also `component`, `host`, `message`)
//! - `FIELD~REGEX` — the regex matches the field: `message`, `service`, `component`, `host`,
//!   `level`, or any attribute by its dotted path (`http.status~^5`, `http.path~/admin`)
//!
//! Settings: `LOGSTREAM_FILTER_DROP` is a `;`-separated list of rules (an event matching any is
//! dropped, and counted); `LOGSTREAM_ROUTES` is a `;`-separated list of `DESTINATION=RULE`, with
//! `DESTINATION` one of `kafka:TOPIC`, `file:PATH`, `stdout`, `s3://BUCKET/PREFIX` (the prefix
//! may be empty), `opensearch+http://HOST:PORT/INDEX_PREFIX` (or `+https`; `elasticsearch+`
//! alike; the prefix defaults to `logstream`). Kafka, file and stdout routes are sent with each
//! stored batch ([`Destination::reads_topic`] false); archives and search clusters read the
//! topic on their own, at their own pace.

use std::fmt;

use regex::Regex;

use crate::event::{Level, LogEvent};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule:?}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

fn error(rule: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        rule: rule.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Condition {
    Level(Compare, Level),
    Text(&'static str, bool, String),
    Matches(Field, Regex),
}

#[derive(Debug, Clone)]
enum Field {
    Named(&'static str),
    /// A dotted path into the attributes object.
    Attribute(Vec<String>),
}

/// One rule: every condition must hold (none: matches everything).
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    conditions: Vec<Condition>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const TEXT_FIELDS: [&str; 4] = ["service", "component", "host", "message"];

fn named(field: &str) -> Option<&'static str> {
    TEXT_FIELDS
        .into_iter()
        .chain(["level"])
        .find(|f| *f == field)
}

impl Rule {
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(error(text, "empty rule (use * for every event)"));
        }
        let mut conditions = Vec::new();
        if text != "*" {
            for part in text.split(" and ") {
                conditions.push(Self::condition(text, part.trim())?);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            conditions,
        })
    }

    fn condition(rule: &str, part: &str) -> Result<Condition, RuleError> {
        if let Some((field, pattern)) = part.split_once('~') {
            let field = field.trim();
            let regex = Regex::new(pattern.trim())
                .map_err(|e| error(rule, format!("invalid regex in {part:?}: {e}")))?;
            let field = match named(field) {
                Some(name) => Field::Named(name),
                None if !field.is_empty() => {
                    Field::Attribute(field.split('.').map(str::to_owned).collect())
                }
                None => return Err(error(rule, format!("{part:?} names no field"))),
            };
            return Ok(Condition::Matches(field, regex));
        }
        let operators = [
            ("==", Compare::Eq),
            ("!=", Compare::Ne),
            (">=", Compare::Ge),
            ("<=", Compare::Le),
            (">", Compare::Gt),
            ("<", Compare::Lt),
        ];
        let (field, op, value) = operators
            .iter()
            .find_map(|(token, op)| {
                part.split_once(token)
                    .map(|(f, v)| (f.trim(), *op, v.trim()))
            })
            .ok_or_else(|| {
                error(
                    rule,
                    format!(
                        "{part:?} is not FIELD==VALUE, FIELD!=VALUE, level>=LEVEL or FIELD~REGEX"
                    ),
                )
            })?;
        match field {
            "level" => {
                let level = value
                    .parse::<Level>()
                    .map_err(|e| error(rule, e.to_string()))?;
                Ok(Condition::Level(op, level))
            }
            _ => {
                let name = TEXT_FIELDS
                    .into_iter()
                    .find(|f| *f == field)
                    .ok_or_else(|| {
                        error(
                            rule,
                            format!("unknown field {field:?} (level, service, component, host, message; FIELD~REGEX for attributes)"),
                        )
                    })?;
                match op {
                    Compare::Eq => Ok(Condition::Text(name, true, value.to_owned())),
                    Compare::Ne => Ok(Condition::Text(name, false, value.to_owned())),
                    _ => Err(error(rule, format!("{field} compares only with == or !="))),
                }
            }
        }
    }

    pub fn matches(&self, event: &LogEvent) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Level(op, level) => match op {
                Compare::Eq => event.level == *level,
                Compare::Ne => event.level != *level,
                Compare::Lt => event.level < *level,
                Compare::Le => event.level <= *level,
                Compare::Gt => event.level > *level,
                Compare::Ge => event.level >= *level,
            },
            Condition::Text(field, equal, value) => {
                (text_field(event, field) == Some(value.as_str())) == *equal
            }
            Condition::Matches(Field::Named(field), regex) => {
                text_field(event, field).is_some_and(|t| regex.is_match(t))
            }
            Condition::Matches(Field::Attribute(path), regex) => {
                attribute(event, path).is_some_and(|t| regex.is_match(&t))
            }
        })
    }
}

fn text_field<'a>(event: &'a LogEvent, field: &str) -> Option<&'a str> {
    match field {
        "service" => Some(&event.service),
        "component" => event.component.as_deref(),
        "host" => event.host.as_deref(),
        "message" => Some(&event.message),
        "level" => Some(event.level.as_str()),
        _ => None,
    }
}

/// An attribute by dotted path, as text (strings unquoted, other values as JSON).
fn attribute(event: &LogEvent, path: &[String]) -> Option<String> {
    let attributes: serde_json::Value = serde_json::from_str(event.attributes.as_deref()?).ok()?;
    let mut value = &attributes;
    for key in path {
        value = value.get(key)?;
    }
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Where routed events go, besides PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Kafka(String),
    File(String),
    Stdout,
    /// An S3-compatible bucket, and the key prefix of the archive's objects (no leading or
    /// trailing `/`; may be empty).
    S3 {
        bucket: String,
        prefix: String,
    },
    /// An OpenSearch or Elasticsearch cluster (`url`: `http(s)://host:port`), its daily indices
    /// named `PREFIX-YYYY.MM.DD`.
    Search {
        url: String,
        index_prefix: String,
    },
}

impl Destination {
    /// An archive or a search cluster reads the topic itself (its own offsets), instead of
    /// taking each batch's routed events.
    pub fn reads_topic(&self) -> bool {
        matches!(self, Destination::S3 { .. } | Destination::Search { .. })
    }

    fn parse(text: &str) -> Option<Self> {
        if text == "stdout" {
            return Some(Destination::Stdout);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            return bucket_ok.then(|| Destination::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        for (scheme, http) in [
            ("opensearch+http://", "http://"),
            ("opensearch+https://", "https://"),
            ("elasticsearch+http://", "http://"),
            ("elasticsearch+https://", "https://"),
        ] {
            if let Some(rest) = text.strip_prefix(scheme) {
                let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = prefix.trim_matches('/');
                let prefix = if prefix.is_empty() {
                    "logstream"
                } else {
                    prefix
                };
                let prefix_ok = prefix.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                }) && !prefix.starts_with(['-', '_', '.']);
                return (!host.is_empty() && prefix_ok).then(|| Destination::Search {
                    url: format!("{http}{host}"),
                    index_prefix: prefix.to_owned(),
                });
            }
        }
        match text.split_once(':') {
            Some(("kafka", topic)) if !topic.is_empty() => {
                Some(Destination::Kafka(topic.to_owned()))
            }
            Some(("file", path)) if !path.is_empty() => Some(Destination::File(path.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Kafka(topic) => write!(f, "kafka:{topic}"),
            Destination::File(path) => write!(f, "file:{path}"),
            Destination::Stdout => f.write_str("stdout"),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Destination::Search { url, index_prefix } => {
                write!(f, "opensearch+{url}/{index_prefix}")
            }
        }
    }
}

/// A destination and the rule that selects its events.
#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Destination,
    pub rule: Rule,
}

/// The drop rules and routes of a collector.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub drop: Vec<Rule>,
    pub routes: Vec<Route>,
}

impl Routing {
    /// From `LOGSTREAM_FILTER_DROP` and `LOGSTREAM_ROUTES` texts (empty: none).
    pub fn parse(drop: &str, routes: &str) -> Result<Self, RuleError> {
        let drop = split(drop).map(Rule::parse).collect::<Result<_, _>>()?;
        let routes = split(routes)
            .map(|text| {
                let (destination, rule) = text
                    .split_once('=')
                    .ok_or_else(|| error(text, "a route is DESTINATION=RULE"))?;
                let destination = Destination::parse(destination.trim()).ok_or_else(|| {
                    error(
                        text,
                        format!(
                            "destination {:?} is none of kafka:TOPIC, file:PATH, stdout, \
                             s3://BUCKET/PREFIX (a bucket name: 3 to 63 of a-z 0-9 . -), \
                             opensearch+http(s)://HOST:PORT/INDEX_PREFIX (a-z 0-9 - _ .)",
                            destination.trim()
                        ),
                    )
                })?;
                Ok(Route {
                    destination,
                    rule: Rule::parse(rule)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { drop, routes })
    }

    /// The index of the first drop rule `event` matches (None: keep it).
    pub fn dropped_by(&self, event: &LogEvent) -> Option<usize> {
        self.drop.iter().position(|r| r.matches(event))
    }

    /// Indexes of the routes sent with each batch (not archives) that `event` goes to.
    pub fn routes_of<'a>(&'a self, event: &'a LogEvent) -> impl Iterator<Item = usize> + 'a {
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.destination.reads_topic() && r.rule.matches(event))
            .map(|(i, _)| i)
    }
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(level: Level, service: &str, message: &str, attributes: Option<&str>) -> LogEvent {
        LogEvent {
            timestamp_ms: 0,
            level,
            service: service.into(),
            component: Some("db".into()),
            host: None,
            message: message.into(),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: attributes.map(str::to_owned),
        }
    }

    #[test]
    fn rules_match_levels_fields_and_attributes() {
        let e = event(
            Level::Error,
            "payments",
            "card declined for user 42",
            Some(r#"{"http":{"status":503,"path":"/admin/x"}}"#),
        );
        let yes = [
            "*",
            "level>=WARN",
            "level==ERROR",
            "level!=INFO",
            "level>INFO and service==payments",
            "service!=orders",
            "message~declined",
            "component==db",
            "http.status~^5",
            "http.path~^/admin",
            "level~ERR",
        ];
        for text in yes {
            assert!(Rule::parse(text).expect(text).matches(&e), "{text}");
        }
        let no = [
            "level<WARN",
            "level>=FATAL",
            "service==orders",
            "message~^ok",
            "http.status~^4",
            "http.missing~.",
            "host==h1",
            "level>=WARN and service==orders",
        ];
        for text in no {
            assert!(!Rule::parse(text).expect(text).matches(&e), "{text}");
        }
    }

    #[test]
    fn bad_rules_say_why() {
        for (text, says) in [
            ("", "empty"),
            ("level>=LOUD", "unknown level"),
            ("colour==red", "unknown field"),
            ("service>=a", "only with =="),
            ("message~(", "invalid regex"),
            ("level", "is not"),
        ] {
            let e = Rule::parse(text).expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn routing_from_settings() {
        let routing = Routing::parse(
            "service==healthcheck; level<=DEBUG",
            "kafka:logs.errors=level>=ERROR; file:/tmp/p.ndjson=service==payments; stdout=http.status~^5",
        )
        .expect("valid");
        assert_eq!(routing.drop.len(), 2);
        assert_eq!(
            routing
                .routes
                .iter()
                .map(|r| r.destination.to_string())
                .collect::<Vec<_>>(),
            ["kafka:logs.errors", "file:/tmp/p.ndjson", "stdout"]
        );
        let e = event(Level::Error, "payments", "x", None);
        assert_eq!(routing.routes_of(&e).collect::<Vec<_>>(), [0, 1]);
        assert!(routing.dropped_by(&e).is_none());
        let debug = event(Level::Debug, "orders", "x", None);
        assert_eq!(
            routing
                .dropped_by(&debug)
                .map(|i| routing.drop[i].to_string()),
            Some("level<=DEBUG".into())
        );
        assert!(Routing::parse("", "").expect("empty").routes.is_empty());
        assert!(Routing::parse("", "nowhere=*").is_err());
        assert!(Routing::parse("", "kafka:=*").is_err());
        let archive = Routing::parse(
            "",
            "s3://logs-archive/raw/=*; s3://b12=level>=WARN; stdout=*",
        )
        .expect("archives");
        assert_eq!(
            archive.routes[0].destination,
            Destination::S3 {
                bucket: "logs-archive".into(),
                prefix: "raw".into()
            }
        );
        assert_eq!(archive.routes[1].destination.to_string(), "s3://b12/");
        // Archives read the topic themselves: a batch routes only to the others.
        assert_eq!(archive.routes_of(&e).collect::<Vec<_>>(), [2]);
        let search = Routing::parse(
            "",
            "opensearch+http://127.0.0.1:9200=level>=WARN; elasticsearch+https://es:9243/Logs=*",
        );
        assert!(search.is_err(), "an index prefix is lowercase");
        let search =
            Routing::parse("", "opensearch+http://127.0.0.1:9200=level>=WARN").expect("search");
        assert_eq!(
            search.routes[0].destination,
            Destination::Search {
                url: "http://127.0.0.1:9200".into(),
                index_prefix: "logstream".into()
            }
        );
        assert_eq!(
            search.routes[0].destination.to_string(),
            "opensearch+http://127.0.0.1:9200/logstream"
        );
        assert_eq!(search.routes_of(&e).count(), 0);
        for bad in ["s3://=*", "s3://Upper/x=*", "s3://ab=*"] {
            let e = Routing::parse("", bad).expect_err(bad);
            assert!(e.to_string().contains("s3://BUCKET/PREFIX"), "{bad}: {e}");
        }
    }
}
