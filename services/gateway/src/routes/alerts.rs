//! `GET /api/v1/alerts?since=&kind=&limit=&offset=`: alerts raised, most recent first.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_service::ops::field_error;

use super::errors::{database_error, ErrorBody};
use super::query::{self, Params};
use crate::state::AppState;
use crate::stats::{self, AlertPage};

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(
        ("since" = Option<String>, Query, description = "Alerts last seen at or after this RFC 3339 time"),
        ("kind" = Option<String>, Query, description = "Only this kind"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=1000 (default 100)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Alerts, most recent first", body = AlertPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let parsed =
        query::timestamp(&params, "since").and_then(|since| Ok((since, query::page(&params)?)));
    let (since, (limit, offset)) = match parsed {
        Ok(p) => p,
        Err(e) => return field_error(e),
    };
    match stats::alerts(
        &state.pool,
        since,
        query::text(&params, "kind"),
        limit,
        offset,
    )
    .await
    {
        Ok(alerts) => Json(AlertPage {
            alerts,
            limit,
            offset,
        })
        .into_response(),
        Err(e) => database_error(e),
    }
}
