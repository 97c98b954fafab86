//! `GET /api/v1/alerts?since=&kind=&status=&key=&limit=&offset=`: alert episodes, most recent
//! first; `GET /api/v1/alerts/rules`: the detection rules in force.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::detect::episodes::Kind;
use logstream_core::detect::rules::Rules;
use logstream_service::ops::field_error;

use super::errors::{database_error, ErrorBody};
use super::query::{self, Params};
use crate::state::AppState;
use crate::stats::{self, AlertPage};

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(
        ("since" = Option<String>, Query, format = DateTime, description = "Alerts last seen at or after this RFC 3339 time"),
        ("kind" = Option<super::names::AlertKindName>, Query, description = "Only this kind"),
        ("status" = Option<super::names::AlertStatusName>, Query, description = "Only episodes `firing` or `resolved`"),
        ("key" = Option<String>, Query, description = "Only this key: a service, `ip:<address>` or `user:<name>` (no NUL: PostgreSQL text holds none)", pattern = "^[^\\u0000]*$"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=1000 (default 100)", minimum = 1, maximum = 1000),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)", minimum = 0),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Alert episodes, most recent first", body = AlertPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let kinds = Kind::ALL.map(Kind::as_str);
    let parsed = query::timestamp(&params, "since").and_then(|since| {
        let status = query::one_of(&params, "status", &["firing", "resolved"])?;
        let kind = query::one_of(&params, "kind", &kinds)?;
        let key = query::text(&params, "key")?;
        Ok((since, status, kind, key, query::page(&params)?))
    });
    let (since, status, kind, key, (limit, offset)) = match parsed {
        Ok(p) => p,
        Err(e) => return field_error(e),
    };
    let filter = stats::AlertFilter {
        since,
        kind,
        status,
        key,
        limit,
        offset,
    };
    match stats::alerts(&state.pool, &filter).await {
        Ok(alerts) => Json(AlertPage {
            alerts,
            limit,
            offset,
        })
        .into_response(),
        Err(e) => database_error(e),
    }
}

#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The detection rules in force (LOGSTREAM_RULES, or the defaults), as the collector reads them", body = Object),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn rules(State(state): State<AppState>) -> Json<Rules> {
    Json(state.rules.as_ref().clone())
}
