//! The collector's status endpoint: `GET /api/v1/collector/status` — every partition of the
//! topic (owned by this collector or not) with its stored offset and lag, totals, backpressure
//! and batch sizes.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::upkeep::housekeeping::LagSampler;

#[derive(Clone)]
pub struct StatusState {
    pub sampler: LagSampler,
    pub group: String,
    pub metrics: Metrics,
    pub batch_max_events: u64,
    pub batch_early_events: u64,
    pub batch_max_wait_ms: u64,
}

pub fn router(state: StatusState) -> Router {
    Router::new()
        .route("/api/v1/collector/status", get(status))
        .with_state(state)
}

async fn status(State(s): State<StatusState>) -> Json<Value> {
    let sampled = s.sampler.sample().await;
    let dlq_total: u64 = crate::metrics::dlq_reasons()
        .map(|r| s.metrics.dlq.with_label_values(&[r]).get())
        .sum();
    Json(json!({
        "group": s.group,
        "topic": s.sampler.topic,
        "partitions": sampled,
        "consumed_total": s.metrics.consumed.get(),
        "stored_total": s.metrics.stored.get(),
        "dlq_total": dlq_total,
        "late_total": s.metrics.late.get(),
        "paused": s.metrics.paused.get() == 1,
        "pauses_total": s.metrics.pauses.get(),
        "batch": {
            "max_events": s.batch_max_events,
            "early_events": s.batch_early_events,
            "max_wait_ms": s.batch_max_wait_ms,
            "records_p50": quantile(&s.metrics.batch_size, 0.5),
        },
    }))
}

/// A quantile of a histogram's observations, from its buckets (upper bound of the bucket where
/// the rank falls; None before any observation).
fn quantile(histogram: &prometheus::Histogram, q: f64) -> Option<f64> {
    use prometheus::core::Collector;
    let families = histogram.collect();
    let h = families.first()?.get_metric().first()?.get_histogram();
    let rank = (h.get_sample_count() as f64 * q).ceil() as u64;
    if rank == 0 {
        return None;
    }
    h.get_bucket()
        .iter()
        .find(|b| b.cumulative_count() >= rank)
        .map(|b| b.upper_bound())
}
