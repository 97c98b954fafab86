//! logstream-ingest: takes real logs into Kafka (`logs.raw`), as the generator publishes
//! synthetic ones, so the collector stores them alike.
//!
//! Data path: a source (`http` for `POST /api/v1/logs`; `syslog::udp`, `syslog::tcp`) reads
//! events, taken apart and normalised by `logstream_core::ingest` (shippers' JSON, text lines,
//! syslog framing) → `publisher` (idempotent Kafka producer; an event counts as sent only once
//! Kafka acknowledged it, and an HTTP answer waits for that), guarded by
//! `logstream_service::breaker`. `accounting` keeps received == sent + rejected + dropped per
//! source, as metrics and as `GET /api/v1/ingest/status`.

mod accounting;
mod config;
mod file;
mod http;
mod metrics;
mod pem;
mod publisher;
mod startup;
mod syslog;
mod websocket;

use clap::Parser;

/// mimalloc: every event allocates a few small buffers (frame, event fields, its JSON), and
/// glibc's allocator took a fifth of the CPU time of a syslog TCP run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    let telemetry = logstream_service::telemetry::init(&config.common, "logstream-ingest")?;
    let result = startup::run(config).await;
    telemetry.shutdown();
    result
}
