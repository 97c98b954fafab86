//! `GET /api/v1/stats` and `GET /api/v1/stats/{service}`: totals from PostgreSQL.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_service::ops::json_error;

use super::errors::{database_error, ErrorBody};
use crate::state::AppState;
use crate::stats::{self, Totals};

#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Stored totals", body = Totals), (status = 503, description = "Database unavailable", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn all(State(state): State<AppState>) -> Response {
    match stats::totals(&state.pool, None).await {
        Ok(totals) => Json(totals.unwrap_or_default()).into_response(),
        Err(e) => database_error(e),
    }
}

#[utoipa::path(get, path = "/api/v1/stats/{service}", tag = "stats",
    params(("service" = String, Path, description = "Service name")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Stored totals of one service", body = Totals),
        (status = 404, description = "No events stored for this service", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn one(State(state): State<AppState>, Path(service): Path<String>) -> Response {
    match stats::totals(&state.pool, Some(&service)).await {
        Ok(Some(totals)) => Json(totals).into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            format!("no events stored for service {service:?}"),
            Some("service"),
        ),
        Err(e) => database_error(e),
    }
}
