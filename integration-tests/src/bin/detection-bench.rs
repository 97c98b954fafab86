//! Detection quality and latency against the generator's labels, on the running stack.
//!
//! Starts a scheduled run on the stack's generator (a steady baseline; spikes, error bursts
//! and attacks — SQL injection, XSS, path traversal, brute force, scanner — at set times),
//! publishes a FATAL event every 10 s beside it (labelled `critical:<n>`, each of its own
//! service), then reads back every record the run put on `logs.raw` (the `label` headers are
//! the truth) and every alert fired on `logs.alerts`, and prints per kind: expected alerts,
//! detected, alerts, repeats, false alerts, precision, recall and latency p50/p99 from the
//! event that fired the alert (its event time, set when it was made) to its record on
//! `logs.alerts`, and from the collector reading that event (`read_at`) to the record. Below the table: the alert
//! count of two naive rules over the same events, one alert per error event and a fixed
//! threshold per service and window (no baseline, no hysteresis), next to logstream's.
//! Scoring rules: `logstream_integration_tests::detection_score`.
//!
//! Needs the stack up and otherwise idle (`scripts/stack.sh up`; its collector detects with
//! `monitoring/rules/detection.toml`):
//!
//!   cargo run --release -p logstream-integration-tests --bin detection-bench -- [--rate 5000]
//!     [--keep-detectors]
//!
//! The detectors start fresh: the bench stops the stack's collector (`scripts/stack.sh stop
//! collector`), deletes its detector snapshots and starts it again, so baselines learned from
//! earlier traffic do not count. `--keep-detectors` skips that (a stack not run by
//! `scripts/stack.sh`).
//!
//! Environment: LOGSTREAM_KAFKA_BROKERS (127.0.0.1:9092), LOGSTREAM_GENERATOR_URL
//! (http://127.0.0.1:8080), LOGSTREAM_TOPIC_RAW (logs.raw), LOGSTREAM_TOPIC_ALERTS (logs.alerts),
//! LOGSTREAM_DATABASE_URL (postgres://logstream:logstream@127.0.0.1:5432/logstream),
//! LOGSTREAM_COLLECTOR_URL (http://127.0.0.1:8081: the fast lane's step times are printed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::event::{Level, LogEvent};
use logstream_core::format::{self, Format};
use logstream_integration_tests::detection_score::{
    expected, fixed_threshold_alerts, score, Fired, Labelled,
};
use logstream_integration_tests::{committed_reader_of, generator_call, generator_status, header};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Length of the scheduled run.
const RUN_SECONDS: u64 = 300;
/// Generator level mix: the default without FATAL (critical events are the bench's own).
const LEVELS: &str = "TRACE:1,DEBUG:9,INFO:70,WARN:15,ERROR:5";
/// The naive fixed threshold: errors per service and window (the error_rate floor).
const FIXED_ERRORS: u64 = 20;
const FIXED_WINDOW_MS: i64 = 10_000;

fn usage() -> ! {
    eprintln!("usage: detection-bench [--rate EVENTS_PER_SECOND] [--keep-detectors]");
    std::process::exit(2);
}

/// Restarts the stack's collector without its detector snapshots, so every detector learns
/// its baseline from this run.
async fn fresh_detectors() {
    let stack = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/stack.sh");
    let run = |what: &str| {
        let ok = std::process::Command::new(stack)
            .args([what, "collector"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`scripts/stack.sh {what} collector` failed");
    };
    run("stop");
    let url = env_or(
        "LOGSTREAM_DATABASE_URL",
        "postgres://logstream:logstream@127.0.0.1:5432/logstream",
    );
    let pool = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let cleared = sqlx::query("DELETE FROM detector_snapshots")
        .execute(&pool)
        .await
        .expect("clearing detector_snapshots");
    println!(
        "detectors fresh: {} snapshots deleted, collector restarted",
        cleared.rows_affected()
    );
    run("start");
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The scheduled anomalies: each kind at least twice, far enough apart (brute force and
/// scanner episodes go quiet after 120 s) that each is its own episode.
fn schedule() -> serde_json::Value {
    let at = |name: &str, start: u64, duration: u64, extra: serde_json::Value| {
        let mut s =
            serde_json::json!({"name": name, "start_seconds": start, "duration_seconds": duration});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        s
    };
    let none = serde_json::json!({});
    serde_json::json!([
        at("spike", 40, 15, serde_json::json!({"factor": 8.0})),
        at(
            "error_burst",
            75,
            15,
            serde_json::json!({"service": "payments"})
        ),
        at("attack", 100, 20, none.clone()),
        at(
            "error_burst",
            140,
            15,
            serde_json::json!({"service": "orders"})
        ),
        at("spike", 170, 15, serde_json::json!({"factor": 8.0})),
        at("attack", 250, 20, none),
        at(
            "error_burst",
            280,
            15,
            serde_json::json!({"service": "users"})
        ),
    ])
}

fn consumer(brokers: &str) -> BaseConsumer {
    committed_reader_of(brokers, "detection-bench")
}

/// Every partition's high watermark.
fn ends(brokers: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c = consumer(brokers);
    let timeout = Duration::from_secs(10);
    let metadata = c.fetch_metadata(Some(topic), timeout).expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            let (_, high) = c.fetch_watermarks(topic, p, timeout).expect("watermarks");
            (p, high)
        })
        .collect()
}

/// Reads `topic` from `from` (per partition) until every partition reached `to`, or nothing
/// came for `idle` (transaction markers take offsets no message has).
fn read(
    brokers: &str,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    to: &BTreeMap<i32, i64>,
    idle: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) {
    let c = consumer(brokers);
    let mut list = TopicPartitionList::new();
    for (p, offset) in from {
        list.add_partition_offset(topic, *p, Offset::Offset(*offset))
            .expect("partition");
    }
    c.assign(&list).expect("assign");
    let mut reached: BTreeMap<i32, i64> = from.clone();
    let mut last = Instant::now();
    while to
        .iter()
        .any(|(p, end)| reached.get(p).copied().unwrap_or(0) < *end)
        && last.elapsed() < idle
    {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                last = Instant::now();
                reached.insert(message.partition(), message.offset() + 1);
                each(&message);
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None => {}
        }
    }
}

/// What the run put on `logs.raw`.
#[derive(Default)]
struct Raw {
    events: u64,
    labelled: Vec<Labelled>,
    /// (service, event time) of every ERROR or FATAL event.
    errors: Vec<(String, i64)>,
}

fn read_raw(brokers: &str, topic: &str, from: &BTreeMap<i32, i64>) -> Raw {
    let to = ends(brokers, topic);
    let mut raw = Raw::default();
    let now_ms = chrono::Utc::now().timestamp_millis();
    read(brokers, topic, from, &to, Duration::from_secs(30), |m| {
        let bytes = m.payload().unwrap_or_default();
        let content_type = header(m, "content-type");
        let Ok(decoded) =
            format::lenient::decode_record(content_type.as_deref(), bytes, m.key(), now_ms)
        else {
            return;
        };
        let event = decoded.event;
        raw.events += 1;
        if event.level >= Level::Error {
            raw.errors.push((event.service.clone(), event.timestamp_ms));
        }
        if let Some(label) = header(m, "label") {
            raw.labelled.push(Labelled {
                label,
                client_ip: logstream_core::detect::access::request(&event).map(|r| r.client_ip),
                service: event.service,
                at_ms: event.timestamp_ms,
            });
        }
    });
    raw
}

/// The alerts fired on `topic` after `from`, about events from `since_ms` on (an episode that
/// began before the run, e.g. a drop found once traffic came back, is not the run's).
fn read_fired(brokers: &str, topic: &str, from: &BTreeMap<i32, i64>, since_ms: i64) -> Vec<Fired> {
    let to = ends(brokers, topic);
    let mut fired = Vec::new();
    read(brokers, topic, from, &to, Duration::from_secs(5), |m| {
        let Ok(alert) =
            serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
        else {
            return;
        };
        let time = |field: &str| {
            alert[field]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
        };
        let first_seen = time("first_seen").unwrap_or(0);
        if alert["transition"] != "fired" || first_seen < since_ms {
            return;
        }
        fired.push(Fired {
            kind: alert["kind"].as_str().unwrap_or_default().to_owned(),
            key: alert["key"].as_str().unwrap_or_default().to_owned(),
            first_seen_ms: first_seen,
            published_ms: m.timestamp().to_millis().unwrap_or(0),
            read_ms: time("read_at"),
        });
    });
    fired
}

/// Publishes a labelled FATAL event every 10 s (each of its own service) until `stop`.
async fn critical_events(brokers: String, topic: String, stop: Arc<AtomicBool>) -> u32 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("broker.address.family", "v4")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let mut n = 0;
    tokio::time::sleep(Duration::from_secs(30)).await;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let service = format!("bench-critical-{n}");
        let event = LogEvent {
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            level: Level::Fatal,
            service: service.clone(),
            component: None,
            host: Some("detection-bench".into()),
            message: format!("bench critical event {n}: worker pool exhausted"),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: None,
        };
        let mut payload = Vec::new();
        logstream_core::json::encode_into(&event, &mut payload).expect("event encodes");
        let label = format!("critical:{n}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "label",
                value: Some(label.as_str()),
            })
            .insert(Header {
                key: "content-type",
                value: Some(Format::Json.content_type()),
            });
        let record = FutureRecord::to(&topic)
            .key(&service)
            .payload(&payload)
            .headers(headers);
        if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
            eprintln!("critical event {n}: {e}");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    n
}

/// Starts the scheduled run and waits for it to end.
async fn run(generator: &str, rate: u64) {
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "rate_per_second": rate,
        "duration_seconds": RUN_SECONDS,
        "scenarios": schedule(),
        "level_weights": LEVELS,
        "formats": {"json": 50, "apache": 35, "syslog5424": 15},
    });
    generator_call(&http, generator, "start", &body).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(RUN_SECONDS + 120) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if generator_status(&http, generator).await["running"] == false {
            return;
        }
    }
    generator_call(&http, generator, "stop", &serde_json::json!({})).await;
}

/// The collector's fast-lane step times (`alerts_fast_lane_seconds`): per step, how many
/// transitions fell in each bucket, so the slow ones show where their time went.
async fn print_fast_lane(collector: &str) {
    let text = match reqwest::get(format!("{collector}/metrics")).await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(e) => {
            println!("fast lane steps: collector metrics unreachable: {e}");
            return;
        }
    };
    let mut steps: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("alerts_fast_lane_seconds_bucket{") else {
            continue;
        };
        let field = |name: &str| {
            rest.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
                .map(str::to_owned)
        };
        let count = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if let (Some(step), Some(le)) = (field("step"), field("le")) {
            steps.entry(step).or_default().push((le, count));
        }
    }
    println!("fast lane steps (cumulative count of transitions at or under each bound, seconds):");
    for (step, buckets) in steps {
        let cells: Vec<String> = buckets.iter().map(|(le, n)| format!("{le}:{n}")).collect();
        println!("  {step:8} {}", cells.join(" "));
    }
}

fn print_table(scores: &BTreeMap<String, logstream_integration_tests::detection_score::KindScore>) {
    let ratio = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let ms = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    println!(
        "{:<15} {:>8} {:>8} {:>6} {:>7} {:>6} {:>9} {:>6} {:>7} {:>7} {:>9} {:>9}",
        "kind",
        "expected",
        "detected",
        "alerts",
        "repeats",
        "false",
        "precision",
        "recall",
        "p50 ms",
        "p99 ms",
        "read p50",
        "read p99"
    );
    for (kind, s) in scores {
        println!(
            "{kind:<15} {:>8} {:>8} {:>6} {:>7} {:>6} {:>9} {:>6} {:>7} {:>7} {:>9} {:>9}",
            s.expected,
            s.detected,
            s.alerts,
            s.repeats,
            s.false_alerts,
            ratio(s.precision()),
            ratio(s.recall()),
            ms(s.latency_ms(0.5)),
            ms(s.latency_ms(0.99)),
            ms(s.from_read_ms(0.5)),
            ms(s.from_read_ms(0.99)),
        );
    }
}

#[tokio::main]
async fn main() {
    let mut rate: u64 = 5_000;
    let mut fresh = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep-detectors" => fresh = false,
            "--rate" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => rate = n,
                None => usage(),
            },
            _ => usage(),
        }
    }
    if fresh {
        fresh_detectors().await;
    }
    let brokers = env_or("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092");
    let generator = env_or("LOGSTREAM_GENERATOR_URL", "http://127.0.0.1:8080");
    let raw_topic = env_or("LOGSTREAM_TOPIC_RAW", "logs.raw");
    let alerts_topic = env_or("LOGSTREAM_TOPIC_ALERTS", "logs.alerts");
    let raw_from = ends(&brokers, &raw_topic);
    let alerts_from = ends(&brokers, &alerts_topic);
    println!(
        "detection-bench: {RUN_SECONDS} s at {rate} events/s, schedule {}",
        schedule()
    );

    let since_ms = chrono::Utc::now().timestamp_millis();
    let stop = Arc::new(AtomicBool::new(false));
    let critical = tokio::spawn(critical_events(
        brokers.clone(),
        raw_topic.clone(),
        stop.clone(),
    ));
    run(&generator, rate).await;
    stop.store(true, Ordering::Relaxed);
    let criticals = critical.await.unwrap_or(0);
    // Alerts of the last events: stored, then published (the outbox is polled every 100 ms).
    tokio::time::sleep(Duration::from_secs(10)).await;

    let (b, t) = (brokers.clone(), raw_topic.clone());
    let raw = tokio::task::spawn_blocking(move || read_raw(&b, &t, &raw_from))
        .await
        .expect("raw reader");
    let (b, t) = (brokers.clone(), alerts_topic.clone());
    let fired = tokio::task::spawn_blocking(move || read_fired(&b, &t, &alerts_from, since_ms))
        .await
        .expect("alert reader");
    println!(
        "read {} events ({} labelled, {criticals} critical), {} alerts fired",
        raw.events,
        raw.labelled.len(),
        fired.len()
    );
    let scores = score(&expected(&raw.labelled), &fired);
    print_table(&scores);
    print_fast_lane(&env_or("LOGSTREAM_COLLECTOR_URL", "http://127.0.0.1:8081")).await;

    let ours = |kind: &str| scores.get(kind).map_or(0, |s| s.alerts) as u64;
    let error_alerts = ours("error_rate");
    let fixed = fixed_threshold_alerts(&raw.errors, FIXED_WINDOW_MS, FIXED_ERRORS);
    let below = |naive: u64| 100.0 * (1.0 - error_alerts as f64 / naive.max(1) as f64);
    println!(
        "error alerts: logstream error_rate {error_alerts}; one per error event {} ({:.1}% fewer); \
         fixed threshold of {FIXED_ERRORS} errors per service per {} s, no baseline or hysteresis {fixed} ({:.1}% fewer)",
        raw.errors.len(),
        below(raw.errors.len() as u64),
        FIXED_WINDOW_MS / 1000,
        below(fixed),
    );
}
