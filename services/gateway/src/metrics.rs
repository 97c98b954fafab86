//! HTTP metrics: `http_requests_total{route,status}`, `http_request_duration_seconds{route}`,
//! recorded by one middleware for every route; the rate limiter's and the live tail's counters.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use logstream_service::metrics::Registrar;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::tail::hub::TailMetrics;

#[derive(Clone)]
pub struct Metrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub rate_limited: IntCounter,
    pub limiter_local: IntGauge,
    pub tail: TailMetrics,
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
            tail: TailMetrics {
                followers: r.gauge(
                    "gateway_tail_clients",
                    "Live tails (GET /api/v1/tail) followed now",
                )?,
                sent: r.counter(
                    "gateway_tail_events_sent_total",
                    "Events handed to live tails (one per follower)",
                )?,
                skipped: r.counter(
                    "gateway_tail_events_skipped_total",
                    "Events live tails skipped because they read slower than events came",
                )?,
                read: r.counter(
                    "gateway_tail_records_read_total",
                    "Records the live tail read from the raw topic",
                )?,
                unreadable: r.counter(
                    "gateway_tail_records_unreadable_total",
                    "Records the live tail could not read as events (the collector dead-letters them)",
                )?,
            },
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
