//! An archive's progress in PostgreSQL (`archive_progress`): where each partition stands, and
//! the segment claimed for upload. Claims and completions are fenced on the stored offset, so of
//! two members that read the same partition for a while (a rebalance), only one span starting
//! at an offset is ever claimed.

use std::collections::HashMap;

use logstream_core::archive::Span;
use sqlx::PgPool;

/// Where a partition stands: the next offset to archive, and the last offset of a segment
/// claimed and maybe uploaded, not yet completed (it must close there again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub next_offset: i64,
    pub pending_last: Option<i64>,
}

pub struct Progress {
    pool: PgPool,
    destination: String,
    topic: String,
}

impl Progress {
    pub fn new(pool: PgPool, destination: String, topic: String) -> Self {
        Self {
            pool,
            destination,
            topic,
        }
    }

    /// The positions of `partitions` (absent: never archived).
    pub async fn load(&self, partitions: &[i32]) -> Result<HashMap<i32, Position>, sqlx::Error> {
        let rows: Vec<(i32, i64, Option<i64>)> = sqlx::query_as(
            "SELECT partition, next_offset, pending_last FROM archive_progress
             WHERE destination = $1 AND topic = $2 AND partition = ANY($3)",
        )
        .bind(&self.destination)
        .bind(&self.topic)
        .bind(partitions)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(partition, next_offset, pending_last)| {
                (
                    partition,
                    Position {
                        next_offset,
                        pending_last,
                    },
                )
            })
            .collect())
    }

    /// On the route's first start only (no progress for any partition yet): records where each
    /// partition starts (`starts`: partition, next offset). Once the route has progress,
    /// nothing changes: a partition added to the topic later has nothing before the route
    /// started, and is read from its beginning. How many partitions were recorded.
    pub async fn start_at(&self, starts: &[(i32, i64)]) -> Result<u64, sqlx::Error> {
        let (partitions, offsets): (Vec<i32>, Vec<i64>) = starts.iter().copied().unzip();
        let done = sqlx::query(
            "INSERT INTO archive_progress (destination, topic, partition, next_offset)
             SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS s (p, o)
             WHERE NOT EXISTS (SELECT 1 FROM archive_progress
                               WHERE destination = $1 AND topic = $2)
             ON CONFLICT (destination, topic, partition) DO NOTHING",
        )
        .bind(&self.destination)
        .bind(&self.topic)
        .bind(&partitions)
        .bind(&offsets)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records `span` as the segment being uploaded; false when the partition's stored position
    /// is elsewhere (another member moved it, or claimed another span from the same offset).
    pub async fn claim(&self, span: Span) -> Result<bool, sqlx::Error> {
        self.on_span(
            "INSERT INTO archive_progress (destination, topic, partition, next_offset, pending_last)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (destination, topic, partition) DO UPDATE
                 SET pending_last = EXCLUDED.pending_last, updated_at = now()
                 WHERE archive_progress.next_offset = EXCLUDED.next_offset
                   AND (archive_progress.pending_last IS NULL
                        OR archive_progress.pending_last = EXCLUDED.pending_last)",
            span,
        )
        .await
    }

    /// Moves the partition past `span`, whose objects are all uploaded; false when fenced.
    pub async fn complete(&self, span: Span) -> Result<bool, sqlx::Error> {
        self.on_span(
            "UPDATE archive_progress
             SET next_offset = $5 + 1, pending_last = NULL, updated_at = now()
             WHERE destination = $1 AND topic = $2 AND partition = $3
               AND next_offset = $4 AND pending_last = $5",
            span,
        )
        .await
    }

    /// Runs `statement` over ($1 destination, $2 topic, $3 partition, $4 first, $5 last of
    /// `span`); true when it changed the partition's row.
    async fn on_span(&self, statement: &str, span: Span) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(statement)
            .bind(&self.destination)
            .bind(&self.topic)
            .bind(span.partition)
            .bind(span.first)
            .bind(span.last)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
