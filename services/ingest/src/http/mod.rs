//! The HTTP surface: `POST /api/v1/logs` (events in), `GET /api/v1/ingest/status` (per-source
//! accounting), `GET /api/v1/openapi.json` (their description), beside the ops endpoints (`/metrics`, `/healthz`, `/readyz`).

mod answers;
mod body;
mod logs;
mod openapi;
pub mod parse;

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
}

impl Ingest {
    /// Ok when no token is set or the request carries it (`Authorization: Bearer <token>`).
    #[allow(clippy::result_large_err)]
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = &self.settings.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/api/v1/logs", post(logs::post))
        .route("/api/v1/ingest/status", get(status))
        .route("/api/v1/openapi.json", get(openapi::document))
        .with_state(ingest)
}

/// Per source: connections, received, sent, rejected, dropped, in flight; and the breaker.
#[utoipa::path(get, path = "/api/v1/ingest/status", tag = "ingest",
    responses((status = 200, description = "Per source: connections, received, sent, rejected, dropped, in flight; the Kafka circuit breaker", body = answers::IngestStatus)))]
async fn status(
    axum::extract::State(ingest): axum::extract::State<Arc<Ingest>>,
) -> Json<serde_json::Value> {
    Json(json!({
        "instance_id": ingest.instance_id,
        "circuit_breaker_state": ingest.publisher.breaker().state(),
        "sources": ingest.accounting.status(),
    }))
}
