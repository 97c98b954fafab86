//! `POST /_bulk` and `POST /{index}/_bulk`: Elasticsearch's bulk API, so Filebeat, Logstash,
//! Fluent Bit's `es` output, Vector's `elasticsearch` sink and syslog-ng's `elasticsearch-http()`
//! send to logstream unchanged. Each `index` or `create` item's document is read as a shipper's
//! JSON event (`@timestamp`, `message`, `log.level`, `host.name`, `service.name`, ...; other
//! fields kept in `attributes`). The answer has Elasticsearch's shape, one item per action, and
//! comes only once Kafka has acknowledged every accepted event: `201` items for those, `400`
//! items for documents that cannot be read and for `update` and `delete` (a log pipeline does
//! not change what it stored). The service of events that name none is `?service=`, else
//! `LOGSTREAM_INGEST_DEFAULT_SERVICE` (index names, often dated, are not services).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logstream_core::ingest::es_bulk::{self, Action};
use logstream_core::ingest::shipper_json::{self, Defaults};
use logstream_core::ingest::LineError;
use serde_json::{json, Value};

use super::parse::{BodyRefused, Limits, Parsed, Rejection};
use super::{body, intake, send, Ingest};

/// What an item of the answer needs to know besides its outcome.
struct Meta {
    action: Action,
    index: String,
    id: String,
}

/// A body's items, taken apart.
struct Taken {
    parsed: Parsed,
    metas: Vec<Meta>,
}

#[utoipa::path(method(post, put), path = "/_bulk", tag = "elasticsearch",
    params(("service" = Option<String>, Query, description = "Service of events that name none (default LOGSTREAM_INGEST_DEFAULT_SERVICE)", min_length = 1, max_length = 256)),
    request_body(description = "Elasticsearch bulk NDJSON: an action line (index, create, update or delete) and, but for delete, its document; Content-Encoding gzip or zstd",
        content((String = "application/x-ndjson"))),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Elasticsearch's bulk answer, one item per action: 201 for every event Kafka acknowledged, 400 for documents that cannot be read and for update and delete", body = Object),
        (status = 400, description = "An action line cannot be read, or an action has no document (Elasticsearch's error shape)", body = Object),
        (status = 401, description = "Missing or wrong token (when LOGSTREAM_INGEST_TOKEN is set)", body = super::answers::ErrorBody),
        (status = 408, description = "The body took longer than 30 s to arrive", body = super::answers::ErrorBody),
        (status = 413, description = "The body is larger than LOGSTREAM_INGEST_MAX_BODY_BYTES, or holds more events than LOGSTREAM_INGEST_MAX_EVENTS_PER_REQUEST", body = Object),
        (status = 415, description = "A Content-Encoding other than gzip, zstd or identity", body = super::answers::ErrorBody),
        (status = 429, description = "The client's rate limit (LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE) is used up; nothing was read; Retry-After says when", body = super::answers::ErrorBody),
        (status = 503, description = "Kafka is unavailable (nothing sent), or did not acknowledge every event in time (send the body again); Retry-After says when", body = Object),
    ))]
pub async fn post(
    State(ingest): State<Arc<Ingest>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk(ingest, None, query, headers, body).await
}

#[utoipa::path(method(post, put), path = "/{index}/_bulk", tag = "elasticsearch",
    params(
        ("index" = String, Path, description = "The index of items that name none (kept in the answer only)"),
        ("service" = Option<String>, Query, description = "Service of events that name none (default LOGSTREAM_INGEST_DEFAULT_SERVICE)", min_length = 1, max_length = 256),
    ),
    request_body(description = "Elasticsearch bulk NDJSON, as for /_bulk",
        content((String = "application/x-ndjson"))),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Elasticsearch's bulk answer, as for /_bulk", body = Object),
        (status = 400, description = "An action line cannot be read, or an action has no document", body = Object),
        (status = 401, description = "Missing or wrong token (when LOGSTREAM_INGEST_TOKEN is set)", body = super::answers::ErrorBody),
        (status = 408, description = "The body took longer than 30 s to arrive", body = super::answers::ErrorBody),
        (status = 413, description = "The body or its events are over the limits", body = Object),
        (status = 415, description = "A Content-Encoding other than gzip, zstd or identity", body = super::answers::ErrorBody),
        (status = 429, description = "The client's rate limit (LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE) is used up; nothing was read; Retry-After says when", body = super::answers::ErrorBody),
        (status = 503, description = "Kafka is unavailable, or did not acknowledge every event in time; Retry-After says when", body = Object),
    ))]
pub async fn post_to_index(
    State(ingest): State<Arc<Ingest>>,
    Path(index): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk(ingest, Some(index), query, headers, body).await
}

async fn bulk(
    ingest: Arc<Ingest>,
    index: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    if let Err(denied) = ingest.authorize(&headers) {
        return denied;
    }
    let service = match service_of(query.as_deref(), &ingest.settings.default_service) {
        Ok(service) => service,
        Err(e) => return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", &e),
    };
    let (max_body, limits) = (ingest.settings.max_body_bytes, ingest.settings.limits);
    let taken = intake::take_body(&ingest, &headers, body, move |raw, encoding| {
        take_apart(
            raw,
            encoding.as_deref(),
            max_body,
            index.as_deref(),
            &service,
            limits,
        )
    })
    .await;
    let (taken, _permit) = match taken {
        Ok(taken) => taken,
        Err(refused) => return refused,
    };
    let traceparent = intake::traceparent(&headers);
    intake::detached(publish(ingest.clone(), taken, traceparent, started)).await
}

/// `service` of the query (other parameters of the bulk API, such as `refresh` or
/// `filter_path`, are accepted and ignored).
fn service_of(query: Option<&str>, default: &str) -> Result<String, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| format!("the query string cannot be read: {e}"))?;
    match pairs.into_iter().find(|(k, _)| k == "service") {
        None => Ok(default.to_owned()),
        Some((_, s)) if s.is_empty() || s.len() > 256 => {
            Err("service must be 1 to 256 bytes".into())
        }
        Some((_, s)) => Ok(s),
    }
}

/// The body decompressed and its items read into events (blocking), or the answer refusing
/// it whole.
fn take_apart(
    raw: Bytes,
    encoding: Option<&str>,
    max_body: u64,
    path_index: Option<&str>,
    service: &str,
    limits: Limits,
) -> Result<Taken, Box<Response>> {
    let bytes =
        body::decode(raw, encoding, max_body).map_err(|e| Box::new(intake::body_error(e)))?;
    let items = es_bulk::items(&bytes, path_index).map_err(|e| {
        Box::new(es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            &e.to_string(),
        ))
    })?;
    let defaults = Defaults {
        service,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let batch = format!("{:016x}", rand::random::<u64>());
    let mut parsed = Parsed {
        list_all: true,
        ..Parsed::default()
    };
    let mut metas = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let taken = match item.action {
            Action::Index | Action::Create => parsed.take(limits, i + 1, item.document, |doc| {
                shipper_json::event_from_json(doc, defaults)
            }),
            Action::Update | Action::Delete => parsed.take(limits, i + 1, b"", |_| {
                Err(LineError::new(
                    "unsupported_action",
                    format!(
                        "{} is not supported: logstream stores log events, it does not change them",
                        item.action.name()
                    ),
                    None,
                ))
            }),
        };
        taken.map_err(|e: BodyRefused| {
            Box::new(es_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "illegal_argument_exception",
                &e.to_string(),
            ))
        })?;
        metas.push(Meta {
            action: item.action,
            index: item.index.clone().unwrap_or_else(|| "logstream".to_owned()),
            id: item
                .id
                .clone()
                .unwrap_or_else(|| format!("{batch}-{}", i + 1)),
        });
    }
    Ok(Taken { parsed, metas })
}

/// Sends the accepted events and answers in Elasticsearch's shape once Kafka has them all.
async fn publish(
    ingest: Arc<Ingest>,
    mut taken: Taken,
    traceparent: Option<String>,
    started: Instant,
) -> Response {
    match send::send(&ingest, &mut taken.parsed, traceparent.as_deref()).await {
        Err(unsent) => {
            let mut answer = es_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable_shards_exception",
                &unsent.error,
            );
            answer.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            answer
        }
        Ok(_) => {
            let took = started.elapsed().as_millis() as u64;
            (
                StatusCode::OK,
                Json(answer(&taken.metas, &taken.parsed.rejected, took)),
            )
                .into_response()
        }
    }
}

/// Elasticsearch's bulk answer: one item per action, in order.
fn answer(metas: &[Meta], rejected: &[Rejection], took: u64) -> Value {
    let by_item: HashMap<usize, &Rejection> = rejected.iter().map(|r| (r.line, r)).collect();
    let items: Vec<Value> = metas
        .iter()
        .enumerate()
        .map(|(i, meta)| {
            let outcome = match by_item.get(&(i + 1)) {
                None => json!({
                    "_index": meta.index, "_id": meta.id, "_version": 1, "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": i, "_primary_term": 1, "status": 201,
                }),
                Some(r) => {
                    let kind = if r.reason == "unsupported_action" {
                        "illegal_argument_exception"
                    } else {
                        "document_parsing_exception"
                    };
                    json!({
                        "_index": meta.index, "_id": meta.id, "status": 400,
                        "error": {"type": kind, "reason": r.error},
                    })
                }
            };
            let mut item = serde_json::Map::new();
            item.insert(meta.action.name().to_owned(), outcome);
            Value::Object(item)
        })
        .collect();
    json!({ "took": took, "errors": !rejected.is_empty(), "items": items })
}

/// An error in Elasticsearch's shape.
pub fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    let cause = json!({ "type": kind, "reason": reason });
    let body = json!({
        "error": { "root_cause": [cause], "type": kind, "reason": reason },
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line: 1000,
            max_events: 10,
        }
    }

    #[test]
    fn every_action_gets_an_item_in_order_with_its_outcome() {
        let body = b"{\"index\":{\"_index\":\"web\",\"_id\":\"a\"}}\n{\"message\":\"ok\",\"log.level\":\"warn\"}\n\
            {\"create\":{}}\n[1]\n{\"delete\":{\"_id\":\"b\"}}\n{\"index\":{}}\n{\"msg\":\"two\"}\n";
        let taken = take_apart(
            Bytes::from_static(body),
            None,
            1 << 20,
            Some("logs"),
            "app",
            limits(),
        )
        .expect("taken");
        assert_eq!(taken.parsed.received, 4);
        assert_eq!(taken.parsed.accepted.len(), 2);
        let answer = answer(&taken.metas, &taken.parsed.rejected, 3);
        assert_eq!(answer["errors"], json!(true));
        let statuses: Vec<(String, u64, String)> = answer["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| {
                let (action, outcome) =
                    item.as_object().and_then(|o| o.iter().next()).expect("one");
                (
                    action.clone(),
                    outcome["status"].as_u64().unwrap_or(0),
                    outcome["_index"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("index".into(), 201, "web".into()),
                ("create".into(), 400, "logs".into()),
                ("delete".into(), 400, "logs".into()),
                ("index".into(), 201, "logs".into()),
            ]
        );
        assert_eq!(answer["items"][0]["index"]["_id"], json!("a"));
    }

    #[test]
    fn a_body_that_cannot_be_read_or_is_too_big_is_refused_whole() {
        let refused = take_apart(
            Bytes::from_static(b"{\"index\":{}}\n"),
            None,
            1 << 20,
            None,
            "app",
            limits(),
        );
        assert_eq!(
            refused.err().map(|r| r.status()),
            Some(StatusCode::BAD_REQUEST)
        );
        let many = "{\"index\":{}}\n{}\n".repeat(11);
        let refused = take_apart(Bytes::from(many), None, 1 << 20, None, "app", limits());
        assert_eq!(
            refused.err().map(|r| r.status()),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }
}
