//! The steps every endpoint that takes events goes through: at most so many bodies at once,
//! the body read within its size and time limits and taken apart off the async threads, the
//! client's trace context kept, and the sending run on a task of its own.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use logstream_service::ops::json_error;
use tokio::sync::SemaphorePermit;

use super::body::{self, BodyError};
use super::Ingest;

/// The body read and taken apart by `take` (given the raw bytes and the `Content-Encoding`),
/// with the permit that bounds the requests in progress: hold it until the answer is given.
pub async fn take_body<'a, T, F>(
    ingest: &'a Ingest,
    headers: &HeaderMap,
    body: Body,
    take: F,
) -> Result<(T, SemaphorePermit<'a>), Response>
where
    F: FnOnce(Bytes, Option<String>) -> Result<T, Box<Response>> + Send + 'static,
    T: Send + 'static,
{
    // Bounded memory: at most this many bodies are read and taken apart at once.
    let Ok(permit) = ingest.requests.acquire().await else {
        return Err(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
            None,
        ));
    };
    let settings = &ingest.settings;
    let raw = body::read(body, settings.max_body_bytes, settings.body_timeout)
        .await
        .map_err(body_error)?;
    let encoding = body::encoding(headers);
    match tokio::task::spawn_blocking(move || take(raw, encoding)).await {
        Ok(Ok(taken)) => Ok((taken, permit)),
        Ok(Err(refused)) => Err(*refused),
        Err(e) => Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            None,
        )),
    }
}

/// The client's `traceparent`, when it is a valid one (sent on with every event).
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| logstream_service::trace_context::parse_traceparent(v).is_some())
        .map(str::to_owned)
}

/// Runs the sending and answering on a task of its own: a client that goes away does not stop
/// it half-way (the events received are all sent, rejected or dropped, and counted).
pub async fn detached(answer: impl Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(answer)
        .await
        .unwrap_or_else(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

/// The answer to a body that could not be read.
pub fn body_error(e: BodyError) -> Response {
    let status = match e {
        BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::Broken(_) | BodyError::BadCompression(..) => StatusCode::BAD_REQUEST,
    };
    json_error(status, e.to_string(), None)
}
