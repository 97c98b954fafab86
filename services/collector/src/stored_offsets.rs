//! What PostgreSQL holds of each partition's progress (`kafka_offsets`), read wherever a stage
//! must start, or start again, from it: the consumer on assignment, the writer after a
//! conflict, the lag sampler. The sink's store writes it, in each batch's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::messages::{DetectorSnapshot, StoredPosition};

type Row = (i32, i64, Option<DateTime<Utc>>, Option<i64>, Option<String>);

pub struct StoredOffsets {
    pool: PgPool,
    group: String,
    topic: String,
}

impl StoredOffsets {
    pub fn new(pool: PgPool, group: String, topic: String) -> Self {
        Self { pool, group, topic }
    }

    /// The stored positions of `partitions` (absent when never stored).
    pub async fn load(
        &self,
        partitions: &[i32],
    ) -> Result<HashMap<i32, StoredPosition>, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT o.partition, o.next_offset, o.max_event_time, s.next_offset, s.state::text
             FROM kafka_offsets o
             LEFT JOIN detector_snapshots s USING (group_id, topic, partition)
             WHERE o.group_id = $1 AND o.topic = $2 AND o.partition = ANY($3)",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(partitions)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(partition, next_offset, max_event, snapshot_offset, state)| {
                    let max_event_ms = max_event.map(|t| t.timestamp_millis());
                    let detectors =
                        snapshot_offset
                            .zip(state)
                            .map(|(offset, state)| DetectorSnapshot {
                                partition,
                                next_offset: offset,
                                state,
                            });
                    (
                        partition,
                        StoredPosition {
                            next_offset,
                            max_event_ms,
                            detectors,
                        },
                    )
                },
            )
            .collect())
    }
}
