//! Queries behind the stats endpoints. Totals come from the window aggregates of the smallest
//! window size, which the collector writes in the same transaction as the events themselves, so
//! they equal a count of stored events without scanning them.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub total: i64,
    pub by_level: BTreeMap<String, i64>,
    pub by_service: BTreeMap<String, i64>,
}

/// Totals over everything stored, or over one service (None when it has no events).
pub async fn totals(pool: &PgPool, service: Option<&str>) -> Result<Option<Totals>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT service, level, sum(event_count)::bigint
         FROM log_window_aggregates
         WHERE window_seconds = (SELECT min(window_seconds) FROM log_window_aggregates)
           AND ($1::text IS NULL OR service = $1)
         GROUP BY service, level",
    )
    .bind(service)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() && service.is_some() {
        return Ok(None);
    }
    let mut totals = Totals::default();
    for (service, level, count) in rows {
        totals.total += count;
        *totals.by_level.entry(level).or_default() += count;
        *totals.by_service.entry(service).or_default() += count;
    }
    Ok(Some(totals))
}
