//! `POST /api/v1/generator/start`, `POST /api/v1/generator/stop`, `GET /api/v1/generator/status`:
//! validated here, then fanned out to every generator instance; the answer aggregates them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::api::{ClusterStatus, StartRequest};
use logstream_service::ops::{field_error, json_error};

use super::errors::ErrorBody;
use crate::state::AppState;

fn answer(status: ClusterStatus) -> Response {
    if status.instances.is_empty() && status.unreachable.is_empty() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no generator instances are registered (none in Redis and LOGSTREAM_GENERATOR_URLS is empty)",
            None,
        );
    }
    if status.instances.is_empty() {
        return (StatusCode::BAD_GATEWAY, Json(status)).into_response();
    }
    Json(status).into_response()
}

#[utoipa::path(post, path = "/api/v1/generator/start", tag = "generator",
    request_body(content = Option<StartRequest>, description = "Optional; every field optional", content_type = "application/json"),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Started (or retuned) on every instance", body = ClusterStatus),
        (status = 400, description = "Invalid body; `field` names the offending field", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_TOKEN is set)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "No generator instance answered", body = ClusterStatus),
        (status = 503, description = "No generator instance registered", body = ErrorBody)))]
pub async fn start(State(state): State<AppState>, body: Bytes) -> Response {
    let request = match StartRequest::from_json(&body).and_then(|r| r.validate(1).map(|_| r)) {
        Ok(request) => request,
        Err(e) => return field_error(e),
    };
    let body = match serde_json::to_vec(&request) {
        Ok(b) => Bytes::from(b),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let (instances, unreachable) = state
        .generators
        .call_all("/api/v1/generator/start", Some(body))
        .await;
    answer(ClusterStatus::aggregate(instances, unreachable))
}

#[utoipa::path(post, path = "/api/v1/generator/stop", tag = "generator",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Stopped everywhere; totals are final", body = ClusterStatus),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_TOKEN is set)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "No generator instance answered", body = ClusterStatus),
        (status = 503, description = "No generator instance registered", body = ErrorBody)))]
pub async fn stop(State(state): State<AppState>) -> Response {
    let (instances, unreachable) = state
        .generators
        .call_all("/api/v1/generator/stop", Some(Bytes::new()))
        .await;
    answer(ClusterStatus::aggregate(instances, unreachable))
}

#[utoipa::path(get, path = "/api/v1/generator/status", tag = "generator",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Aggregated status and one entry per instance", body = ClusterStatus),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "No generator instance answered", body = ClusterStatus),
        (status = 503, description = "No generator instance registered", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Response {
    let (instances, unreachable) = state
        .generators
        .call_all("/api/v1/generator/status", None)
        .await;
    answer(ClusterStatus::aggregate(instances, unreachable))
}
