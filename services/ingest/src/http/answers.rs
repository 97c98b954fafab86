//! The bodies of the ingest API's answers, as the OpenAPI document describes them.

use serde::Serialize;
use utoipa::ToSchema;

use super::parse::Rejection;
use crate::accounting::SourceStatus;

/// Every error answer: a message, and the offending field when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

/// The `format` of text lines (`?format=`; read whatever its case).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Documents the values `LineFormat::parse` reads.
pub enum FormatName {
    Auto,
    Json,
    Apache,
    Syslog5424,
    Syslog3164,
}

/// The answer to `POST /api/v1/logs`, given once Kafka acknowledged every accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Events accepted and acknowledged by Kafka.
    pub accepted: u64,
    /// Lines not accepted, with why (at most 1,000 listed).
    pub rejected: Vec<Rejection>,
    /// All lines not accepted.
    pub rejected_count: u64,
}

/// The answer while Kafka is unavailable or did not acknowledge everything in time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unavailable {
    pub error: String,
    /// Events Kafka acknowledged (they are stored; a retry of the body repeats them).
    pub accepted: u64,
    /// Events Kafka did not acknowledge.
    pub failed: u64,
}

/// `GET /api/v1/ingest/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestStatus {
    pub instance_id: String,
    /// `closed`, `half_open` or `open`.
    pub circuit_breaker_state: String,
    pub sources: Vec<SourceStatus>,
    /// This instance's records by seq: seq_last == acknowledged + failed + in_flight + not_handed.
    pub kafka: crate::publisher::SeqStatus,
    /// Each tailed file (`LOGSTREAM_FILE_PATHS`).
    pub files: Vec<crate::file::FileStatus>,
    /// Each WebSocket upstream (`LOGSTREAM_WS_SOURCES`): connected, last error, received,
    /// rejected, dropped.
    pub websocket: Vec<crate::websocket::UpstreamStatus>,
}
