//! The wire formats a log event can travel in, named by the Kafka `content-type` header:
//!
//! | name (start body) | `content-type` | module |
//! | --- | --- | --- |
//! | `json` | `application/json` | [`crate::json`] |
//! | `apache` | `text/apache-combined` | [`apache`] (combined format plus `%D`) |
//! | `syslog5424` | `text/syslog-5424` | [`syslog`] (RFC 5424) |
//! | `syslog3164` | `text/syslog-3164` | [`syslog`] (RFC 3164, BSD) |
//!
//! Line formats hold one record each: line breaks inside a field are written as spaces.

pub mod apache;
pub mod decode;
pub mod lenient;
pub mod level_marker;
mod scan;
pub mod syslog;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::event::{HttpAccess, LogEvent};
use crate::weighted::{InvalidWeights, Weighted};

/// Syntax errors of the line formats; `reason` is a short stable label (for metrics and the
/// dead-letter topic), `detail` says what was expected where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ParseError {
    pub reason: &'static str,
    pub detail: String,
}

impl ParseError {
    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// One wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Json,
    Apache,
    Syslog5424,
    Syslog3164,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Json,
        Format::Apache,
        Format::Syslog5424,
        Format::Syslog3164,
    ];

    /// The name used in the start request's `formats` map.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Apache => "apache",
            Format::Syslog5424 => "syslog5424",
            Format::Syslog3164 => "syslog3164",
        }
    }

    /// The Kafka `content-type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Apache => "text/apache-combined",
            Format::Syslog5424 => "text/syslog-5424",
            Format::Syslog3164 => "text/syslog-3164",
        }
    }

    /// The format a `content-type` header names (parameters such as `; charset=utf-8` ignored).
    pub fn from_content_type(value: &str) -> Option<Format> {
        let value = value.split(';').next().unwrap_or("").trim();
        Format::ALL
            .into_iter()
            .find(|f| f.content_type().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?} (expected one of json, apache, syslog5424, syslog3164)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Appends `event` in `format`; Apache lines need the request too (`access`), and without one
/// the event is written as JSON.
pub fn encode_into(
    format: Format,
    event: &LogEvent,
    access: Option<&HttpAccess>,
    out: &mut Vec<u8>,
) -> Result<Format, serde_json::Error> {
    match (format, access) {
        (Format::Apache, Some(access)) => apache::encode_into(event.timestamp_ms, access, out),
        (Format::Syslog5424, _) => syslog::encode_5424_into(event, out),
        (Format::Syslog3164, _) => syslog::encode_3164_into(event, out),
        (Format::Json, _) | (Format::Apache, None) => {
            crate::json::encode_into(event, out)?;
            return Ok(Format::Json);
        }
    }
    Ok(format)
}

/// The format mix of a start request (`{"json": 70, "apache": 20, "syslog5424": 10}`).
pub fn weights(mix: &BTreeMap<String, u32>) -> Result<Weighted<Format>, String> {
    let entries = mix
        .iter()
        .map(|(name, weight)| Ok((name.parse::<Format>().map_err(|e| e.to_string())?, *weight)))
        .collect::<Result<Vec<_>, String>>()?;
    Weighted::new(entries).map_err(|InvalidWeights| "format weights must not all be zero".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_content_types_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
            assert_eq!(
                Format::from_content_type(format.content_type()),
                Some(format)
            );
        }
        assert_eq!(
            Format::from_content_type("Application/JSON; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::from_content_type("text/xml"), None);
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn weights_parse() {
        let mix: BTreeMap<String, u32> = [("json".into(), 70), ("apache".into(), 30)].into();
        assert!(weights(&mix).is_ok());
        let zero: BTreeMap<String, u32> = [("json".into(), 0)].into();
        assert!(weights(&zero).is_err());
        let bad: BTreeMap<String, u32> = [("xml".into(), 1)].into();
        assert!(weights(&bad).unwrap_err().contains("xml"));
    }
}
