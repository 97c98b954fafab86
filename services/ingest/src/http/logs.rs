//! `POST /api/v1/logs`: events in a body (NDJSON, a JSON array, or text lines), answered only
//! once Kafka has acknowledged every accepted one: `{"accepted": n, "rejected": [{"line",
//! "error", "field"}]}`. A bad line is rejected alone. 401 without the token, 413 above the
//! body limit, 503 with `Retry-After` while Kafka is unavailable (nothing is sent then) or when
//! it did not acknowledge everything in time (the sender retries the body).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::ingest::shipper_json::Defaults;
use logstream_core::ingest::text_line::LineFormat;
use logstream_service::ops::json_error;
use serde::Deserialize;
use serde_json::json;

use super::body::{self, BodyError};
use super::parse::{self, BodyKind, Parsed};
use super::Ingest;
use crate::accounting::{DropReason, Source};
use crate::publisher::Acks;

/// Rejections listed in an answer at most (the count is always whole).
const MAX_LISTED: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// `auto` (default), `json`, `apache`, `syslog5424` or `syslog3164`.
    pub format: Option<String>,
    /// Service of events that name none.
    pub service: Option<String>,
}

pub async fn post(
    State(ingest): State<Arc<Ingest>>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(denied) = ingest.authorize(&headers) {
        return denied;
    }
    let format = match query.format.as_deref() {
        None | Some("") => LineFormat::Auto,
        Some(name) => match LineFormat::parse(name) {
            Some(format) => format,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "format {name:?} is none of auto, json, apache, syslog5424, syslog3164"
                    ),
                    Some("format"),
                )
            }
        },
    };
    let service = match query.service {
        Some(s) if s.is_empty() || s.len() > 256 => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "service must be 1 to 256 bytes",
                Some("service"),
            )
        }
        Some(s) => s,
        None => ingest.settings.default_service.clone(),
    };
    let settings = &ingest.settings;
    let bytes = match body::read(
        body,
        &headers,
        settings.max_body_bytes,
        settings.body_timeout,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(e) => return body_error(e),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let max_line = settings.max_line_bytes as usize;
    let parsed = tokio::task::spawn_blocking(move || {
        let kind = BodyKind::of(content_type.as_deref(), format, &bytes);
        let defaults = Defaults {
            service: &service,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        parse::parse(kind, &bytes, defaults, max_line)
    })
    .await;
    let parsed = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(e)) => return json_error(StatusCode::BAD_REQUEST, e.to_string(), None),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| logstream_service::trace_context::parse_traceparent(v).is_some())
        .map(str::to_owned);
    publish(&ingest, parsed, traceparent.as_deref()).await
}

/// Counts the body's events, sends the accepted ones and answers when Kafka has them.
async fn publish(ingest: &Ingest, parsed: Parsed, traceparent: Option<&str>) -> Response {
    let accounting = &ingest.accounting;
    let Parsed {
        received,
        accepted,
        mut rejected,
    } = parsed;
    accounting.received(Source::Http, received as u64);
    for r in &rejected {
        accounting.rejected(Source::Http, r.reason);
    }
    if !accepted.is_empty() && !ingest.publisher.available() {
        accounting.dropped(Source::Http, DropReason::Unavailable, accepted.len() as u64);
        return unavailable(
            "Kafka is unavailable (circuit breaker open): nothing was sent",
            0,
            0,
        );
    }
    let started = Instant::now();
    let acks = Acks::new(Source::Http);
    let mut handed = 0usize;
    for (i, record) in accepted.iter().enumerate() {
        match ingest.publisher.send(record, traceparent, &acks).await {
            Ok(()) => handed += 1,
            Err(e) => {
                // Not a line number we know any more: the event's place among the accepted.
                accounting.rejected(Source::Http, "kafka_refused");
                rejected.push(parse::Rejection {
                    line: i + 1,
                    error: format!("Kafka refused the event: {e}"),
                    field: None,
                    reason: "kafka_refused",
                });
            }
        }
    }
    let waited = tokio::time::timeout(ingest.settings.ack_timeout, acks.at_most(0)).await;
    ingest
        .accounting
        .metrics()
        .ack_seconds
        .with_label_values(&[Source::Http.label()])
        .observe(started.elapsed().as_secs_f64());
    let failed = acks.failed();
    if waited.is_err() || failed > 0 {
        let unacknowledged = failed + acks.outstanding();
        return unavailable(
            &format!("Kafka did not acknowledge {unacknowledged} of {handed} events in time; send the body again"),
            handed - unacknowledged,
            unacknowledged,
        );
    }
    let rejected_count = rejected.len();
    rejected.truncate(MAX_LISTED);
    let status = StatusCode::OK;
    (
        status,
        Json(json!({
            "accepted": handed,
            "rejected": rejected,
            "rejected_count": rejected_count,
        })),
    )
        .into_response()
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
