//! The query behind `GET /api/v1/logs`: stored events matching a search, newest first, one page
//! at a time. The time range bounds which daily partitions of `log_events` are read; a service
//! and level are found through `log_events_service_level_time` (migration 0006) already in the
//! listing's order; the words of `q` through `log_events_message_words` when the collector keeps
//! it (LOGSTREAM_SEARCH_TEXT_INDEX), else by reading the messages in range.

use chrono::{DateTime, TimeDelta, Utc};
use logstream_core::search::words::required_words;
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

/// The columns a search returns.
const COLUMNS: &str = "SELECT event_time, received_at, level, service, component, host, message, \
     trace_id, span_id, parent_id, attributes::text AS attributes, instance_id, seq, \
     kafka_partition, kafka_offset FROM log_events WHERE event_time >= ";

/// The listing's order, newest first.
const ORDER: &str = " ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC LIMIT ";

/// Most (service, level) pairs searched as branches of their own.
const MAX_BRANCHES: usize = 24;

/// The first slice of the range searched when no index gives the events in order.
const FIRST_SLICE: TimeDelta = TimeDelta::minutes(15);

/// The page of events `search` asks for.
///
/// Several services or levels are searched as one branch per (service, level) pair, each
/// reading its index newest first and stopping at the page's size, merged in order: one scan
/// with `level = ANY(...)` would read and sort every match in the range first. When some branch
/// lacks a service or a level, no index gives its events in order: the range is then searched
/// newest slice first (15 minutes, then each slice four times the last) until a page is full,
/// so that a common word or no filter at all does not sort a whole day's matches.
pub async fn search(pool: &PgPool, search: &Search) -> Result<LogPage, sqlx::Error> {
    let limit = search.limit + 1;
    let pairs: Vec<(Option<&str>, Option<&str>)> = branches(search);
    let ordered = pairs.iter().all(|(s, l)| s.is_some() && l.is_some());
    let mut rows: Vec<Row> = Vec::new();
    // Newer than the cursor's row there is nothing left to list.
    let mut upper = match &search.after {
        Some(after) => search.to.min(micros(after.event_time_us.saturating_add(1))),
        None => search.to,
    };
    let mut width = FIRST_SLICE;
    loop {
        let lower = if ordered {
            search.from
        } else {
            upper
                .checked_sub_signed(width)
                .map_or(search.from, |l| l.max(search.from))
        };
        let wanted = limit - rows.len() as i64;
        let mut query = QueryBuilder::<Postgres>::new("");
        if pairs.len() == 1 {
            push_branch(&mut query, search, pairs[0], (lower, upper), wanted);
        } else {
            query.push("SELECT * FROM (");
            for (i, pair) in pairs.iter().enumerate() {
                query.push(if i == 0 { "(" } else { " UNION ALL (" });
                push_branch(&mut query, search, *pair, (lower, upper), wanted);
                query.push(")");
            }
            query.push(") AS matched");
            query.push(ORDER).push_bind(wanted);
        }
        rows.extend(query.build_query_as::<Row>().fetch_all(pool).await?);
        if rows.len() as i64 >= limit || lower <= search.from {
            break;
        }
        upper = lower;
        width = width.checked_mul(4).unwrap_or(TimeDelta::MAX);
    }
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

/// The (service, level) pairs searched as branches (None: any), or one branch with lists.
fn branches(search: &Search) -> Vec<(Option<&str>, Option<&str>)> {
    let services: Vec<Option<&str>> = match search.services.as_slice() {
        [] => vec![None],
        many => many.iter().map(|s| Some(s.as_str())).collect(),
    };
    let levels: Vec<Option<&str>> = match search.levels.as_slice() {
        [] => vec![None],
        many => many.iter().map(|l| Some(l.as_str())).collect(),
    };
    if services.len() * levels.len() > MAX_BRANCHES {
        return vec![(None, None)];
    }
    services
        .iter()
        .flat_map(|s| levels.iter().map(move |l| (*s, *l)))
        .collect()
}

/// One branch: the search's filters with this service and level (None: the search's lists).
fn push_branch<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    search: &'a Search,
    (service, level): (Option<&'a str>, Option<&'a str>),
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: i64,
) {
    query.push(COLUMNS).push_bind(from);
    query.push(" AND event_time < ").push_bind(to);
    match (service, search.services.as_slice()) {
        (Some(one), _) => {
            query.push(" AND service = ").push_bind(one);
        }
        (None, []) => {}
        (None, many) => {
            query.push(" AND service = ANY(").push_bind(many).push(")");
        }
    }
    match (level, search.levels.as_slice()) {
        (Some(one), _) => {
            query.push(" AND level = ").push_bind(one);
        }
        (None, []) => {}
        (None, many) => {
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
        // Words the message must hold, tested first (PostgreSQL orders a scan's filters by cost):
        // a substring test is far cheaper than splitting every message of the range into words.
        for word in required_words(text) {
            query
                .push(" AND message ILIKE ")
                .push_bind(format!("%{word}%"));
        }
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
    query.push(ORDER).push_bind(limit);
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
