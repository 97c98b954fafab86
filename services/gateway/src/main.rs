//! logstream-gateway: the public REST API. Forwards generator control to every live generator
//! instance (discovered in Redis, or listed statically) and answers queries from PostgreSQL.
//!
//! A request's path: `metrics` (HTTP metrics around everything), `auth` (bearer tokens) and
//! `ratelimit` (per client and route, in Redis) first; then its handler in `routes/` (one file
//! per group of endpoints, their shared error answers in `routes/errors`), given the
//! `state::AppState`; the handler calls `generators` (finds and calls the generator instances)
//! or `stats` and `logs` (the SQL of the read endpoints and of the search). `tail` reads `logs.raw` for live followers (`GET /api/v1/tail`). `openapi` documents the routes; `startup` wires it all.

mod auth;
mod config;
mod generators;
mod logs;
mod metrics;
mod openapi;
mod ratelimit;
mod routes;
mod startup;
mod state;
mod stats;
mod tail;

use clap::Parser;

/// mimalloc: the same allocator as the other services.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    let telemetry = logstream_service::telemetry::init(&config.common, "logstream-gateway")?;
    let result = startup::run(config).await;
    telemetry.shutdown();
    result
}
