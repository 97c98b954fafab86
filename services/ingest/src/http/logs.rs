//! `POST /api/v1/logs`: events in a body (NDJSON, a JSON array, or text lines), answered only
//! once Kafka has acknowledged every accepted one: `{"accepted": n, "rejected": [{"line",
//! "error", "field"}]}`. A bad line is rejected alone. 401 without the token, 413 above the
//! body limit (as sent or decompressed) or more events than the per-request limit, 503 with
//! `Retry-After` while Kafka is unavailable (nothing is sent then) or when it did not acknowledge
//! everything in time (the sender retries the body).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::ingest::shipper_json::Defaults;
use logstream_core::ingest::text_line::LineFormat;
use logstream_service::ops::json_error;
use serde_json::json;

use super::body::{self, BodyError};
use super::parse::{self, BodyKind, BodyRefused, Parsed};
use super::Ingest;
use crate::accounting::{DropReason, Source};
use crate::publisher::{Acks, Encoded};

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
    // Bounded memory: at most this many bodies are read and taken apart at once.
    let Ok(_permit) = ingest.requests.acquire().await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", None);
    };
    let settings = &ingest.settings;
    let raw = match body::read(body, settings.max_body_bytes, settings.body_timeout).await {
        Ok(raw) => raw,
        Err(e) => return body_error(e),
    };
    let encoding = body::encoding(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (max_body, limits) = (settings.max_body_bytes, settings.limits);
    let parsed = tokio::task::spawn_blocking(move || {
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
    let parsed = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(refused)) => return *refused,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| logstream_service::trace_context::parse_traceparent(v).is_some())
        .map(str::to_owned);
    // On a task of its own: a client that goes away does not stop the sending half-way (the
    // events received are all sent, rejected or dropped, and counted).
    let publishing = tokio::spawn(publish(ingest.clone(), parsed, traceparent));
    publishing
        .await
        .unwrap_or_else(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
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
    let bytes =
        body::decode(raw, encoding, request.max_body).map_err(|e| Box::new(body_error(e)))?;
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

/// Counts the body's events, sends the accepted ones and answers when Kafka has them.
async fn publish(ingest: Arc<Ingest>, mut parsed: Parsed, traceparent: Option<String>) -> Response {
    let accounting = &ingest.accounting;
    accounting.received(Source::Http, parsed.received as u64);
    for (reason, n) in &parsed.rejected_by_reason {
        accounting.rejected_n(Source::Http, reason, *n);
    }
    let accepted = std::mem::take(&mut parsed.accepted);
    if !accepted.is_empty() && !ingest.publisher.available() {
        accounting.dropped(Source::Http, DropReason::Unavailable, accepted.len() as u64);
        let why = "Kafka is unavailable (circuit breaker open): nothing was sent";
        return unavailable(why, 0, 0);
    }
    let started = Instant::now();
    let acks = Acks::new(Source::Http);
    let (handed, refused) = hand_over(
        &ingest,
        &accepted,
        traceparent.as_deref(),
        &acks,
        &mut parsed,
    )
    .await;
    let waited = tokio::time::timeout(ingest.settings.ack_timeout, acks.at_most(0)).await;
    accounting
        .metrics()
        .ack_seconds
        .with_label_values(&[Source::Http.label()])
        .observe(started.elapsed().as_secs_f64());
    let failed = acks.failed() + refused;
    if waited.is_err() || failed > 0 {
        let unacknowledged = failed + acks.outstanding();
        let why = if waited.is_err() {
            "did not acknowledge in time"
        } else {
            "failed to take"
        };
        let sent = handed + refused;
        return unavailable(
            &format!("Kafka {why} {unacknowledged} of {sent} events; send the body again"),
            sent.saturating_sub(unacknowledged),
            unacknowledged,
        );
    }
    let rejected_count: u64 = parsed.rejected_by_reason.values().sum();
    let answer = json!({
        "accepted": handed,
        "rejected": parsed.rejected,
        "rejected_count": rejected_count,
    });
    (StatusCode::OK, Json(answer)).into_response()
}

/// Hands the accepted events to Kafka; how many were handed, and how many Kafka refused for
/// its own reasons (those it refused for theirs, too large, are rejections of `parsed`).
async fn hand_over(
    ingest: &Ingest,
    accepted: &[(usize, Encoded)],
    traceparent: Option<&str>,
    acks: &Arc<Acks>,
    parsed: &mut Parsed,
) -> (usize, usize) {
    let (mut handed, mut refused) = (0, 0);
    for (line, record) in accepted {
        match ingest.publisher.send(record, traceparent, acks).await {
            Ok(()) => handed += 1,
            Err(e) if ingest.publisher.refused(Source::Http, &e) => {
                parsed.reject(parse::Rejection {
                    line: *line,
                    error: format!("Kafka refused the event: {e}"),
                    field: None,
                    reason: "too_large_for_kafka",
                });
            }
            Err(_) => refused += 1,
        }
    }
    (handed, refused)
}

fn unavailable(error: &str, accepted: usize, failed: usize) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(json!({ "error": error, "accepted": accepted, "failed": failed })),
    )
        .into_response()
}

fn body_error(e: BodyError) -> Response {
    let status = match e {
        BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::Broken(_) | BodyError::BadCompression(..) => StatusCode::BAD_REQUEST,
    };
    json_error(status, e.to_string(), None)
}

/// How long the answer waits for Kafka: the message timeout and a margin.
pub fn ack_timeout(message_timeout_ms: u64) -> Duration {
    Duration::from_millis(message_timeout_ms + 2_000)
}
