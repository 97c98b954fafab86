//! The normalised log event: what every input format becomes and what the collector stores.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity of a log event, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The canonical upper-case name, as stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?} (expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Case-insensitive; accepts the common aliases WARNING, ERR, CRITICAL and CRIT.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let level = match s.len() {
            3 if s.eq_ignore_ascii_case("err") => Level::Error,
            4 if s.eq_ignore_ascii_case("info") => Level::Info,
            4 if s.eq_ignore_ascii_case("warn") => Level::Warn,
            4 if s.eq_ignore_ascii_case("crit") => Level::Fatal,
            5 if s.eq_ignore_ascii_case("trace") => Level::Trace,
            5 if s.eq_ignore_ascii_case("debug") => Level::Debug,
            5 if s.eq_ignore_ascii_case("error") => Level::Error,
            5 if s.eq_ignore_ascii_case("fatal") => Level::Fatal,
            7 if s.eq_ignore_ascii_case("warning") => Level::Warn,
            8 if s.eq_ignore_ascii_case("critical") => Level::Fatal,
            _ => return Err(UnknownLevel(s.to_owned())),
        };
        Ok(level)
    }
}

/// One log event in normalised form. Timestamps are milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub timestamp_ms: i64,
    pub level: Level,
    pub service: String,
    pub component: Option<String>,
    pub host: Option<String>,
    pub message: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub parent_id: Option<String>,
    /// Free-form attributes as a JSON object text (kept verbatim, stored as `jsonb`).
    pub attributes: Option<String>,
}

/// The request of an access-log event (the `http` fields of the design's event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAccess {
    pub client_ip: String,
    pub user: Option<String>,
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    pub protocol: String,
    pub status: u16,
    /// Response body size; `None` when nothing was sent (`-` in the log line).
    pub bytes: Option<u64>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// Time taken to serve the request, in microseconds (Apache's `%D`; absent from plain
    /// common/combined lines).
    pub latency_us: Option<u64>,
}

impl HttpAccess {
    /// The event message of a request: `GET /path 200 12 ms` (the time when known).
    pub fn message(&self) -> String {
        match self.latency_us {
            Some(us) => format!(
                "{} {} {} {} ms",
                self.method,
                self.path,
                self.status,
                us / 1000
            ),
            None => format!("{} {} {}", self.method, self.path, self.status),
        }
    }

    /// `{"http": {...}}`: the design's `http` fields, as an event's attributes.
    pub fn attributes(&self) -> String {
        serde_json::json!({
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": self.protocol,
                "status": self.status,
                "bytes": self.bytes,
                "latency_ms": self.latency_us.map(|us| us as f64 / 1000.0),
                "client_ip": self.client_ip,
                "user": self.user,
                "referer": self.referer,
                "user_agent": self.user_agent,
            }
        })
        .to_string()
    }

    /// The level an access line implies: 5xx ERROR, 4xx WARN, else INFO.
    pub fn level(&self) -> Level {
        match self.status {
            500..=599 => Level::Error,
            400..=499 => Level::Warn,
            _ => Level::Info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_case_insensitively_with_aliases() {
        assert_eq!("info".parse::<Level>(), Ok(Level::Info));
        assert_eq!("Warning".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("CRITICAL".parse::<Level>(), Ok(Level::Fatal));
        assert!("verbose".parse::<Level>().is_err());
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
        }
    }
}
