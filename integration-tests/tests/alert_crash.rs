//! Alerts exactly once across collector crashes (LOGSTREAM_IT=1, native stack up): the same
//! schedule of events (steady services, an error burst, a FATAL event, SQL injection, a scanner,
//! XSS and an sshd brute force, then quiet so the episodes resolve) is stored twice, on two
//! topics, by a fresh collector each: once undisturbed, once with the collector SIGKILLed twice
//! in the middle (and restarted). The second run's alert episodes (`alerts`), queued transitions
//! (`alert_outbox`) and records on `logs.alerts` equal the first's, key for key (the runs use
//! their own services and addresses; they are compared with the run's name taken out).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logstream_integration_tests::{
    committed_reader, create_topic, enabled, generator_headers, header, metric_sum, send_all,
    unique, Service,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 3;
/// Seconds of event time the schedule spans.
const SPAN_S: i64 = 700;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One run's names: its services and attacking addresses.
struct Run {
    tag: String,
    /// Second octet of the run's 172.16.0.0/12 addresses.
    net: u8,
    third: u8,
    instance: String,
}

impl Run {
    fn service(&self, i: usize) -> String {
        format!("{}-svc{i}", self.tag)
    }

    fn ip(&self, host: u8) -> String {
        format!("{}{host}", self.net_prefix())
    }

    /// The run's addresses without the host part (`172.16.9.`).
    fn net_prefix(&self) -> String {
        format!("172.{}.{}.", self.net, self.third)
    }

    /// A key of this run written as the first run's.
    fn normalized(&self, key: &str, first: &Run) -> String {
        key.replace(&self.tag, &first.tag)
            .replace(&self.net_prefix(), &first.net_prefix())
    }
}

/// The schedule: (partition, key, content type, line), in event-time order per partition.
fn schedule(run: &Run, t0: i64) -> Vec<(i32, String, &'static str, String)> {
    let json = |at: i64, service: &str, level: &str, message: &str| {
        serde_json::json!({"timestamp": at, "level": level, "service": service, "message": message})
            .to_string()
    };
    let apache = |at: i64, ip: &str, request: &str, status: u16| {
        let time = chrono::DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .format("%d/%b/%Y:%H:%M:%S +0000");
        format!(r#"{ip} - - [{time}] "{request} HTTP/1.1" {status} 512 "-" "curl/8.5.0""#)
    };
    let mut out = Vec::new();
    let web = run.service(2);
    for s in 0..SPAN_S {
        let at = t0 + s * 1000;
        for i in 0..2 {
            for n in 0..20 {
                let at = at + n * 50;
                let burst = i == 0 && (300..312).contains(&s) && n < 6;
                let level = if burst || n == 7 && s % 5 == 0 {
                    "ERROR"
                } else {
                    "INFO"
                };
                let service = run.service(i);
                out.push((
                    i as i32,
                    service.clone(),
                    "application/json",
                    json(at, &service, level, "order step done"),
                ));
            }
        }
        if s == 200 {
            out.push((
                1,
                run.service(1),
                "application/json",
                json(
                    at + 500,
                    &run.service(1),
                    "FATAL",
                    "database connection pool exhausted",
                ),
            ));
        }
        let (ip, request, status) = match s {
            120..140 => (
                run.ip(1),
                "GET /api/v1/items?id=1%27%20OR%20%271%27%3D%271".to_owned(),
                403,
            ),
            150..170 => (run.ip(2), format!("GET /wp-admin/{s}.php"), 404),
            450..455 => (
                run.ip(4),
                "GET /search?q=%3Cscript%3Ealert(1)%3C/script%3E".to_owned(),
                403,
            ),
            _ => (
                format!("10.77.{}.{}", s % 200, s % 7 + 1),
                format!("GET /api/v1/items/{s}"),
                200,
            ),
        };
        out.push((
            2,
            web.clone(),
            "text/apache-combined",
            apache(at + 100, &ip, &request, status),
        ));
        if (400..410).contains(&s) {
            let time = chrono::DateTime::from_timestamp_millis(at + 200)
                .unwrap_or_default()
                .format("%b %e %H:%M:%S");
            let line = format!(
                "<38>{time} {web} sshd[4121]: Failed password for invalid user admin from {} port 5{s} ssh2",
                run.ip(3)
            );
            out.push((2, web.clone(), "text/syslog-3164", line));
        }
    }
    out
}

async fn publish_all(topic: &str, run: &Run, t0: i64) -> usize {
    let producer: FutureProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            env("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"),
        )
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let lines = schedule(run, t0);
    let records = lines
        .iter()
        .enumerate()
        .map(|(seq, (partition, key, content_type, line))| {
            FutureRecord::to(topic)
                .partition(*partition)
                .key(key.as_str())
                .payload(line.as_str())
                .headers(generator_headers(
                    &run.instance,
                    seq + 1,
                    Some(content_type),
                ))
        });
    send_all(&producer, records).await;
    lines.len()
}

async fn stored(pool: &sqlx::PgPool, instance: &str) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT seq) FROM log_events WHERE instance_id = $1")
        .bind(instance)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn collector(topic: &str, attempt: u32) -> Service {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../monitoring/rules/detection.toml"
    );
    Service::start(
        &format!("alert-crash-collector-{attempt}"),
        "logstream-collector",
        "LOGSTREAM_COLLECTOR_LISTEN",
        &[
            ("LOGSTREAM_TOPIC_RAW", topic),
            ("LOGSTREAM_CONSUMER_GROUP", topic),
            // Small batches: many commits (and detector snapshots) to be killed between.
            ("LOGSTREAM_BATCH_MAX_EVENTS", "50"),
            ("LOGSTREAM_DETECTOR_SNAPSHOT_SECONDS", "1"),
            ("LOGSTREAM_RULES", rules),
            ("LOGSTREAM_LOG", "warn"),
        ],
    )
    .await
}

/// Stores the run's schedule with a fresh collector, SIGKILLed (and restarted) once stored
/// passes each of `kill_at` (shares of the records).
async fn store_run(pool: &sqlx::PgPool, run: &Run, t0: i64, kill_at: &[f64]) {
    let topic = unique(&format!("alert-crash-{}", run.tag));
    create_topic(
        &env("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"),
        &topic,
        PARTITIONS,
    )
    .await;
    let total = publish_all(&topic, run, t0).await as i64;
    let mut attempt = 0;
    let mut service = collector(&topic, attempt).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    // What the killed collectors counted (a little under what they stored), plus what the
    // running one counts: cheap to poll, unlike counting the rows.
    let mut before = 0.0;
    for share in kill_at {
        let target = share * total as f64;
        loop {
            let counted = metric_sum(&service.base, "log_events_stored_total").await;
            if before + counted >= target {
                before += counted;
                break;
            }
            assert!(Instant::now() < deadline, "run {} stalled", run.tag);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(service); // SIGKILL
        let at = stored(pool, &run.instance).await;
        println!(
            "run {}: collector killed with {at} of {total} stored",
            run.tag
        );
        assert!(at < total, "the run ended before the kill");
        attempt += 1;
        service = collector(&topic, attempt).await;
    }
    while stored(pool, &run.instance).await < total {
        assert!(
            Instant::now() < deadline,
            "run {}: not all {total} stored",
            run.tag
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    service.terminate().await;
}

type Episode = (String, String, i64, i64, i64, String);

/// The keys of one run: its services ($1: the tag) and addresses ($2: the prefix).
const RUN_KEYS: &str = "key LIKE $1 || '%' OR key LIKE 'ip:' || $2 || '%'";

async fn episodes(pool: &sqlx::PgPool, run: &Run, first: &Run) -> Vec<Episode> {
    let rows: Vec<Episode> = sqlx::query_as(&format!(
        "SELECT kind, key, (extract(epoch FROM first_seen) * 1000)::bigint,
                    (extract(epoch FROM last_seen) * 1000)::bigint, count, status
             FROM alerts WHERE {RUN_KEYS}"
    ))
    .bind(&run.tag)
    .bind(run.net_prefix())
    .fetch_all(pool)
    .await
    .expect("alerts");
    let mut out: Vec<Episode> = rows
        .into_iter()
        .map(|(k, key, f, l, c, s)| (k, run.normalized(&key, first), f, l, c, s))
        .collect();
    out.sort();
    out
}

/// Outbox rows (kind, key, transition): all published, each once.
async fn outbox(pool: &sqlx::PgPool, run: &Run, first: &Run) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(&format!(
            "SELECT kind, key, transition, published_at IS NOT NULL
                 FROM alert_outbox WHERE {RUN_KEYS}"
        ))
        .bind(&run.tag)
        .bind(run.net_prefix())
        .fetch_all(pool)
        .await
        .expect("outbox");
        if rows.iter().all(|r| r.3) || Instant::now() > deadline {
            let mut out: Vec<_> = rows
                .into_iter()
                .map(|(k, key, t, _)| (k, run.normalized(&key, first), t))
                .collect();
            out.sort();
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Records on `logs.alerts` per (kind, normalized key, transition), for both runs' keys.
fn on_topic(runs: &[&Run], first: &Run) -> Vec<BTreeMap<(String, String, String), u32>> {
    let consumer = committed_reader("alert-crash-reader");
    consumer.subscribe(&["logs.alerts"]).expect("subscribe");
    let mut counts = vec![BTreeMap::new(); runs.len()];
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        last = Instant::now();
        let alert: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        let key = alert["key"].as_str().unwrap_or_default();
        for (i, run) in runs.iter().enumerate() {
            if key.starts_with(&run.tag) || key.starts_with(&format!("ip:{}", run.net_prefix())) {
                assert!(header(&m, "alert-outbox-id").is_some());
                let id = (
                    alert["kind"].as_str().unwrap_or_default().to_owned(),
                    run.normalized(key, first),
                    alert["transition"].as_str().unwrap_or_default().to_owned(),
                );
                *counts[i].entry(id).or_default() += 1;
            }
        }
    }
    counts
}

#[tokio::test]
async fn a_collector_killed_during_an_attack_raises_the_same_alerts() {
    if !enabled() {
        return;
    }
    let pool = sqlx::PgPool::connect(&env(
        "DATABASE_URL",
        "postgres://logstream:logstream@127.0.0.1:5432/logstream",
    ))
    .await
    .expect("postgres");
    let id = unique("ac").replace('-', "");
    let third = rand_octet(&id);
    let calm = Run {
        tag: format!("{id}a"),
        net: 16,
        third,
        instance: format!("{id}-calm"),
    };
    let killed = Run {
        tag: format!("{id}b"),
        net: 17,
        third,
        instance: format!("{id}-killed"),
    };
    let t0 = chrono::Utc::now().timestamp_millis() - (SPAN_S + 600) * 1000;
    store_run(&pool, &calm, t0, &[]).await;
    store_run(&pool, &killed, t0, &[0.3, 0.6]).await;

    let (want, got) = (
        episodes(&pool, &calm, &calm).await,
        episodes(&pool, &killed, &calm).await,
    );
    println!("episodes of the undisturbed run: {want:#?}");
    let kinds: Vec<&str> = want.iter().map(|e| e.0.as_str()).collect();
    for kind in [
        "brute_force",
        "critical",
        "error_rate",
        "scanner",
        "sql_injection",
        "xss",
    ] {
        assert!(
            kinds.contains(&kind),
            "{kind} missing from the undisturbed run: {kinds:?}"
        );
    }
    assert_eq!(got, want, "the killed run's episodes differ");
    let (want, got) = (
        outbox(&pool, &calm, &calm).await,
        outbox(&pool, &killed, &calm).await,
    );
    assert_eq!(got, want, "the killed run's queued transitions differ");
    let topic = on_topic(&[&calm, &killed], &calm);
    let expected: BTreeMap<(String, String, String), u32> =
        want.into_iter().map(|k| (k, 1)).collect();
    assert_eq!(
        topic[0], expected,
        "undisturbed run on logs.alerts: each transition once"
    );
    assert_eq!(
        topic[1], expected,
        "killed run on logs.alerts: each transition once"
    );
}

/// A third octet for the runs' addresses, from the run id.
fn rand_octet(id: &str) -> u8 {
    (id.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 250
        + 1) as u8
}
