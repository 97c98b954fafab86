//! The collector's status endpoint: `GET /api/v1/collector/status` — owned partitions, stored
//! offsets, lag, and totals.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::dlq::DlqSink;
use crate::housekeeping::sample_lag;
use crate::metrics::Metrics;
use crate::writer::Committed;

#[derive(Clone)]
pub struct StatusState {
    pub dlq: Arc<DlqSink>,
    pub topic: String,
    pub group: String,
    pub committed: Committed,
    pub metrics: Metrics,
}

pub fn router(state: StatusState) -> Router {
    Router::new()
        .route("/api/v1/collector/status", get(status))
        .with_state(state)
}

async fn status(State(s): State<StatusState>) -> Json<Value> {
    let sampled = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || sample_lag(&s.dlq, &s.topic, &s.committed, &s.metrics))
            .await
            .unwrap_or_default()
    };
    let dlq_total: u64 = crate::metrics::dlq_reasons()
        .map(|r| s.metrics.dlq.with_label_values(&[r]).get())
        .sum();
    Json(json!({
        "group": s.group,
        "topic": s.topic,
        "partitions": sampled,
        "consumed_total": s.metrics.consumed.get(),
        "stored_total": s.metrics.stored.get(),
        "dlq_total": dlq_total,
    }))
}
