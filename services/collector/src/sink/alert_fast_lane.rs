//! The fast lane of critical alerts: a `critical` episode that fires is published on
//! `logs.alerts` as soon as the writer has read the event, not after its batch commits.
//!
//! Each one is first inserted into `alert_outbox` as claimed (`fast_claimed_at`), under the
//! unique key every transition has (kind, key, first_seen, partition, transition), then sent with
//! an idempotent producer (header `alert-outbox-id`, as the publisher's records), then noted as
//! sent (`fast_published_at`) and handed to the notifier once. So:
//! - the batch that holds the event inserts the same row later and does nothing (it exists);
//! - after a crash, the replay fires the same transition again, finds its row and does nothing;
//! - the publisher marks rows sent here as published without sending them again, and takes
//!   over a row claimed here but not sent within 30 s (this collector died or the send failed):
//!   it publishes it unless the topic's tail holds it already; rows after a claimed one wait for
//!   it, so transitions stay in order.
//!
//! One lane per collector, with a PostgreSQL connection of its own (it never waits for one the
//! batches hold), fed through a bounded queue: a full queue drops the fast send (the
//! publisher sends the transition once its batch commits) and counts it; storage never waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_service::retry::Backoff;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};

use crate::messages::AlertChange;
use crate::metrics::Metrics;
use crate::pipeline::alert_rows::outbox_columns;
use crate::sink::alert_publisher::alert_record;
use crate::sink::notifier::Notice;

/// Transitions waiting for the lane; more are dropped (and published the usual way).
pub const QUEUE: usize = 1024;
/// The most a claim may take to be sent and noted; the publisher takes claims older than 30 s.
const SEND_WITHIN: Duration = Duration::from_secs(20);

pub struct FastLane {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub topic: String,
    pub metrics: Metrics,
    pub notify: Option<mpsc::Sender<Notice>>,
    /// Wakes the publisher, which waits for claimed rows before publishing later ones.
    pub wake: Arc<Notify>,
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
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let producer = logstream_service::kafka::acknowledged_config(
            brokers,
            "logstream-collector-fast-alerts",
        )
        .set("linger.ms", "0")
        .set("message.timeout.ms", "5000")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the fast alert producer: {e}"))?;
        Ok(Self {
            pool,
            producer,
            topic,
            metrics,
            notify,
            wake,
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
        if let Some(read_ms) = change.change.read_ms {
            let queued = chrono::Utc::now()
                .timestamp_millis()
                .saturating_sub(read_ms);
            self.observe("queued", Duration::from_millis(queued.max(0) as u64));
        }
        let started = Instant::now();
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(|e| format!("cannot claim the transition: {e}"))?;
        self.observe("acquire", started.elapsed());
        let started = Instant::now();
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
        .fetch_optional(&mut *connection)
        .await
        .map_err(|e| format!("cannot claim the transition: {e}"))?;
        drop(connection);
        self.observe("claim", started.elapsed());
        let Some(id) = claimed else {
            return Ok(()); // stored by its batch already, or a replay
        };
        self.metrics.alerts.raised.with_label_values(&[kind]).inc();
        // Well inside the publisher's 30 s, so the two never send the same row at once.
        let sent = tokio::time::timeout(SEND_WITHIN, self.send(id, &row.keys[0], payload))
            .await
            .map_err(|_| format!("not sent within {SEND_WITHIN:?}"))??;
        if !sent {
            return Ok(()); // the publisher took it over and notifies
        }
        self.metrics.alerts.fast_published.inc();
        self.wake.notify_one();
        if let Some(notify) = &self.notify {
            let payload = serde_json::from_str(payload).unwrap_or_default();
            if notify.try_send(Notice::Once(payload)).is_err() {
                self.metrics.alerts.notifications_dropped.inc();
            }
        }
        Ok(())
    }

    fn observe(&self, step: &str, took: Duration) {
        self.metrics
            .alerts
            .fast_steps
            .with_label_values(&[step])
            .observe(took.as_secs_f64());
    }

    /// Sends the claimed row `id` and notes it sent; false when the publisher took the claim
    /// over meanwhile (it then checks the topic for this record before sending it).
    async fn send(&self, id: i64, key: &str, payload: &str) -> Result<bool, String> {
        let id_text = id.to_string();
        let record = alert_record(&self.topic, key, payload, &id_text);
        let started = Instant::now();
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| format!("cannot send the transition: {e}"))?;
        self.observe("send", started.elapsed());
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let noted = sqlx::query_scalar::<_, i64>(
                "UPDATE alert_outbox SET fast_published_at = now()
                 WHERE id = $1 AND fast_claimed_at IS NOT NULL AND published_at IS NULL
                 RETURNING id",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await;
            match noted {
                Ok(noted) => return Ok(noted.is_some()),
                Err(e) => {
                    tracing::warn!(id, error = %e, "sent, cannot note it yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}
