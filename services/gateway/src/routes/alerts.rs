//! `GET /api/v1/alerts?since=&kind=&limit=&offset=`: alerts raised, most recent first.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_service::ops::json_error;
use serde_json::json;

use super::query::{self, Params};
use crate::startup::AppState;
use crate::stats;

pub async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let parsed =
        query::timestamp(&params, "since").and_then(|since| Ok((since, query::page(&params)?)));
    let (since, (limit, offset)) = match parsed {
        Ok(p) => p,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.message, Some(&e.field)),
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
        Ok(alerts) => {
            Json(json!({ "alerts": alerts, "limit": limit, "offset": offset })).into_response()
        }
        Err(e) => super::stats::database_error(e),
    }
}
