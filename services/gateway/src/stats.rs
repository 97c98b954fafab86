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
    /// The search (`GET /api/v1/logs` path and query) for the events behind the episode: its
    /// service (and the levels of its kind), or the client address or user of the requests,
    /// from a minute before it began to a second after it was last seen. Daemons' login
    /// failures name the address in the message only: search those with `q`.
    #[sqlx(skip)]
    pub events: String,
}

/// The search for the events behind an alert episode (see [`Alert::events`]).
pub fn events_link(
    kind: &str,
    key: &str,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
) -> String {
    let from = (first_seen - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let to = (last_seen + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut params: Vec<(&str, &str)> = vec![("from", &from), ("to", &to)];
    if let Some(ip) = key.strip_prefix("ip:") {
        params.push(("attr.http.client_ip", ip));
    } else if let Some(user) = key.strip_prefix("user:") {
        params.push(("attr.http.user", user));
    } else {
        params.push(("service", key));
        match kind {
            "error_rate" => params.push(("level", ">=ERROR")),
            "critical" => params.push(("level", "FATAL")),
            _ => {}
        }
    }
    let query: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("/api/v1/logs?{query}")
}

/// Percent-encodes all but the unreserved characters of RFC 3986.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    let mut alerts: Vec<Alert> = sqlx::query_as(
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
    .await?;
    for alert in &mut alerts {
        alert.events = events_link(&alert.kind, &alert.key, alert.first_seen, alert.last_seen);
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_links_the_search_for_its_events() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let (first, last) = (at("2026-12-03T10:02:00Z"), at("2026-12-03T10:05:00Z"));
        assert_eq!(
            events_link("error_rate", "payments", first, last),
            "/api/v1/logs?from=2026-12-03T10%3A01%3A00.000Z&to=2026-12-03T10%3A05%3A01.000Z&service=payments&level=%3E%3DERROR"
        );
        assert!(events_link("sql_injection", "ip:10.0.0.7", first, last)
            .ends_with("&attr.http.client_ip=10.0.0.7"));
        assert!(events_link("brute_force", "user:al ice", first, last)
            .ends_with("&attr.http.user=al%20ice"));
        assert!(
            events_link("critical", "orders", first, last).ends_with("&service=orders&level=FATAL")
        );
    }
}
