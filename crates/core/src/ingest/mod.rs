//! What the ingest service does to what it receives before it publishes it, free of I/O:
//!
//! - [`shipper_json`]: a JSON object as applications and shippers write it (with their field
//!   aliases) into the normalised event.
//! - [`text_line`]: a text line in a named format, or in whatever format it is (`auto`), into the
//!   event, as the collector would read it.
//! - [`framing`]: syslog frames out of a byte stream (RFC 6587, both framings).
//! - [`es_bulk`]: the items of an Elasticsearch bulk body (action lines and their documents).
//! - [`multiline`]: lines of a file into events (stack traces joined to the line they follow).
//!
//! Every rejection is a [`LineError`]: a stable reason, what exactly, and the field at fault.

pub mod es_bulk;
pub mod framing;
pub mod multiline;
pub mod shipper_json;
pub mod text_line;

use crate::format::decode::Rejected;

/// Why one line (or one JSON object, one syslog message) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct LineError {
    /// A short stable label (the `reason` of the rejected counter).
    pub reason: &'static str,
    /// What exactly, for the sender.
    pub error: String,
    /// The field at fault, when one is.
    pub field: Option<&'static str>,
}

impl LineError {
    pub fn new(
        reason: &'static str,
        error: impl Into<String>,
        field: Option<&'static str>,
    ) -> Self {
        Self {
            reason,
            error: error.into(),
            field,
        }
    }

    pub fn missing(field: &'static str) -> Self {
        Self::new(
            "missing_field",
            format!("required field `{field}` is missing or empty"),
            Some(field),
        )
    }

    pub fn wrong_type(field: &'static str, expected: &str) -> Self {
        Self::new(
            "invalid_field",
            format!("`{field}` must be {expected}"),
            Some(field),
        )
    }
}

impl From<Rejected> for LineError {
    fn from(r: Rejected) -> Self {
        Self::new(r.reason, r.detail, None)
    }
}
