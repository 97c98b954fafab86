//! logstream's domain logic, free of I/O so it can be unit-tested, fuzzed and benchmarked.
//!
//! - [`archive`]: the S3 archive's layout: segments of offsets, objects by hour and service.
//! - [`api`]: the generator control API's request and status types, validated once.
//! - [`detect`]: detectors of incidents and attacks, and alerts as episodes.
//! - [`enrich`]: user agents parsed and client addresses located, into attributes.
//! - [`event`]: the normalised log event every format is turned into.
//! - [`format`]: the wire formats (JSON, Apache access lines, syslog RFC 5424 and 3164) and
//!   their `content-type` names; encoders for the generator, parsers for the collector.
//! - [`ingest`]: what the ingest service does to what it receives (shippers' JSON, text lines,
//!   syslog framing) before publishing it.
//! - [`json`]: the JSON wire form of an event (encode for the generator, decode for the collector).
//! - [`route`]: filter (drop) and route rules over events, from configuration.
//! - [`sample`]: sampling of raw storage while the collector is far behind.
//! - [`search`]: what a search of stored events asks for (levels, attribute filters, cursor).
//! - [`scenario`]: anomalies scheduled into a run (spike, error burst, attack), with labels.
//! - [`synth`]: realistic synthetic events for the generator.
//! - [`weighted`]: a weighted choice (the mixes of services, levels, formats).
//! - [`sketch`]: a mergeable latency sketch (log buckets) for window percentiles.
//! - [`window`]: event-time windows (tumbling, sliding), their aggregates and the watermark.
//! - [`copy`]: PostgreSQL `COPY ... FROM STDIN` text encoding of field values.

pub mod api;
pub mod archive;
pub mod copy;
pub mod detect;
pub mod enrich;
pub mod event;
pub mod format;
pub mod ingest;
pub mod json;
pub mod needle;
pub mod route;
pub mod sample;
pub mod scenario;
pub mod search;
pub mod sketch;
pub mod storable;
pub mod synth;
pub mod weighted;
pub mod window;

pub use event::{HttpAccess, Level, LogEvent};
