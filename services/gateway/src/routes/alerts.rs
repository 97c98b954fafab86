//! `GET /api/v1/alerts?since=&kind=&status=&key=&limit=&offset=`: alert episodes, most recent
//! first; `GET /api/v1/alerts/rules`: the detection rules in force.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::api::FieldError;
use logstream_core::detect::rules::Rules;
use logstream_service::ops::field_error;

use super::errors::{database_error, ErrorBody};
use super::query::{self, Params};
use crate::state::AppState;
use crate::stats::{self, AlertPage};

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(
        ("since" = Option<String>, Query, description = "Alerts last seen at or after this RFC 3339 time"),
        ("kind" = Option<String>, Query, description = "Only this kind (error_rate, rate_spike, rate_drop, sql_injection, xss, path_traversal, brute_force, scanner, critical)"),
        ("status" = Option<String>, Query, description = "Only episodes `firing` or `resolved`"),
        ("key" = Option<String>, Query, description = "Only this key: a service, `ip:<address>` or `user:<name>`"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=1000 (default 100)", minimum = 1, maximum = 1000),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)", minimum = 0),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Alert episodes, most recent first", body = AlertPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let parsed = query::timestamp(&params, "since").and_then(|since| {
        let status = query::text(&params, "status");
        if let Some(s) = status.filter(|s| !matches!(*s, "firing" | "resolved")) {
            return Err(FieldError::new(
                "status",
                format!("{s:?} is not firing or resolved"),
            ));
        }
        Ok((since, status, query::page(&params)?))
    });
    let (since, status, (limit, offset)) = match parsed {
        Ok(p) => p,
        Err(e) => return field_error(e),
    };
    let filter = stats::AlertFilter {
        since,
        kind: query::text(&params, "kind"),
        status,
        key: query::text(&params, "key"),
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
