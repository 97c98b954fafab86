//! The operational HTTP surface every service exposes: `GET /metrics` (Prometheus text),
//! `GET /healthz` (the process answers), `GET /readyz` (its dependencies answer), JSON errors
//! for unknown routes, one trace span per API request, and serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use logstream_core::api::FieldError;
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::trace_context;

/// Paths scraped or probed every few seconds, which get no trace span.
const UNTRACED: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// What a readiness closure returns when its checks differ in type from call to call: the
/// checks, boxed.
pub type ReadyChecks = std::pin::Pin<Box<dyn Future<Output = Vec<Check>> + Send>>;

/// The result of checking one dependency.
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

impl Check {
    pub fn new(name: &'static str, result: Result<(), String>) -> Self {
        Self { name, result }
    }
}

/// A JSON error answer: `{"error": "...", "field": "..."}`.
pub fn json_error(status: StatusCode, error: impl Into<String>, field: Option<&str>) -> Response {
    let body = match field {
        Some(field) => json!({ "error": error.into(), "field": field }),
        None => json!({ "error": error.into() }),
    };
    (status, Json(body)).into_response()
}

/// 400 for a request field that is not acceptable, naming the field.
pub fn field_error(e: FieldError) -> Response {
    json_error(StatusCode::BAD_REQUEST, e.message, Some(&e.field))
}

/// A registry with the process collector (CPU, memory, file descriptors) already registered.
pub fn new_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    if let Err(e) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::warn!(error = %e, "process metrics unavailable");
    }
    registry
}

fn render_metrics(registry: &Registry) -> Response {
    let mut buffer = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buffer).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

/// `/metrics`, `/healthz` and `/readyz`. `ready` runs the dependency checks.
pub fn router<F, Fut>(registry: Registry, ready: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<Check>> + Send + 'static,
{
    let registry = Arc::new(registry);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { render_metrics(&registry) }
            }),
        )
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move { readiness(ready().await) }
            }),
        )
}

/// JSON answers for unknown routes (404) and wrong methods (405). Apply to the finished router:
/// fallbacks do not survive being merged into another router.
pub fn with_json_errors(router: Router) -> Router {
    router
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no such route", None) })
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
                None,
            )
        })
}

fn readiness(checks: Vec<Check>) -> Response {
    let ready = checks.iter().all(|c| c.result.is_ok());
    let details: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|c| {
            let value = match c.result {
                Ok(()) => json!("ok"),
                Err(e) => json!(e),
            };
            (c.name.to_owned(), value)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ready { "ready" } else { "not ready" };
    (status, Json(json!({ "status": word, "checks": details }))).into_response()
}

/// Runs a request inside a server span named after its route, child of the caller's trace
/// context (`traceparent`) when it sends one.
pub async fn trace_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Some(route) = route.filter(|r| !UNTRACED.contains(&r.as_str())) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    trace_context::adopt_http_parent(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Binds `addr` (failing with a message naming the setting) and serves `app` until `shutdown`,
/// each API request in its own trace span.
pub async fn serve(
    addr: SocketAddr,
    setting: &str,
    app: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({setting}): {e}"))?;
    tracing::info!(%addr, "listening");
    let app = app.layer(axum::middleware::from_fn(trace_requests));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}
