//! `GET /api/v1/windows?service=&level=&from=&to=&size=&slide=&limit=&offset=`: windowed
//! aggregates, newest first. `size` is the window size in seconds (default: the smallest tumbling
//! size stored); `slide` selects sliding windows (default: tumbling, slide = size).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::api::FieldError;
use logstream_core::Level;
use logstream_service::ops::field_error;

use super::errors::{database_error, ErrorBody};
use super::query::{self, Params};
use crate::state::AppState;
use crate::stats::{self, WindowPage};

fn parse(params: &Params) -> Result<stats::WindowFilter, FieldError> {
    let level = query::present(params, "level")?
        .map(|l| {
            l.parse::<Level>()
                .map_err(|e| FieldError::new("level", e.to_string()))
        })
        .transpose()?;
    let (limit, offset) = query::page(params)?;
    Ok(stats::WindowFilter {
        service: query::text(params, "service")?.map(str::to_owned),
        level,
        from: query::timestamp(params, "from")?,
        to: query::timestamp(params, "to")?,
        size_seconds: query::number(params, "size", 1..=86_400)?.map(|s| s as i32),
        slide_seconds: query::number(params, "slide", 1..=86_400)?.map(|s| s as i32),
        limit,
        offset,
    })
}

#[utoipa::path(get, path = "/api/v1/windows", tag = "stats",
    params(
        ("service" = Option<String>, Query, description = "Only this service (no NUL: PostgreSQL text holds none)", pattern = "^[^\\u0000]*$"),
        ("level" = Option<super::names::LevelName>, Query, description = "Only this level (any case; WARNING, ERR, CRIT and CRITICAL are read too)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Windows starting at or after this RFC 3339 time"),
        ("to" = Option<String>, Query, format = DateTime, description = "Windows starting before this RFC 3339 time"),
        ("size" = Option<i32>, Query, description = "Window size in seconds (default: the smallest tumbling size stored)", minimum = 1, maximum = 86400),
        ("slide" = Option<i32>, Query, description = "Slide in seconds of a sliding window (default: tumbling windows, slide = size)", minimum = 1, maximum = 86400),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=1000 (default 100)", minimum = 1, maximum = 1000),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)", minimum = 0),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Windowed aggregates, newest first", body = WindowPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let filter = match parse(&params) {
        Ok(f) => f,
        Err(e) => return field_error(e),
    };
    match stats::windows(&state.pool, &filter).await {
        Ok(windows) => {
            let next_offset =
                (windows.len() as i64 == filter.limit).then_some(filter.offset + filter.limit);
            Json(WindowPage {
                windows,
                limit: filter.limit,
                offset: filter.offset,
                next_offset,
            })
            .into_response()
        }
        Err(e) => database_error(e),
    }
}
