//! `POST /api/v1/logs`: events in a body (NDJSON, a JSON array, or text lines), answered only
//! once Kafka has acknowledged every accepted one: `{"accepted": n, "rejected": [{"line",
//! "error", "field"}]}`. A bad line is rejected alone. 401 without the token, 413 above the
//! body limit (as sent or decompressed) or more events than the per-request limit, 503 with
//! `Retry-After` while Kafka is unavailable (nothing is sent then) or when it did not acknowledge
//! everything in time (the sender retries the body).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::ingest::shipper_json::Defaults;
use logstream_core::ingest::text_line::LineFormat;
use logstream_service::ops::json_error;
use serde_json::json;

use super::body;
use super::parse::{self, BodyKind, BodyRefused, Parsed};
use super::{intake, send, Ingest};

/// The query of a request: `format` and `service` (the first of each, when repeated).
#[derive(Debug, Default)]
pub struct LogsQuery {
    /// `auto` (default), `json`, `apache`, `syslog5424` or `syslog3164`.
    pub format: Option<String>,
    /// Service of events that name none.
    pub service: Option<String>,
}

impl LogsQuery {
    fn from_raw(raw: Option<&str>) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| format!("the query string cannot be read: {e}"))?;
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Ok(Self {
            format: first("format"),
            service: first("service"),
        })
    }
}

#[utoipa::path(post, path = "/api/v1/logs", tag = "ingest",
    params(
        ("format" = Option<super::answers::FormatName>, Query, description = "How text lines are read: auto (default: any known format, shippers' JSON, else a plain message), json, apache, syslog5424, syslog3164"),
        ("service" = Option<String>, Query, description = "Service of events that name none (default LOGSTREAM_INGEST_DEFAULT_SERVICE)",
            min_length = 1, max_length = 256),
    ),
    request_body(description = "NDJSON (one JSON object per line, with shippers' field aliases), a JSON array of objects, or text lines; Content-Encoding gzip or zstd",
        content(
            (String = "application/x-ndjson"),
            (String = "text/plain"),
        )),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every accepted event is acknowledged by Kafka; bad lines are listed", body = super::answers::IngestAnswer),
        (status = 400, description = "A query parameter is invalid, or the body is empty or cannot be read (a JSON array that is not one, bad compression)", body = super::answers::ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when LOGSTREAM_INGEST_TOKEN is set)", body = super::answers::ErrorBody),
        (status = 408, description = "The body took longer than 30 s to arrive", body = super::answers::ErrorBody),
        (status = 413, description = "The body is larger than LOGSTREAM_INGEST_MAX_BODY_BYTES, as sent or decompressed", body = super::answers::ErrorBody),
        (status = 415, description = "A Content-Encoding other than gzip, zstd or identity", body = super::answers::ErrorBody),
        (status = 429, description = "The client's rate limit (LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE) is used up; nothing was read; Retry-After says when", body = super::answers::ErrorBody),
        (status = 503, description = "Kafka is unavailable (nothing sent), or did not acknowledge every event in time (send the body again); Retry-After says when", body = super::answers::Unavailable),
    ))]
pub async fn post(
    State(ingest): State<Arc<Ingest>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(denied) = ingest.authorize(&headers) {
        return denied;
    }
    let query = match LogsQuery::from_raw(query.as_deref()) {
        Ok(query) => query,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e, None),
    };
    let (format, service) = match read_query(query, &ingest.settings.default_service) {
        Ok(q) => q,
        Err(refused) => return refused,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (max_body, limits) = (ingest.settings.max_body_bytes, ingest.settings.limits);
    let taken = intake::take_body(&ingest, &headers, body, move |raw, encoding| {
        let request = Request {
            content_type,
            format,
            service,
            max_body,
            limits,
        };
        take_apart(raw, encoding.as_deref(), &request)
    })
    .await;
    let (parsed, _permit) = match taken {
        Ok(taken) => taken,
        Err(refused) => return refused,
    };
    let traceparent = intake::traceparent(&headers);
    intake::detached(publish(ingest.clone(), parsed, traceparent)).await
}

/// What a request says about its body.
struct Request {
    content_type: Option<String>,
    format: LineFormat,
    service: String,
    max_body: u64,
    limits: parse::Limits,
}

/// The body decompressed and taken apart (blocking), or the answer refusing it.
fn take_apart(
    raw: axum::body::Bytes,
    encoding: Option<&str>,
    request: &Request,
) -> Result<Parsed, Box<Response>> {
    // An empty body is an empty text (nothing to take, 200); no body at all is a mistake.
    if raw.is_empty() && request.content_type.is_none() {
        let why = "no body: send NDJSON, a JSON array or text lines";
        return Err(Box::new(json_error(StatusCode::BAD_REQUEST, why, None)));
    }
    let bytes = body::decode(raw, encoding, request.max_body)
        .map_err(|e| Box::new(intake::body_error(e)))?;
    let kind = BodyKind::of(request.content_type.as_deref(), request.format, &bytes);
    let defaults = Defaults {
        service: &request.service,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    parse::parse(kind, &bytes, defaults, request.limits).map_err(|e| {
        let status = match e {
            BodyRefused::TooManyEvents(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefused::NotAnArray(_) => StatusCode::BAD_REQUEST,
        };
        Box::new(json_error(status, e.to_string(), None))
    })
}

/// The `format` and `service` asked for, or the answer refusing them.
#[allow(clippy::result_large_err)]
fn read_query(query: LogsQuery, default_service: &str) -> Result<(LineFormat, String), Response> {
    let format = match query.format.as_deref() {
        None => LineFormat::Auto,
        Some(name) => LineFormat::parse(name).ok_or_else(|| {
            json_error(
                StatusCode::BAD_REQUEST,
                format!("format {name:?} is none of auto, json, apache, syslog5424, syslog3164"),
                Some("format"),
            )
        })?,
    };
    let service = match query.service {
        Some(s) if s.is_empty() || s.len() > 256 => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "service must be 1 to 256 bytes",
                Some("service"),
            ))
        }
        Some(s) => s,
        None => default_service.to_owned(),
    };
    Ok((format, service))
}

/// Sends the body's accepted events and answers once Kafka has them all.
async fn publish(ingest: Arc<Ingest>, mut parsed: Parsed, traceparent: Option<String>) -> Response {
    match send::send(&ingest, &mut parsed, traceparent.as_deref()).await {
        Err(unsent) => unavailable(&unsent.error, unsent.accepted, unsent.failed),
        Ok(handed) => {
            let rejected_count: u64 = parsed.rejected_by_reason.values().sum();
            let answer = json!({
                "accepted": handed,
                "rejected": parsed.rejected,
                "rejected_count": rejected_count,
            });
            (StatusCode::OK, Json(answer)).into_response()
        }
    }
}

fn unavailable(error: &str, accepted: usize, failed: usize) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(json!({ "error": error, "accepted": accepted, "failed": failed })),
    )
        .into_response()
}

/// How long the answer waits for Kafka: the message timeout and a margin.
pub fn ack_timeout(message_timeout_ms: u64) -> Duration {
    Duration::from_millis(message_timeout_ms + 2_000)
}
