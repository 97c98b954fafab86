//! Periodic chores: consumer lag per partition (high watermark − stored next offset) and
//! retention (deleting events older than the retention setting).

use std::sync::Arc;
use std::time::Duration;

use logstream_service::shutdown::CancellationToken;

use crate::dlq::DlqSink;
use crate::metrics::Metrics;
use crate::writer::Committed;

/// Lag of one partition, as last sampled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    pub next_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
}

/// Samples lag for every owned partition. Blocking (broker round trips): call from a blocking task.
pub fn sample_lag(
    client: &DlqSink,
    topic: &str,
    committed: &Committed,
    metrics: &Metrics,
) -> Vec<PartitionLag> {
    let owned: Vec<(i32, Option<i64>)> = committed
        .lock()
        .map(|m| m.iter().map(|(p, o)| (*p, *o)).collect())
        .unwrap_or_default();
    owned
        .into_iter()
        .map(|(partition, next_offset)| {
            let marks = client.watermarks(topic, partition);
            let lag = marks.map(|(low, high)| (high - next_offset.unwrap_or(low)).max(0));
            if let Some(lag) = lag {
                metrics
                    .lag
                    .with_label_values(&[&partition.to_string()])
                    .set(lag);
            }
            PartitionLag {
                partition,
                next_offset,
                high_watermark: marks.map(|(_, high)| high),
                lag,
            }
        })
        .collect()
}

pub async fn lag_loop(
    dlq: Arc<DlqSink>,
    topic: String,
    committed: Committed,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let (dlq, topic, committed, metrics) = (
            dlq.clone(),
            topic.clone(),
            committed.clone(),
            metrics.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || sample_lag(&dlq, &topic, &committed, &metrics))
            .await;
    }
}

pub async fn retention_loop(pool: sqlx::PgPool, retention_hours: u64, shutdown: CancellationToken) {
    loop {
        let result = sqlx::query(
            "DELETE FROM log_events WHERE event_time < now() - make_interval(hours => $1)",
        )
        .bind(retention_hours as i32)
        .execute(&pool)
        .await;
        match result {
            Ok(r) if r.rows_affected() > 0 => {
                tracing::info!(deleted = r.rows_affected(), "retention: deleted old events")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention delete failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
