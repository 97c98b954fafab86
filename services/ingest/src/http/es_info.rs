//! Enough of Elasticsearch's cluster information for its clients to start: `GET /` (the
//! version they check before their first bulk request) and `GET /_license`. Every answer of
//! the Elasticsearch-compatible routes carries `X-Elastic-Product: Elasticsearch`, which the
//! official clients (7.14 and later) require.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Ingest;

/// The Elasticsearch version the compatible routes claim: an 8.x, so clients send no `_type`.
pub const VERSION: &str = "8.11.0";

#[utoipa::path(get, path = "/", tag = "elasticsearch",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Elasticsearch's cluster information (name, cluster_name, version.number), for clients that check it before sending", body = Object),
        (status = 401, description = "Missing or wrong token (when LOGSTREAM_INGEST_TOKEN is set)", body = super::answers::ErrorBody),
    ))]
pub async fn root(State(ingest): State<Arc<Ingest>>, headers: HeaderMap) -> Response {
    if let Err(denied) = ingest.authorize(&headers) {
        return denied;
    }
    Json(json!({
        "name": ingest.instance_id,
        "cluster_name": "logstream",
        "cluster_uuid": "logstream-ingest",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "logstream",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": false,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }))
    .into_response()
}

#[utoipa::path(get, path = "/_license", tag = "elasticsearch",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "An active basic license, for clients that look before using a feature", body = Object),
        (status = 401, description = "Missing or wrong token (when LOGSTREAM_INGEST_TOKEN is set)", body = super::answers::ErrorBody),
    ))]
pub async fn license(State(ingest): State<Arc<Ingest>>, headers: HeaderMap) -> Response {
    if let Err(denied) = ingest.authorize(&headers) {
        return denied;
    }
    Json(json!({
        "license": {
            "status": "active",
            "uid": "logstream",
            "type": "basic",
            "issue_date": "2026-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1_767_225_600_000_i64,
            "max_nodes": 1000,
            "max_resource_units": null,
            "issued_to": "logstream",
            "issuer": "logstream",
            "start_date_in_millis": -1,
        }
    }))
    .into_response()
}

/// Marks an answer as Elasticsearch's, as its clients check.
pub async fn product_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}
