//! End-to-end fuzzing of the storage path against a real PostgreSQL (LOGSTREAM_IT=1): records
//! of one format, made from the synthesizer's valid lines and then damaged at random (escapes
//! such as `\x00` and `\u0000`, lone surrogates, numbers beyond `numeric`, raw NUL and invalid
//! UTF-8 bytes, quotes, cut lines, flipped bytes), with random keys and content-type headers, go
//! through decode → COPY encoding → window upsert → offsets, in batches of 1 to 200, into a
//! schema of their own. Every record must be stored or dead-lettered, and no batch may fail
//! for a data reason.
//!
//!   LOGSTREAM_IT=1 LOGSTREAM_FUZZ_SECONDS=600 LOGSTREAM_FUZZ_FORMATS=json \
//!     cargo test --release -p logstream-collector storage_fuzz -- --nocapture
//!
//! LOGSTREAM_FUZZ_SECONDS (default 10) is the time per format; LOGSTREAM_FUZZ_FORMATS (default
//! all four) a comma-separated list; LOGSTREAM_FUZZ_SEED (random) replays a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::format::{self, Format};
use logstream_core::route::Routing;
use logstream_core::synth::Synthesizer;
use logstream_core::window::{Watermark, WindowSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::messages::Record;
use crate::pipeline::batch::{Batch, TimeBounds};
use crate::sink::store::{Store, StoreError};
use crate::sink::turn::Turn;

/// Strings that have broken log pipelines, inserted into otherwise valid lines.
const NASTY: &[&str] = &[
    "\\x00",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "1e-20000",
    "9e999999",
    "-0e-99999",
    "\"",
    "\\",
    "\\\"",
    "]",
    "[",
    "=",
    "\0",
    "\u{FFFF}",
    "\u{10FFFF}",
    "\u{202E}",
    "%00",
    "'",
    "\t",
    "\n",
    " ",
    "<",
    ">",
    "{",
    "}",
    ":",
    "0x",
    "\u{0}\u{0}\u{0}\u{7}",
];

/// JSON attributes with values PostgreSQL's jsonb refuses as they are.
const NASTY_ATTRIBUTES: &[&str] = &[
    r#"{"x": 1e-20000}"#,
    r#"{"x": 1E200000, "y": [0e-99999]}"#,
    r#"{"s": "a\u0000b", "t": "\ud800", "u": "\udc00x"}"#,
    r#"{"nested": {"deep": ["\u0000", 12345678901234567890123456789e-40000]}}"#,
    r#"{"ok": "\ud83d\ude00", "n": -1.5e300}"#,
];

fn damaged(rng: &mut SmallRng, line: &mut Vec<u8>, format: Format) {
    if format == Format::Json && rng.random_bool(0.4) {
        // The synthesizer's attributes are one flat object: swap it for a nasty one.
        let text = String::from_utf8_lossy(line).into_owned();
        if let Some(start) = text.find(r#""attributes":{"#) {
            let open = start + r#""attributes":"#.len();
            if let Some(close) = text[open..].find('}') {
                let attributes = NASTY_ATTRIBUTES[rng.random_range(0..NASTY_ATTRIBUTES.len())];
                *line = format!("{}{attributes}{}", &text[..open], &text[open + close + 1..])
                    .into_bytes();
            }
        }
        if rng.random_bool(0.5) {
            return;
        }
    }
    for _ in 0..rng.random_range(0..4) {
        let at = rng.random_range(0..=line.len());
        match rng.random_range(0..10) {
            0 => {
                let at = at.min(line.len().saturating_sub(1));
                if let Some(b) = line.get_mut(at) {
                    *b = rng.random();
                }
            }
            1 => line.truncate(at),
            2 => line.insert(at, rng.random()),
            _ => {
                let nasty = NASTY[rng.random_range(0..NASTY.len())].as_bytes();
                // Inside a JSON string most of the time: after a quote that opens one.
                let at = match format {
                    Format::Json => line
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b':')
                        .map(|(i, _)| i + 2)
                        .nth(rng.random_range(0..4))
                        .unwrap_or(at)
                        .min(line.len()),
                    _ => at,
                };
                line.splice(at..at, nasty.iter().copied());
            }
        }
    }
}

fn record(rng: &mut SmallRng, synth: &mut Synthesizer, format: Format, offset: i64) -> Record {
    let now = chrono::Utc::now().timestamp_millis();
    let at = now - rng.random_range(0..60_000);
    let (event, access) = match format {
        Format::Apache => {
            let (event, access) = synth.next_access(at);
            (event, Some(access))
        }
        _ => (synth.next_event(at), None),
    };
    let mut line = Vec::new();
    let format =
        format::encode_into(format, &event, access.as_ref(), &mut line).unwrap_or(Format::Json);
    if rng.random_bool(0.8) {
        damaged(rng, &mut line, format);
    }
    let key = match rng.random_range(0..10) {
        0 => None,
        1 => Some(b"\0\0\0\x07".to_vec()),
        2 => Some((0..rng.random_range(1..20)).map(|_| rng.random()).collect()),
        _ => Some(event.service.into_bytes()),
    };
    let content_type = match rng.random_range(0..10) {
        0 | 1 => None,
        2 => Some("text/\0garbage".into()),
        _ => Some(format.content_type().into()),
    };
    Record {
        partition: 0,
        offset,
        key,
        payload: (!rng.random_bool(0.01)).then_some(line),
        instance_id: Some("storage-fuzz".into()),
        seq: Some(offset + 1),
        traceparent: None,
        content_type,
        timestamp_ms: None,
    }
}

fn formats() -> Vec<Format> {
    match std::env::var("LOGSTREAM_FUZZ_FORMATS") {
        Ok(list) => list
            .split(',')
            .map(|f| {
                f.parse()
                    .expect("LOGSTREAM_FUZZ_FORMATS: json, apache, syslog5424, syslog3164")
            })
            .collect(),
        Err(_) => Format::ALL.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_fuzz() {
    if std::env::var("LOGSTREAM_IT").as_deref() != Ok("1") {
        eprintln!("skipped: set LOGSTREAM_IT=1 with PostgreSQL running (scripts/stack.sh up)");
        return;
    }
    let seconds: u64 = std::env::var("LOGSTREAM_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("LOGSTREAM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let (pool, schema) = logstream_integration_tests::migrated_schema("storage_fuzz").await;
    let specs = vec![
        WindowSpec::tumbling(10_000).expect("10 s"),
        WindowSpec::sliding(300_000, 60_000).expect("300 s / 60 s"),
    ];
    let bounds = TimeBounds {
        max_past_ms: 168 * 3_600_000,
        max_future_ms: 3_600_000,
    };
    let routing = Arc::new(Routing::default());
    let mut failures = Vec::new();
    println!("storage fuzz: seed {seed}, {seconds} s per format, schema {schema}");
    for (n, format) in formats().into_iter().enumerate() {
        let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(n as u64));
        let mut synth = Synthesizer::new(seed, "fuzz-host");
        let store = Store::new(pool.clone(), "fuzz".into(), format.name().into());
        let mut watermark = Watermark::new(5_000);
        let (mut records, mut stored, mut dead, mut sanitized, mut batches) = (0u64, 0, 0, 0, 0);
        let mut offset = 0i64;
        let mut expected = None;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            let mut batch = Batch::new(specs.clone(), bounds, routing.clone(), None);
            for _ in 0..rng.random_range(1..=200) {
                let now = chrono::Utc::now().timestamp_millis();
                batch.add(
                    record(&mut rng, &mut synth, format, offset),
                    now,
                    &mut watermark,
                    None,
                );
                offset += 1;
            }
            let mut fence = std::collections::BTreeMap::new();
            fence.insert(0, expected);
            let mut outage: Option<Instant> = None;
            let written = loop {
                match store
                    .write(&batch, &fence, &watermark, &Turn::first())
                    .await
                {
                    // After a failure the commit may have gone through: the fence says so.
                    Err(StoreError::Conflict(_)) if outage.is_some() => {
                        break Ok(Default::default())
                    }
                    Err(e) if e.data_error().is_none() && !matches!(e, StoreError::Conflict(_)) => {
                        // PostgreSQL unreachable (restarted by another test?): wait, as the
                        // collector would, for at most five minutes.
                        let since = *outage.get_or_insert_with(Instant::now);
                        assert!(
                            since.elapsed() < Duration::from_secs(300),
                            "storage failed: {e}"
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    other => break other,
                }
            };
            match written {
                Ok(_) => {}
                Err(e @ StoreError::Database(_)) if e.data_error().is_some() => {
                    failures.push(format!(
                        "{}: batch refused for its data: {e}",
                        format.name()
                    ));
                    let kept: Vec<String> = batch
                        .kept
                        .iter()
                        .map(|(r, _)| {
                            String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default())
                                .into_owned()
                        })
                        .collect();
                    eprintln!("refused batch's records: {kept:#?}");
                    break;
                }
                Err(e) => panic!("{}: storage failed: {e}", format.name()),
            }
            expected = Some(offset);
            batches += 1;
            records += batch.records;
            stored += batch.stored;
            dead += batch.dead_letters.len() as u64;
            sanitized += batch.sanitized.values().sum::<u64>();
            assert_eq!(
                batch.stored + batch.dead_letters.len() as u64,
                batch.records,
                "every record stored or dead-lettered"
            );
        }
        let (rows,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM log_events WHERE kafka_partition = 0")
                .fetch_one(&pool)
                .await
                .expect("count");
        sqlx::query("DELETE FROM log_events")
            .execute(&pool)
            .await
            .expect("clean up");
        println!(
            "{:>10}: {records} records in {batches} batches: {stored} stored ({rows} rows), \
             {dead} dead-lettered, {sanitized} sanitised, 0 stalls",
            format.name()
        );
        assert_eq!(rows as u64, stored, "{}: rows in PostgreSQL", format.name());
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .expect("drop the fuzz schema");
    assert!(failures.is_empty(), "{failures:#?}");
}
