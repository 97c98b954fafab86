//! Queries behind the stats endpoints. Totals come from the window aggregates of the smallest
//! window size, which the collector writes in the same transaction as the events themselves, so
//! they equal a count of stored events without scanning them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use logstream_core::sketch::LatencySketch;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
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
         WHERE window_seconds = (SELECT min(window_seconds) FROM log_window_aggregates
                                 WHERE slide_seconds = window_seconds)
           AND slide_seconds = window_seconds
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

/// Filters of the windows query (validated by the route).
#[derive(Debug, Clone)]
pub struct WindowFilter {
    pub service: Option<String>,
    pub level: Option<logstream_core::Level>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub size_seconds: Option<i32>,
    /// Sliding windows' slide; None: tumbling windows (slide = size).
    pub slide_seconds: Option<i32>,
    pub limit: i64,
    pub offset: i64,
}

/// One window's aggregate for a service and level.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub window_start: DateTime<Utc>,
    pub window_seconds: i32,
    /// Equal to `window_seconds` for tumbling windows.
    pub slide_seconds: i32,
    pub service: String,
    pub level: String,
    pub count: i64,
    /// Whether the watermark has passed the window's end (later events still update it).
    pub closed: bool,
    /// Access-log latency percentiles in milliseconds (null when no event carried a latency),
    /// read from a mergeable sketch within 2%.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct WindowRow {
    window_start: DateTime<Utc>,
    window_seconds: i32,
    slide_seconds: i32,
    service: String,
    level: String,
    count: i64,
    closed: bool,
    latency_buckets: Option<Vec<i64>>,
}

impl From<WindowRow> for Window {
    fn from(row: WindowRow) -> Self {
        let sketch = LatencySketch::from_buckets(row.latency_buckets.unwrap_or_default());
        let ms = |q: f64| sketch.quantile_us(q).map(|us| (us / 10.0).round() / 100.0);
        Self {
            window_start: row.window_start,
            window_seconds: row.window_seconds,
            slide_seconds: row.slide_seconds,
            service: row.service,
            level: row.level,
            count: row.count,
            closed: row.closed,
            latency_p50_ms: ms(0.5),
            latency_p95_ms: ms(0.95),
            latency_p99_ms: ms(0.99),
        }
    }
}

/// One page of windowed aggregates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowPage {
    pub windows: Vec<Window>,
    pub limit: i64,
    pub offset: i64,
    /// Offset of the next page; null on the last page.
    pub next_offset: Option<i64>,
}

/// One page of alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn windows(pool: &PgPool, f: &WindowFilter) -> Result<Vec<Window>, sqlx::Error> {
    let rows: Vec<WindowRow> = sqlx::query_as(
        "SELECT window_start, window_seconds, slide_seconds, service, level, event_count AS count,
                closed_at IS NOT NULL AS closed, latency_buckets
         FROM log_window_aggregates
         WHERE window_seconds = coalesce($1, (SELECT min(window_seconds) FROM log_window_aggregates
                                              WHERE slide_seconds = window_seconds))
           AND slide_seconds = coalesce($8, window_seconds)
           AND ($2::text IS NULL OR service = $2)
           AND ($3::text IS NULL OR level = $3)
           AND ($4::timestamptz IS NULL OR window_start >= $4)
           AND ($5::timestamptz IS NULL OR window_start < $5)
         ORDER BY window_start DESC, service, level
         LIMIT $6 OFFSET $7",
    )
    .bind(f.size_seconds)
    .bind(f.service.as_deref())
    .bind(f.level.map(|l| l.as_str()))
    .bind(f.from)
    .bind(f.to)
    .bind(f.limit)
    .bind(f.offset)
    .bind(f.slide_seconds)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Window::from).collect())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Alert {
    pub id: i64,
    pub kind: String,
    pub severity: String,
    pub key: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    /// The first few events' messages, as a JSON array text.
    pub sample: Option<String>,
    pub status: String,
}

/// Which alert episodes to list.
pub struct AlertFilter<'a> {
    pub since: Option<DateTime<Utc>>,
    pub kind: Option<&'a str>,
    pub status: Option<&'a str>,
    pub key: Option<&'a str>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn alerts(pool: &PgPool, f: &AlertFilter<'_>) -> Result<Vec<Alert>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, severity, key, first_seen, last_seen, count, sample::text AS sample, status
         FROM alerts
         WHERE ($1::timestamptz IS NULL OR last_seen >= $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR key = $4)
         ORDER BY last_seen DESC, id DESC
         LIMIT $5 OFFSET $6",
    )
    .bind(f.since)
    .bind(f.kind)
    .bind(f.status)
    .bind(f.key)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(pool)
    .await
}
