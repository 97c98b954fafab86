//! HTTP metrics: `http_requests_total{route,status}`, `http_request_duration_seconds{route}`,
//! recorded by one middleware for every route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use logstream_service::metrics::Registrar;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub rate_limited: IntCounter,
    pub limiter_local: IntGauge,
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = Registrar(registry);
        Ok(Self {
            requests: r.counter_vec(
                "http_requests_total",
                "HTTP requests answered, by route and status",
                &["route", "status"],
            )?,
            duration: r.histogram_vec(
                "http_request_duration_seconds",
                "HTTP request duration, by route",
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
                &["route"],
            )?,
            rate_limited: r.counter(
                "gateway_rate_limited_total",
                "Requests refused by the rate limiter",
            )?,
            limiter_local: r.gauge(
                "gateway_rate_limiter_local",
                "1 while the rate limiter uses local windows because Redis is unreachable",
            )?,
        })
    }
}

/// Middleware recording every request under its route template (bounded cardinality).
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .duration
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}
