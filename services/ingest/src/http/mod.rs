//! The HTTP surface: `POST /api/v1/logs` (events in), `GET /api/v1/ingest/status` (per-source
//! accounting), `GET /api/v1/openapi.json` (their description); Elasticsearch's bulk API
//! (`POST /_bulk`, `/{index}/_bulk`, with `GET /` and `GET /_license`) for the shippers that
//! speak it; beside the ops endpoints (`/metrics`, `/healthz`, `/readyz`).

mod answers;
mod body;
mod bulk;
mod es_info;
mod intake;
mod logs;
mod openapi;
pub mod parse;
pub mod ratelimit;
mod send;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use logstream_service::ops::json_error;
use serde_json::json;

use crate::accounting::Accounting;
use crate::publisher::Publisher;

/// What the handlers need to know.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub token: Option<String>,
    pub max_body_bytes: u64,
    /// Longest line and most events of one body.
    pub limits: parse::Limits,
    pub default_service: String,
    /// Longest time a client may take to send its body.
    pub body_timeout: Duration,
    /// Longest time an answer waits for Kafka's acknowledgements.
    pub ack_timeout: Duration,
}

impl HttpSettings {
    pub fn ack_timeout_for(message_timeout_ms: u64) -> Duration {
        logs::ack_timeout(message_timeout_ms)
    }
}

pub struct Ingest {
    pub publisher: Arc<Publisher>,
    /// Bodies read and taken apart at once, at most.
    pub requests: tokio::sync::Semaphore,
    pub accounting: Arc<Accounting>,
    pub settings: HttpSettings,
    pub instance_id: String,
    /// The tailed files' state.
    pub files: Arc<crate::file::Files>,
    /// The WebSocket upstreams' state.
    pub upstreams: Arc<crate::websocket::Upstreams>,
}

impl Ingest {
    /// Ok when no token is set or the request carries it: `Authorization: Bearer <token>`, or
    /// as Elasticsearch's clients send credentials, `ApiKey <token>` or `Basic` with the token as
    /// the password (any user name).
    #[allow(clippy::result_large_err)]
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = &self.settings.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(given_token);
        match given.as_deref() {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(json_error(
                StatusCode::UNAUTHORIZED,
                "wrong ingest token",
                None,
            )),
            None => Err(json_error(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs `Authorization: Bearer <LOGSTREAM_INGEST_TOKEN>`",
                None,
            )),
        }
    }
}

/// The token of an `Authorization` header's value.
fn given_token(value: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "apikey" => Some(rest.to_owned()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            decoded
                .split_once(':')
                .map(|(_, password)| password.to_owned())
        }
        _ => None,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The routes; the event endpoints behind the per-client rate limit when one is set.
pub fn router(ingest: Arc<Ingest>, limiter: Option<Arc<ratelimit::Limiter>>) -> Router {
    let limited = |routes: Router<Arc<Ingest>>| match &limiter {
        Some(limiter) => routes.route_layer(axum::middleware::from_fn_with_state(
            limiter.clone(),
            ratelimit::enforce,
        )),
        None => routes,
    };
    let logs = limited(Router::new().route("/api/v1/logs", post(logs::post)));
    let bulk = limited(
        Router::new()
            .route("/_bulk", post(bulk::post).put(bulk::post))
            .route(
                "/{index}/_bulk",
                post(bulk::post_to_index).put(bulk::post_to_index),
            ),
    );
    let elasticsearch = Router::new()
        .route("/", get(es_info::root))
        .route("/_license", get(es_info::license))
        .merge(bulk)
        .layer(axum::middleware::map_response(es_info::product_header));
    Router::new()
        .merge(logs)
        .route("/api/v1/ingest/status", get(status))
        .route("/stats", get(status))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(elasticsearch)
        .with_state(ingest)
}

/// Per source: connections, received, sent, rejected, dropped, in flight; the breaker; where the
/// records of this instance are, by seq.
#[utoipa::path(get, path = "/api/v1/ingest/status", tag = "ingest",
    responses((status = 200, description = "Per source: connections, received, sent, rejected, dropped, in flight; the Kafka circuit breaker", body = answers::IngestStatus)))]
async fn status(
    axum::extract::State(ingest): axum::extract::State<Arc<Ingest>>,
) -> Json<serde_json::Value> {
    Json(json!({
        "instance_id": ingest.instance_id,
        "circuit_breaker_state": ingest.publisher.breaker().state(),
        "sources": ingest.accounting.status(),
        "kafka": ingest.publisher.seq_status(),
        "files": ingest.files.status(),
        "websocket": ingest.upstreams.status(),
    }))
}

#[cfg(test)]
mod tests {
    use super::given_token;

    #[test]
    fn the_token_comes_as_bearer_api_key_or_basic_password() {
        assert_eq!(given_token("Bearer s3cret").as_deref(), Some("s3cret"));
        assert_eq!(given_token("ApiKey s3cret").as_deref(), Some("s3cret"));
        // "elastic:s3cret"
        assert_eq!(
            given_token("Basic ZWxhc3RpYzpzM2NyZXQ=").as_deref(),
            Some("s3cret")
        );
        assert_eq!(given_token("Basic !!!"), None);
        assert_eq!(given_token("Digest x"), None);
        assert_eq!(given_token("Bearer"), None);
    }
}
