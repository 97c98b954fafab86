//! logstream-gateway: the public REST API. Forwards generator control to every live generator
//! instance (discovered in Redis, or listed statically) and answers queries from PostgreSQL.
//!
//! Layout: `routes/` has one file per group of endpoints; `generators` finds and calls the
//! instances; `stats` holds the SQL; `auth` the bearer-token check; `metrics` the HTTP metrics.

mod auth;
mod config;
mod generators;
mod metrics;
mod openapi;
mod ratelimit;
mod routes;
mod startup;
mod stats;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    let telemetry = logstream_service::telemetry::init(&config.common, "logstream-gateway")?;
    let result = startup::run(config).await;
    telemetry.shutdown();
    result
}
