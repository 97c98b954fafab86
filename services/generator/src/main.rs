//! logstream-generator: produces realistic log events at a controlled rate and publishes them to
//! Kafka (`logs.raw`). Controlled over HTTP by the gateway; see `routes.rs`.
//!
//! Data path: `routes` (start/stop) → `engine` (rate-controlled generation thread) →
//! `delivery` (idempotent Kafka producer; an event counts as sent only once Kafka acknowledged it),
//! guarded by `logstream_service::breaker` (generation pauses while Kafka does not acknowledge).
//! Beside it, `live` streams synthetic events over a WebSocket (`GET /ws/logs`).

mod config;
mod delivery;
mod engine;
mod global_limit;
mod live;
mod metrics;
mod registration;
mod routes;
mod startup;

use clap::Parser;

/// mimalloc: every event allocates its fields, its JSON and its Kafka headers on two generation
/// threads, and glibc's allocator took a sixth of the generator's CPU time at 40,000 events/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    let telemetry = logstream_service::telemetry::init(&config.common, "logstream-generator")?;
    let result = startup::run(config).await;
    telemetry.shutdown();
    result
}
