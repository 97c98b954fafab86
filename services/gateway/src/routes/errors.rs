//! The error answers the routes share: their body (as documented) and the answer when the
//! database cannot be queried.

use axum::http::StatusCode;
use axum::response::Response;
use logstream_service::ops::json_error;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer: a message, and the offending field when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

/// 503 naming the database error.
pub fn database_error(e: sqlx::Error) -> Response {
    tracing::warn!(error = %e, "stats query failed");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("database unavailable: {e}"),
        None,
    )
}
