//! Plumbing every logstream service shares, so each service's own code is only its data path:
//!
//! - [`settings`]: the command-line / `LOGSTREAM_*` settings common to all services.
//! - [`telemetry`]: logs (text or JSON) and OpenTelemetry spans, exported over OTLP when set.
//! - [`trace_context`]: W3C trace context in HTTP and Kafka headers.
//! - [`shutdown`]: one cancellation token, cancelled on SIGINT or SIGTERM.
//! - [`sync`]: mutex locking that survives a poisoned lock.
//! - [`retry`]: exponential backoff for every retry loop.
//! - [`metrics`]: Prometheus metrics created and registered in one step.
//! - [`ops`]: the `/metrics`, `/healthz` and `/readyz` endpoints, JSON errors, and serving.
//! - [`kafka`]: client configuration, topic creation and broker checks.
//! - [`breaker`]: the circuit breaker around Kafka delivery of the services that produce events.
//! - [`postgres`]: connection pool and database checks.
//! - [`record_headers`]: the headers of a record on `logs.raw`.
//! - [`ratelimit`] (feature `ratelimit`): per-client sliding windows in Redis, with a local
//!   fallback.

pub mod breaker;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod postgres;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
pub mod record_headers;
pub mod retry;
pub mod settings;
pub mod shutdown;
pub mod sync;
pub mod telemetry;
pub mod trace_context;
