//! Against a running stack (scripts/stack.sh up; enabled by LOGSTREAM_IT=1): malformed records
//! published to logs.raw arrive in logs.dlq unchanged with a reason, are counted in
//! `log_events_dlq_total`, and the valid records around them are stored.

use std::time::{Duration, Instant};

use logstream_integration_tests::{header as record_header, metric_sum, publish, stored_seqs};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test]
async fn malformed_records_go_to_the_dead_letter_topic() {
    if std::env::var("LOGSTREAM_IT").as_deref() != Ok("1") {
        eprintln!("skipped: set LOGSTREAM_IT=1 with the stack running (scripts/stack.sh up)");
        return;
    }
    let brokers = env("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092");
    let collector = env("COLLECTOR_URL", "http://127.0.0.1:8081");
    let database = env(
        "DATABASE_URL",
        "postgres://logstream:logstream@127.0.0.1:5432/logstream",
    );
    let instance = format!("dlq-test-{:08x}", rand::random::<u32>());
    let dlq_before = metric_sum(&collector, "log_events_dlq_total").await;

    let now = chrono::Utc::now().timestamp_millis();
    let good = |n: u32| {
        format!(r#"{{"timestamp":{now},"level":"INFO","service":"dlqtest","message":"valid {n}"}}"#)
            .into_bytes()
    };
    let syslog = format!(
        "<134>1 {} web-1 dlqtest - - [logstream@32473 level=\"WARN\"] a syslog line",
        logstream_core::json::format_timestamp(now)
    );
    // (value, content-type header, expected dead-letter reason or None when stored)
    let records: Vec<(Vec<u8>, Option<&str>, Option<&str>)> = vec![
        (good(1), None, None),
        (
            b"this is not json".to_vec(),
            Some("application/json"),
            Some("invalid_json"),
        ),
        (
            vec![0xff, 0xfe, b'{', b'}'],
            Some("application/json"),
            Some("invalid_utf8"),
        ),
        // Named no format: in none, so kept as a plain message (bytes not UTF-8 replaced).
        (b"[error] plain words \xff".to_vec(), None, None),
        (
            format!(r#"{{"timestamp":{now},"service":"dlqtest"}}"#).into_bytes(),
            None,
            Some("missing_field"),
        ),
        (
            b"not an access line".to_vec(),
            Some("text/apache-combined"),
            Some("invalid_apache"),
        ),
        (syslog.into_bytes(), None, None),
        (
            b"<a/>".to_vec(),
            Some("text/xml"),
            Some("unsupported_content_type"),
        ),
        (good(2), None, None),
    ];
    let bad: Vec<usize> = (1..=records.len())
        .filter(|&seq| records[seq - 1].2.is_some())
        .collect();
    let good_seqs: Vec<(i64,)> = (1..=records.len())
        .filter(|&seq| records[seq - 1].2.is_none())
        .map(|seq| (seq as i64,))
        .collect();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("broker.address.family", "v4")
        .create()
        .expect("producer");
    for (i, (payload, content_type, _)) in records.iter().enumerate() {
        publish(
            &producer,
            "logs.raw",
            "dlqtest",
            payload,
            (&instance, i + 1),
            *content_type,
        )
        .await;
    }

    // The valid records around the bad ones are stored.
    let pool = sqlx::PgPool::connect(&database).await.expect("postgres");
    let stored = stored_seqs(&pool, &instance, good_seqs.len(), Duration::from_secs(90)).await;
    assert_eq!(stored, good_seqs, "valid records stored exactly once");
    let level: (String,) = sqlx::query_as(
        "SELECT level FROM log_events WHERE instance_id = $1 AND message = 'a syslog line'",
    )
    .bind(&instance)
    .fetch_one(&pool)
    .await
    .expect("the syslog record is stored");
    assert_eq!(level.0, "WARN", "its level comes from the structured data");
    let plain: (String, String, String) = sqlx::query_as(
        "SELECT level, service, attributes::text FROM log_events \
         WHERE instance_id = $1 AND message LIKE '[error] plain words%'",
    )
    .bind(&instance)
    .fetch_one(&pool)
    .await
    .expect("the line in no format is stored");
    assert_eq!(
        (plain.0.as_str(), plain.1.as_str()),
        ("ERROR", "dlqtest"),
        "level from its marker, service from the key"
    );
    assert!(
        plain.2.contains(r#""_format": "plain""#) && plain.2.contains(r#""_invalid_utf8": true"#),
        "{}",
        plain.2
    );

    // The bad ones are in logs.dlq, unchanged, with a reason and their source.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("broker.address.family", "v4")
        .set("group.id", format!("{instance}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&["logs.dlq"]).expect("subscribe");
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while found.len() < bad.len() && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let header = |name: &str| record_header(&message, name);
        if header("instance-id").as_deref() != Some(instance.as_str()) {
            continue;
        }
        let seq: usize = header("seq")
            .and_then(|s| s.parse().ok())
            .expect("seq header");
        let (payload, _, reason) = &records[seq - 1];
        let got_reason = header("dlq-reason").expect("dlq-reason header");
        assert!(
            got_reason.starts_with(reason.expect("only bad records")),
            "seq {seq}: reason {got_reason}"
        );
        assert_eq!(header("dlq-source-topic").as_deref(), Some("logs.raw"));
        assert!(header("dlq-source-partition").is_some() && header("dlq-source-offset").is_some());
        assert_eq!(
            message.payload(),
            Some(payload.as_slice()),
            "value unchanged"
        );
        found.push(seq);
    }
    found.sort();
    assert_eq!(found, bad, "every malformed record is dead-lettered");
    let dlq_after = metric_sum(&collector, "log_events_dlq_total").await;
    assert!(
        dlq_after - dlq_before >= bad.len() as f64,
        "log_events_dlq_total grew by {}",
        dlq_after - dlq_before
    );
}
