//! logstream-collector: consumes `logs.raw`, decodes events, and stores them with per-window
//! counts in PostgreSQL, exactly once: the Kafka offsets consumed are written in the same
//! transaction as the rows they produced, and consumption resumes from them.
//!
//! Data path: `consumer` (Kafka group member, its own thread; `backpressure` pauses its
//! partitions while storage is behind) → `writer` (batches, watermark, offset order) → `batch`
//! (decode, COPY rows, event-time window aggregates, dead letters) → `committer` (writes one
//! batch while the next fills) → `dlq` (logs.dlq) + `store` (one PostgreSQL transaction: events
//! into the day's partition, aggregates, offsets).

mod backpressure;
mod batch;
mod broker;
mod committer;
mod config;
mod consumer;
mod dlq;
mod housekeeping;
mod metrics;
mod routes;
mod sinks;
mod startup;
#[cfg(test)]
mod storage_fuzz;
mod store;
mod writer;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    let telemetry = logstream_service::telemetry::init(&config.common, "logstream-collector")?;
    let result = startup::run(config).await;
    telemetry.shutdown();
    result
}
