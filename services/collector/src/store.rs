//! PostgreSQL storage. One batch is one transaction: the events (via `COPY`), the window counts
//! (upserted), and the next offset of every partition the batch covers. The offset update is
//! fenced: it only applies when the stored offset is still the one this collector started the
//! batch from, so a member that lost its partitions can never write them twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::batch::{Batch, COPY_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Another member already stored offsets of these partitions; the batch was rolled back.
    #[error("offsets of partitions {0:?} were stored by another member")]
    Conflict(Vec<i32>),
    #[error("dead letters not delivered: {0}")]
    Dlq(String),
}

pub struct Store {
    pool: PgPool,
    group: String,
    topic: String,
}

impl Store {
    pub fn new(pool: PgPool, group: String, topic: String) -> Self {
        Self { pool, group, topic }
    }

    /// The stored next offsets of `partitions` (absent when never stored).
    pub async fn load_offsets(&self, partitions: &[i32]) -> Result<HashMap<i32, i64>, sqlx::Error> {
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM kafka_offsets
             WHERE group_id = $1 AND topic = $2 AND partition = ANY($3)",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(partitions)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Writes `batch` in one transaction. `expected` holds, per partition, the offset this
    /// collector believes is stored (None: no row yet). Returns the aggregate rows written.
    pub async fn write(
        &self,
        batch: &Batch,
        expected: &BTreeMap<i32, Option<i64>>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        if batch.stored > 0 {
            let mut copy = tx
                .copy_in_raw(&format!("COPY log_events ({COPY_COLUMNS}) FROM STDIN"))
                .await?;
            copy.send(batch.rows.as_slice()).await?;
            copy.finish().await?;
        }

        let aggregates = batch.windows.sorted();
        let written = aggregates.len() as u64;
        if !aggregates.is_empty() {
            let mut starts: Vec<DateTime<Utc>> = Vec::with_capacity(aggregates.len());
            let mut sizes: Vec<i32> = Vec::with_capacity(aggregates.len());
            let mut services: Vec<String> = Vec::with_capacity(aggregates.len());
            let mut levels: Vec<&'static str> = Vec::with_capacity(aggregates.len());
            let mut counts: Vec<i64> = Vec::with_capacity(aggregates.len());
            for (key, count) in aggregates {
                starts
                    .push(DateTime::from_timestamp_millis(key.window_start_ms).unwrap_or_default());
                sizes.push((key.window_size_ms / 1000) as i32);
                services.push(key.service.clone());
                levels.push(key.level.as_str());
                counts.push(count);
            }
            sqlx::query(
                "INSERT INTO log_window_aggregates (window_start, window_seconds, service, level, event_count)
                 SELECT * FROM UNNEST($1::timestamptz[], $2::int[], $3::text[], $4::text[], $5::bigint[])
                 ON CONFLICT (window_start, window_seconds, service, level)
                 DO UPDATE SET event_count = log_window_aggregates.event_count + EXCLUDED.event_count,
                               updated_at = now()",
            )
            .bind(&starts)
            .bind(&sizes)
            .bind(&services)
            .bind(&levels)
            .bind(&counts)
            .execute(&mut *tx)
            .await?;
        }

        let mut conflicts = Vec::new();
        for (&partition, &next) in &batch.next_offsets {
            let applied = match expected.get(&partition).copied().flatten() {
                Some(previous) => sqlx::query(
                    "UPDATE kafka_offsets SET next_offset = $4, updated_at = now()
                     WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5",
                )
                .bind(&self.group)
                .bind(&self.topic)
                .bind(partition)
                .bind(next)
                .bind(previous)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "INSERT INTO kafka_offsets (group_id, topic, partition, next_offset)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&self.group)
                .bind(&self.topic)
                .bind(partition)
                .bind(next)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if applied != 1 {
                conflicts.push(partition);
            }
        }
        if !conflicts.is_empty() {
            tx.rollback().await?;
            return Err(StoreError::Conflict(conflicts));
        }
        tx.commit().await?;
        Ok(written)
    }
}
