//! Publishes the alert transitions the batches queued (`alert_outbox`) to `logs.alerts`,
//! exactly once, in the order they were committed, and hands them to the notifier.
//!
//! One collector of the group publishes: the one holding a PostgreSQL advisory lock (on a
//! connection of its own, so the lock goes with a dead process). Its Kafka producer is
//! transactional with one `transactional.id` for the whole group, so a publisher that lost the
//! lock but still runs is fenced. Each round publishes the unpublished rows in one Kafka
//! transaction (key: the alert key; header `alert-outbox-id`), then marks them published. A
//! crash between the two leaves rows that may be in the topic already: on taking over, the
//! publisher reads the tail of `logs.alerts` and marks the ids it finds there first. Critical
//! transitions the fast lane (`alert_fast_lane`) sent already are marked, not sent again.

use std::collections::BTreeSet;
use std::time::Duration;

use logstream_service::retry::Backoff;
use logstream_service::shutdown::CancellationToken;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::sink::notifier::Notice;

/// The advisory lock whoever publishes holds (any fixed number; "lsal" in ASCII).
const LOCK_KEY: i64 = 0x6c73_616c;
/// Rows per Kafka transaction.
const ROUND: i64 = 500;
/// How far back the tail of each partition is read when taking over.
const TAIL: i64 = 2 * ROUND;
/// The header carrying the outbox row id.
const ID_HEADER: &str = "alert-outbox-id";

/// An unpublished outbox row; `sent` when the fast lane sent it already.
struct Row {
    id: i64,
    key: String,
    payload: String,
    sent: bool,
}

pub struct AlertPublisher {
    pub pool: PgPool,
    pub brokers: String,
    pub topic: String,
    /// Kafka transactional id, the same for every collector of the group.
    pub transactional_id: String,
    /// Looks again at once when woken (a batch queued transitions), else every `poll`.
    pub poll: Duration,
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    pub metrics: Metrics,
    /// Where published transitions go next (the notifier); None: nowhere.
    pub notify: Option<mpsc::Sender<Notice>>,
}

impl AlertPublisher {
    /// Waits to hold the lock, then publishes until shutdown; starts over after a failure.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            match self.lead(&shutdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "alert publisher stopped; starting over"),
            }
            if !backoff.wait(&shutdown).await {
                return;
            }
        }
    }

    /// Holds the lock (waiting for it), takes over what the last publisher left, and publishes.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let mut lock = self.pool.acquire().await.map_err(|e| e.to_string())?;
        loop {
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *lock)
                .await
                .map_err(|e| e.to_string())?;
            if held {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        tracing::info!(topic = %self.topic, "publishing alert transitions");
        let producer = self.producer().await?;
        self.take_over().await?;
        if let Some(notify) = &self.notify {
            let _ = notify.send(Notice::Leading).await;
        }
        while !shutdown.is_cancelled() {
            let published = self.round(&producer).await?;
            // The lock's connection must stay alive; a lost one means another may lead now.
            sqlx::query("SELECT 1")
                .execute(&mut *lock)
                .await
                .map_err(|e| format!("lost the publisher's lock connection: {e}"))?;
            if published == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                }
            }
        }
        Ok(())
    }

    async fn producer(&self) -> Result<FutureProducer, String> {
        let producer: FutureProducer = logstream_service::kafka::acknowledged_config(
            &self.brokers,
            "logstream-collector-alerts",
        )
        .set("transactional.id", &self.transactional_id)
        .create()
        .map_err(|e| format!("cannot create the alert producer: {e}"))?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(30)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot start Kafka transactions for alerts: {e}"))?;
        Ok(producer)
    }

    /// Marks published the unpublished rows already in the topic's tail.
    async fn take_over(&self) -> Result<(), String> {
        // Rows the fast lane sent are left to the rounds, which keep them for repeating.
        let unpublished: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alert_outbox WHERE published_at IS NULL AND fast_published_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        if unpublished.is_empty() {
            return Ok(());
        }
        let in_topic = self.tail_ids().await?;
        let done: Vec<i64> = unpublished
            .into_iter()
            .filter(|id| in_topic.contains(id))
            .collect();
        if !done.is_empty() {
            tracing::info!(
                rows = done.len(),
                "alert transitions found published already"
            );
            self.mark(&done).await?;
        }
        Ok(())
    }

    /// Publishes one round of unpublished rows in one Kafka transaction, in id order; returns
    /// how many. Rows the fast lane sent are marked without sending them again; a row it claimed
    /// and has not sent yet stops the round there (later rows wait for it), and one claimed more
    /// than 30 s ago is taken over first.
    async fn round(&self, producer: &FutureProducer) -> Result<usize, String> {
        self.take_over_stale_claims().await?;
        let rows: Vec<(i64, String, String, bool, bool)> = sqlx::query_as(
            "SELECT id, key, payload::text, fast_published_at IS NOT NULL,
                    fast_claimed_at IS NOT NULL AND fast_published_at IS NULL
             FROM alert_outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(ROUND)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        let rows: Vec<Row> = rows
            .into_iter()
            .take_while(|r| !r.4)
            .map(|(id, key, payload, sent, _)| Row {
                id,
                key,
                payload,
                sent,
            })
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let to_send: Vec<&Row> = rows.iter().filter(|r| !r.sent).collect();
        if !to_send.is_empty() {
            self.send(producer, &to_send).await?;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.mark(&ids).await?;
        self.metrics.alerts.published.inc_by(to_send.len() as u64);
        for row in &rows {
            let payload = serde_json::from_str(&row.payload).unwrap_or_default();
            // The fast lane notified once already: kept for repeating only.
            self.tell(if row.sent {
                Notice::Repeat(payload)
            } else {
                Notice::Transition(payload)
            });
        }
        Ok(ids.len())
    }

    /// Takes back the fast lane's claims older than 30 s that it never noted as sent (its
    /// collector died, or the send failed): marks published those the topic's tail holds
    /// already (and notifies them), and leaves the rest to be sent like any other row.
    async fn take_over_stale_claims(&self) -> Result<(), String> {
        let stale: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE alert_outbox SET fast_claimed_at = NULL
             WHERE published_at IS NULL AND fast_published_at IS NULL
               AND fast_claimed_at < now() - interval '30 seconds'
             RETURNING id, payload::text",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        if stale.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            rows = stale.len(),
            "fast alert claims not sent within 30 s; publishing them"
        );
        let in_topic = self.tail_ids().await?;
        let found: Vec<&(i64, String)> = stale
            .iter()
            .filter(|(id, _)| in_topic.contains(id))
            .collect();
        if !found.is_empty() {
            let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
            self.mark(&ids).await?;
            for (_, payload) in found {
                self.tell(Notice::Transition(
                    serde_json::from_str(payload).unwrap_or_default(),
                ));
            }
        }
        Ok(())
    }

    /// The outbox ids in the tail of the topic (see [`tail_ids`]).
    async fn tail_ids(&self) -> Result<BTreeSet<i64>, String> {
        let (brokers, topic) = (self.brokers.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || tail_ids(&brokers, &topic))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Hands a notice to the notifier, if there is one; a full queue drops it (counted).
    fn tell(&self, notice: Notice) {
        if let Some(notify) = &self.notify {
            if notify.try_send(notice).is_err() {
                self.metrics.alerts.notifications_dropped.inc();
            }
        }
    }

    /// Sends `rows` in one Kafka transaction.
    async fn send(&self, producer: &FutureProducer, rows: &[&Row]) -> Result<(), String> {
        producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin an alert transaction: {e}"))?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id.to_string();
            let record = alert_record(&self.topic, &row.key, &row.payload, &id);
            pending.push(
                logstream_service::kafka::enqueue(producer, record)
                    .await
                    .map_err(|e| format!("alert refused: {e}"))?,
            );
        }
        if let Err(e) = logstream_service::kafka::acknowledged(pending, "alerts").await {
            let _ = producer.abort_transaction(Duration::from_secs(10));
            return Err(e);
        }
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.commit_transaction(Duration::from_secs(30)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot commit the alert transaction: {e}"))
    }

    async fn mark(&self, ids: &[i64]) -> Result<(), String> {
        sqlx::query("UPDATE alert_outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The `logs.alerts` record of outbox row `id`: keyed by the alert key, the id in its header.
pub fn alert_record<'a>(
    topic: &'a str,
    key: &'a str,
    payload: &'a str,
    id: &'a str,
) -> FutureRecord<'a, str, str> {
    FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(OwnedHeaders::new().insert(Header {
            key: ID_HEADER,
            value: Some(id),
        }))
}

/// Blocking: the outbox ids in the last records of every partition of `topic` (committed
/// records only).
fn tail_ids(brokers: &str, topic: &str) -> Result<BTreeSet<i64>, String> {
    let consumer: BaseConsumer =
        logstream_service::kafka::base_config(brokers, "logstream-collector-alerts-tail")
            .set("group.id", "logstream-alerts-tail")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| e.to_string())?;
        if high > low {
            assignment
                .add_partition_offset(topic, p, Offset::Offset((high - TAIL).max(low)))
                .map_err(|e| e.to_string())?;
            ends.push((p, high));
        }
    }
    let mut ids = BTreeSet::new();
    if ends.is_empty() {
        return Ok(ids);
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let id = message
                    .headers()
                    .and_then(|h| h.iter().find(|x| x.key == ID_HEADER).and_then(|x| x.value))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
                ids.extend(id);
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {
                // Caught up once every partition's position reached the end read above (the
                // last offsets may be transaction markers, which are never delivered).
                let position = consumer.position().map_err(|e| e.to_string())?;
                let done = ends.iter().all(|(p, high)| {
                    position
                        .find_partition(topic, *p)
                        .and_then(|e| e.offset().to_raw())
                        .is_some_and(|o| o >= *high - 1)
                });
                if done {
                    break;
                }
            }
        }
    }
    Ok(ids)
}
