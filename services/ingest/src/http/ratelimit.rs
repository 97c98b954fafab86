//! The per-client rate limit of the event endpoints (`LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE`):
//! requests per minute, counted in Redis as the gateway counts its API's
//! (`logstream_service::ratelimit`). The client is its IP address (the ingest token is one for
//! all senders, so it does not tell them apart). A refused request is answered 429 with `Retry-After`
//! before its body is read, so its events are neither received nor counted: the sender keeps
//! them and sends again.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use logstream_service::ratelimit::{client_of, SlidingWindows};
use prometheus::IntCounter;

pub struct Limiter {
    pub windows: SlidingWindows,
    pub per_minute: u32,
    pub refused: IntCounter,
}

/// Middleware for the event endpoints.
pub async fn enforce(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_of(&request, None);
    let key = format!("logstream:ingest-ratelimit:{client}");
    let decision = limiter.windows.check(&key, limiter.per_minute).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        limiter.refused.inc();
        decision.refusal("by this client")
    };
    decision.describe(&mut response);
    response
}
