//! The fast lane of critical alerts: a `critical` episode that fires is published on
//! `logs.alerts` as soon as the writer has read the event, not after its batch commits.
//!
//! Each one is first inserted into `alert_outbox` as claimed (`fast_claimed_at`), under the
//! unique key every transition has (kind, key, first_seen, partition, transition), then sent with
//! an idempotent producer (header `alert-outbox-id`, as the publisher's records), then noted as
//! sent (`fast_published_at`) and handed to the notifier once. So:
//! - the batch that holds the event inserts the same row later and does nothing (it exists);
//! - after a crash, the replay fires the same transition again, finds its row and does nothing;
//! - the publisher marks rows sent here as published without sending them again, and publishes
//!   a row claimed here but not sent within 30 s (this collector died in between).
//!
//! One lane per collector, fed through a bounded queue: a full queue drops the fast send (the
//! publisher sends the transition once its batch commits) and counts it; storage never waits.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::messages::AlertChange;
use crate::metrics::Metrics;
use crate::pipeline::alert_rows::outbox_columns;
use crate::sink::alert_publisher::ID_HEADER;
use crate::sink::notifier::Notice;

/// Transitions waiting for the lane; more are dropped (and published the usual way).
pub const QUEUE: usize = 1024;

pub struct FastLane {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub topic: String,
    pub metrics: Metrics,
    pub notify: Option<mpsc::Sender<Notice>>,
}

impl FastLane {
    /// A lane publishing to `topic` on `brokers`: no linger, every record acknowledged by all
    /// replicas.
    pub fn new(
        pool: PgPool,
        brokers: &str,
        topic: String,
        metrics: Metrics,
        notify: Option<mpsc::Sender<Notice>>,
    ) -> anyhow::Result<Self> {
        let producer = logstream_service::kafka::acknowledged_config(
            brokers,
            "logstream-collector-fast-alerts",
        )
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the fast alert producer: {e}"))?;
        Ok(Self {
            pool,
            producer,
            topic,
            metrics,
            notify,
        })
    }

    /// Publishes what comes until the queue closes (the writer is gone).
    pub async fn run(self, mut queue: mpsc::Receiver<AlertChange>) {
        while let Some(change) = queue.recv().await {
            if let Err(e) = self.publish(&change).await {
                tracing::warn!(error = %e,
                    "fast alert not sent; the publisher sends it once its batch is stored");
                self.metrics.alerts.fast_failed.inc();
            }
        }
    }

    /// Claims, sends and notes one transition; does nothing when its row exists already.
    async fn publish(&self, change: &AlertChange) -> Result<(), String> {
        let row = outbox_columns(std::slice::from_ref(change));
        let (Some(kind), Some(payload)) = (row.kinds.first(), row.payloads.first()) else {
            return Ok(()); // not a transition
        };
        let claimed: Option<i64> = sqlx::query_scalar(
            "INSERT INTO alert_outbox
                 (kind, key, first_seen, source_partition, transition, payload, fast_claimed_at)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, now())
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(kind)
        .bind(&row.keys[0])
        .bind(row.first_seen[0])
        .bind(row.partitions[0])
        .bind(row.transitions[0])
        .bind(payload)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| format!("cannot claim the transition: {e}"))?;
        let Some(id) = claimed else {
            return Ok(()); // stored by its batch already, or a replay
        };
        self.metrics.alerts.raised.with_label_values(&[kind]).inc();
        let id_text = id.to_string();
        let record = FutureRecord::to(&self.topic)
            .key(row.keys[0].as_str())
            .payload(payload.as_str())
            .headers(OwnedHeaders::new().insert(Header {
                key: ID_HEADER,
                value: Some(id_text.as_str()),
            }));
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| format!("cannot send the transition: {e}"))?;
        sqlx::query("UPDATE alert_outbox SET fast_published_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| format!("sent, but cannot note it (the publisher may send it again under the same id): {e}"))?;
        self.metrics.alerts.fast_published.inc();
        if let Some(notify) = &self.notify {
            let payload = serde_json::from_str(payload).unwrap_or_default();
            if notify.try_send(Notice::Once(payload)).is_err() {
                self.metrics.alerts.notifications_dropped.inc();
            }
        }
        Ok(())
    }
}
