//! The query behind `GET /api/v1/logs`: stored events matching a search, newest first, one page
//! at a time. The time range bounds which daily partitions of `log_events` are read; a service
//! and level are found through `log_events_service_level_time` already in the listing's order,
//! and the words of `q` through `log_events_message_words` (migration 0006).

use chrono::{DateTime, Utc};
use logstream_core::search::{AttributeFilter, Cursor};
use logstream_core::Level;
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{PgPool, Postgres, QueryBuilder};

/// A search, validated by the route.
#[derive(Debug, Clone)]
pub struct Search {
    /// Any of these services (empty: every service).
    pub services: Vec<String>,
    /// Any of these levels (empty: every level).
    pub levels: Vec<Level>,
    /// Event time range: `from` included, `to` excluded.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub host: Option<String>,
    pub trace_id: Option<String>,
    pub attributes: Vec<AttributeFilter>,
    /// Words of the message, in `websearch_to_tsquery` syntax.
    pub text: Option<String>,
    /// Continue after this row.
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// One stored event, as `log_events` holds it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub event_time: DateTime<Utc>,
    /// When the collector's transaction storing it began.
    pub received_at: DateTime<Utc>,
    pub level: String,
    pub service: String,
    pub component: Option<String>,
    pub host: Option<String>,
    pub message: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub parent_id: Option<String>,
    /// The event's attributes (a JSON object), as stored.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Box<RawValue>>,
    /// The producer (generator or ingest instance) and its sequence number.
    pub instance_id: Option<String>,
    pub seq: Option<i64>,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    event_time: DateTime<Utc>,
    received_at: DateTime<Utc>,
    level: String,
    service: String,
    component: Option<String>,
    host: Option<String>,
    message: String,
    trace_id: Option<String>,
    span_id: Option<String>,
    parent_id: Option<String>,
    attributes: Option<String>,
    instance_id: Option<String>,
    seq: Option<i64>,
    kafka_partition: i32,
    kafka_offset: i64,
}

impl From<Row> for StoredEvent {
    fn from(row: Row) -> Self {
        Self {
            event_time: row.event_time,
            received_at: row.received_at,
            level: row.level,
            service: row.service,
            component: row.component,
            host: row.host,
            message: row.message,
            trace_id: row.trace_id,
            span_id: row.span_id,
            parent_id: row.parent_id,
            // PostgreSQL's jsonb output is valid JSON.
            attributes: row.attributes.and_then(|a| RawValue::from_string(a).ok()),
            instance_id: row.instance_id,
            seq: row.seq,
            kafka_partition: row.kafka_partition,
            kafka_offset: row.kafka_offset,
        }
    }
}

/// One page of a search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogPage {
    /// Newest first (event time, then Kafka partition and offset, descending).
    pub events: Vec<StoredEvent>,
    /// Pass back as `cursor` (with the same filters) for the next page; null on the last page.
    pub next: Option<String>,
    /// The event time range searched: `from` included, `to` excluded.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: i64,
}

/// The page of events `search` asks for.
pub async fn search(pool: &PgPool, search: &Search) -> Result<LogPage, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT event_time, received_at, level, service, component, host, message, trace_id, \
         span_id, parent_id, attributes::text AS attributes, instance_id, seq, kafka_partition, \
         kafka_offset FROM log_events WHERE event_time >= ",
    );
    query.push_bind(search.from);
    query.push(" AND event_time < ").push_bind(search.to);
    match search.services.as_slice() {
        [] => {}
        [one] => {
            query.push(" AND service = ").push_bind(one);
        }
        many => {
            query.push(" AND service = ANY(").push_bind(many).push(")");
        }
    }
    match search.levels.as_slice() {
        [] => {}
        [one] => {
            query.push(" AND level = ").push_bind(one.as_str());
        }
        many => {
            let names: Vec<&str> = many.iter().map(|l| l.as_str()).collect();
            query.push(" AND level = ANY(").push_bind(names).push(")");
        }
    }
    if let Some(host) = &search.host {
        query.push(" AND host = ").push_bind(host);
    }
    if let Some(trace_id) = &search.trace_id {
        query.push(" AND trace_id = ").push_bind(trace_id);
    }
    for filter in &search.attributes {
        query
            .push(" AND attributes #>> ")
            .push_bind(&filter.path)
            .push(" = ")
            .push_bind(&filter.value);
    }
    if let Some(text) = &search.text {
        query
            .push(" AND to_tsvector('simple'::regconfig, message) @@ websearch_to_tsquery('simple'::regconfig, ")
            .push_bind(text)
            .push(")");
    }
    if let Some(after) = &search.after {
        query
            .push(" AND (event_time, kafka_partition, kafka_offset) < (")
            .push_bind(micros(after.event_time_us))
            .push(", ")
            .push_bind(after.partition)
            .push(", ")
            .push_bind(after.offset)
            .push(")");
    }
    query
        .push(" ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC LIMIT ")
        .push_bind(search.limit + 1);
    let mut rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    let more = rows.len() as i64 > search.limit;
    rows.truncate(search.limit as usize);
    let next = rows.last().filter(|_| more).map(|last| {
        Cursor {
            event_time_us: last.event_time.timestamp_micros(),
            partition: last.kafka_partition,
            offset: last.kafka_offset,
            from_us: search.from.timestamp_micros(),
        }
        .to_string()
    });
    Ok(LogPage {
        events: rows.into_iter().map(StoredEvent::from).collect(),
        next,
        from: search.from,
        to: search.to,
        limit: search.limit,
    })
}

/// A time from microseconds since the epoch, within [`within_rfc3339`]'s years.
pub fn micros(us: i64) -> DateTime<Utc> {
    within_rfc3339(DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// The time, moved into the years RFC 3339 can write (0000 to 9999), so that an answer echoing
/// it stays valid; no event is stored outside them.
pub fn within_rfc3339(time: DateTime<Utc>) -> DateTime<Utc> {
    let first = DateTime::<Utc>::from_timestamp(-62_167_219_200, 0);
    let last = DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_000);
    match (first, last) {
        (Some(first), Some(last)) => time.clamp(first, last),
        _ => time,
    }
}
