//! Periodic chores: consumer lag per partition (high watermark − stored next offset), and
//! `log_events` partitions (created ahead, dropped after the retention).

use std::sync::Arc;
use std::time::Duration;

use logstream_service::shutdown::CancellationToken;

use crate::committer::Committed;
use crate::dlq::DlqSink;
use crate::metrics::Metrics;
use crate::store::{Store, DAY_MS};

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

/// Keeps `log_events` partitioned ahead and bounded: creates the partitions of today and the
/// next two days, and drops every day's partition once all of it is older than the retention.
pub async fn partition_loop(store: Arc<Store>, retention_hours: u64, shutdown: CancellationToken) {
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let today = now.div_euclid(DAY_MS);
        if let Err(e) = store.ensure_partitions(today..=today + 2).await {
            tracing::warn!(error = %e, "cannot create log_events partitions ahead");
        }
        let cutoff = now - retention_hours as i64 * 3_600_000;
        match store.drop_partitions_before(cutoff).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(?dropped, "retention: dropped old log_events partitions")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: cannot drop old partitions"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
