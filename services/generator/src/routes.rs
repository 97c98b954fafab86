//! The generator's control API (the gateway forwards to it):
//! `POST /api/v1/generator/start`, `POST /api/v1/generator/stop`, `GET /api/v1/generator/status`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use logstream_core::api::StartRequest;
use logstream_service::ops::{field_error, json_error};

use crate::engine::Engine;

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    default_rate: u64,
}

pub fn router(engine: Arc<Engine>, default_rate: u64) -> Router {
    Router::new()
        .route("/api/v1/generator/start", post(start))
        .route("/api/v1/generator/stop", post(stop))
        .route("/api/v1/generator/status", get(status))
        .with_state(AppState {
            engine,
            default_rate,
        })
}

async fn start(State(state): State<AppState>, body: Bytes) -> Response {
    let settings = match StartRequest::from_json(&body).and_then(|r| r.validate(state.default_rate))
    {
        Ok(settings) => settings,
        Err(e) => return field_error(e),
    };
    let engine = state.engine.clone();
    // Child of this request's span: the trace the start request belongs to.
    let run_span = tracing::info_span!(
        "generator_run",
        otel.kind = "producer",
        rate_per_second = settings.rate_per_second,
    );
    match tokio::task::spawn_blocking(move || engine.start(settings, run_span)).await {
        Ok(Ok(())) => Json(state.engine.status()).into_response(),
        Ok(Err(e)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start: {e}"),
            None,
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start: {e}"),
            None,
        ),
    }
}

async fn stop(State(state): State<AppState>) -> Response {
    let engine = state.engine.clone();
    match tokio::task::spawn_blocking(move || engine.stop()).await {
        Ok(true) => Json(state.engine.status()).into_response(),
        Ok(false) => json_error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "stopped, but {} records are still unacknowledged by Kafka",
                state.engine.status().counters.in_flight
            ),
            None,
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot stop: {e}"),
            None,
        ),
    }
}

async fn status(State(state): State<AppState>) -> Json<logstream_core::api::InstanceStatus> {
    Json(state.engine.status())
}
