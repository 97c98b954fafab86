//! `GET /api/v1/logs` against the real PostgreSQL: each filter, and the cursor while rows keep
//! arriving. The events are written into a schema of the test's own (migrated like the real
//! one), which the gateway is pointed at, so what is stored elsewhere does not count.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use logstream_integration_tests::{database_url, enabled, migrated_schema, Service};
use serde_json::Value;
use sqlx::PgPool;

/// Which of the events (by `n`) a search must find.
type Keep = Box<dyn Fn(i64) -> bool>;

/// One event to store.
struct Event {
    at: DateTime<Utc>,
    level: &'static str,
    service: &'static str,
    host: &'static str,
    message: String,
    trace_id: Option<String>,
    attributes: Option<Value>,
    offset: i64,
}

async fn store(pool: &PgPool, events: &[Event]) {
    for e in events {
        let day = e.at.date_naive();
        sqlx::query("SELECT logstream_ensure_partition($1)")
            .bind(day)
            .execute(pool)
            .await
            .expect("partition");
        sqlx::query(
            "INSERT INTO log_events (event_time, level, service, host, message, trace_id, \
             attributes, kafka_partition, kafka_offset) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 0, $8)",
        )
        .bind(e.at)
        .bind(e.level)
        .bind(e.service)
        .bind(e.host)
        .bind(&e.message)
        .bind(&e.trace_id)
        .bind(e.attributes.as_ref().map(Value::to_string))
        .bind(e.offset)
        .execute(pool)
        .await
        .expect("insert");
    }
}

/// 120 events over the last 20 minutes, one every 10 s, newest last: every 3rd of payments
/// (others orders), levels cycling INFO, WARN, ERROR, DEBUG; every 5th says "upstream timeout"
/// and has http.status 500; every 7th comes from host db-1 with a trace id.
fn events(now: DateTime<Utc>) -> Vec<Event> {
    (0..120)
        .map(|i: i64| Event {
            at: now - Duration::seconds(1200 - i * 10),
            level: ["INFO", "WARN", "ERROR", "DEBUG"][i as usize % 4],
            service: if i % 3 == 0 { "payments" } else { "orders" },
            host: if i % 7 == 0 { "db-1" } else { "web-1" },
            message: if i % 5 == 0 {
                format!("request {i} failed: upstream timeout after 30s")
            } else {
                format!("request {i} served")
            },
            trace_id: (i % 7 == 0).then(|| format!("trace{i}")),
            attributes: Some(if i % 5 == 0 {
                serde_json::json!({"http": {"status": 500}, "n": i})
            } else {
                serde_json::json!({"http": {"status": 200}, "n": i})
            }),
            offset: i,
        })
        .collect()
}

/// A schema holding [`events`] up to now, a gateway on it, a client.
async fn setup() -> (PgPool, DateTime<Utc>, Service, reqwest::Client) {
    let (pool, schema) = migrated_schema("search").await;
    let now = Utc::now();
    store(&pool, &events(now)).await;
    (pool, now, gateway(&schema).await, reqwest::Client::new())
}

async fn gateway(schema: &str) -> Service {
    let url = format!("{}?options[search_path]={schema}", database_url());
    Service::start_path(
        "gateway-logs",
        std::path::Path::new(env!("CARGO_BIN_EXE_logstream-gateway")),
        "LOGSTREAM_GATEWAY_LISTEN",
        &[
            ("LOGSTREAM_DATABASE_URL", url.as_str()),
            ("LOGSTREAM_GENERATOR_URLS", "http://127.0.0.1:1"),
            ("LOGSTREAM_RATE_LIMIT_READ_PER_MINUTE", "100000"),
        ],
    )
    .await
}

async fn get(http: &reqwest::Client, base: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/logs"), query).expect("URL");
    let r = http.get(url).send().await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

/// The `n` attribute of each event of a page, in order.
fn ns(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["attributes"]["n"].as_i64().expect("n"))
        .collect()
}

#[tokio::test]
async fn every_filter_keeps_what_it_names() {
    if !enabled() {
        return;
    }
    let (_pool, now, gw, http) = setup().await;
    let expect =
        |keep: &dyn Fn(i64) -> bool| -> Vec<i64> { (0..120).rev().filter(|i| keep(*i)).collect() };
    let level = |i: i64| ["INFO", "WARN", "ERROR", "DEBUG"][i as usize % 4];

    let (status, page) = get(&http, &gw.base, &[("limit", "1000")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ns(&page), expect(&|_| true), "everything, newest first");
    assert!(page["next"].is_null());

    let cases: Vec<(Vec<(&str, &str)>, Keep)> = vec![
        (vec![("service", "payments")], Box::new(|i| i % 3 == 0)),
        (
            vec![("service", "payments"), ("level", "ERROR")],
            Box::new(move |i| i % 3 == 0 && level(i) == "ERROR"),
        ),
        (
            vec![("level", ">=warn")],
            Box::new(move |i| matches!(level(i), "WARN" | "ERROR")),
        ),
        (
            vec![("level", "debug,info")],
            Box::new(move |i| matches!(level(i), "DEBUG" | "INFO")),
        ),
        (vec![("q", "Timeout")], Box::new(|i| i % 5 == 0)),
        (
            vec![("q", "\"upstream timeout\"")],
            Box::new(|i| i % 5 == 0),
        ),
        (vec![("q", "\"timeout upstream\"")], Box::new(|_| false)),
        (vec![("q", "served -timeout")], Box::new(|i| i % 5 != 0)),
        (vec![("q", "request 15")], Box::new(|i| i == 15)),
        (vec![("attr.http.status", "500")], Box::new(|i| i % 5 == 0)),
        (vec![("attr.n", "42")], Box::new(|i| i == 42)),
        (vec![("host", "db-1")], Box::new(|i| i % 7 == 0)),
        (vec![("trace_id", "trace14")], Box::new(|i| i == 14)),
        (
            vec![("service", "orders"), ("q", "timeout"), ("level", "ERROR")],
            Box::new(move |i| i % 3 != 0 && i % 5 == 0 && level(i) == "ERROR"),
        ),
    ];
    for (mut query, keep) in cases {
        query.push(("limit", "1000"));
        let (status, page) = get(&http, &gw.base, &query).await;
        assert_eq!(status, 200, "{query:?}: {page}");
        assert_eq!(ns(&page), expect(&*keep), "{query:?}");
    }

    // The time range: the 10 minutes before 5 minutes ago.
    let (from, to) = (now - Duration::minutes(15), now - Duration::minutes(5));
    let (from, to) = (from.to_rfc3339(), to.to_rfc3339());
    let (_, page) = get(
        &http,
        &gw.base,
        &[
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("limit", "1000"),
        ],
    )
    .await;
    let in_range = ns(&page);
    assert_eq!(in_range.len(), 60, "{in_range:?}");

    for (query, field) in [
        (vec![("level", "LOUD")], "level"),
        (vec![("cursor", "nope")], "cursor"),
        (vec![("servce", "x")], "servce"),
        (vec![("attr.a..b", "1")], "attr.a..b"),
    ] {
        let (status, body) = get(&http, &gw.base, &query).await;
        assert_eq!(status, 400, "{query:?}");
        assert_eq!(body["field"], field, "{body}");
    }
}

#[tokio::test]
async fn the_cursor_pages_through_exactly_once_while_rows_arrive() {
    if !enabled() {
        return;
    }
    let (pool, now, gw, http) = setup().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 1000;
    loop {
        let mut query = vec![("limit", "7"), ("service", "orders,payments")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let (status, page) = get(&http, &gw.base, &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ns(&page));
        // Between pages: a newer event, and a late one between the newest listed and the
        // next (above the cursor from the first page on).
        let newest = now + Duration::milliseconds(added);
        let late = now - Duration::seconds(15);
        let new: Vec<Event> = [newest, late]
            .into_iter()
            .enumerate()
            .map(|(k, at)| Event {
                at,
                level: "INFO",
                service: "orders",
                host: "web-1",
                message: "arrived while paging".into(),
                trace_id: None,
                attributes: Some(serde_json::json!({"n": added + k as i64})),
                offset: added + k as i64,
            })
            .collect();
        store(&pool, &new).await;
        added += 2;
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<i64> = (0..120).rev().collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice: {seen:?}");
    // Rows stored while paging above the cursor are not listed: the pages go on from where
    // the last one ended.
    assert_eq!(seen, expected, "every stored event once, in order");
}

/// The substring test the search puts before the full-text test rules out no message that
/// PostgreSQL's own reading of the query (`websearch_to_tsquery('simple', q)`) matches: for every
/// query, built from the words of awkward messages, both give the same messages.
#[tokio::test]
async fn required_words_never_rule_out_a_match() {
    if !enabled() {
        return;
    }
    let pool = PgPool::connect(&database_url()).await.expect("postgres");
    let messages: Vec<String> = [
        "user@example.com failed to log in",
        "Foo-Bar baz: re-try in 5s",
        "GET /api/v1/logs?service=pay&x=1 HTTP/1.1 500",
        "file archive.tar.gz written, 1,000.5 ms (3e10 bytes)",
        "İstanbul TIMEOUT İİ café",
        "snake_case_word and CamelCase and don't",
        "<tag>upstream</tag> timeout after 30s",
        "\"issuer unavailable\" said the bank",
        "x-request-id=abc123 trace 0xdeadBEEF",
        "v2.3.4-rc1 released on 2026-12-03T10:00:00Z",
        "ERROR ERROR error",
        "",
    ]
    .map(String::from)
    .to_vec();
    let mut queries: Vec<String> = messages
        .iter()
        .flat_map(|m| m.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    queries.extend(
        messages
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| format!("\"{m}\"")),
    );
    queries.extend(
        [
            "timeout upstream",
            "\"upstream timeout\"",
            "TIMEOUT or refused",
            "-timeout",
            "re-try",
            "example.com",
            "user@example",
            "1,000.5",
            "1.1 500",
            "tar gz",
            "İstanbul",
            "istanbul",
            "café",
            "cafe",
            "snake case",
            "don t",
            "0xdeadbeef",
            "2026-12-03t10",
        ]
        .map(String::from),
    );
    for q in &queries {
        let patterns: Vec<String> = logstream_core::search::words::required_words(q)
            .iter()
            .map(|w| format!("%{w}%"))
            .collect();
        let (full, filtered): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE t), count(*) FILTER (WHERE t AND m ILIKE ALL($3)) \
             FROM (SELECT m, to_tsvector('simple'::regconfig, m) \
                   @@ websearch_to_tsquery('simple'::regconfig, $2) AS t \
                   FROM unnest($1::text[]) m) s",
        )
        .bind(&messages)
        .bind(q)
        .bind(&patterns)
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(full, filtered, "query {q:?} (required {patterns:?})");
    }
}
