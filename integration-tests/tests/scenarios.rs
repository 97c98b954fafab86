//! Scenario labels end to end: a generator runs a scheduled spike and attack into its own
//! topic; every record is read back, and the `label` header must appear exactly on the
//! anomalous records, inside their episode's period, never in the event body, with the
//! `content-type` header naming the record's real format.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logstream_core::format::decode;
use logstream_core::scenario;
use logstream_integration_tests::{enabled, generator_call, header, unique, Service};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::json;

const BROKERS: &str = "127.0.0.1:9092";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_follow_the_schedule_and_only_mark_anomalies() {
    if !enabled() {
        return;
    }
    let topic = unique("it-scenarios");
    let instance = unique("gen-scenarios");
    let mut generator = Service::start(
        "scenarios-generator",
        "logstream-generator",
        "LOGSTREAM_GENERATOR_LISTEN",
        &[
            ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
            ("LOGSTREAM_TOPIC_PARTITIONS", "2"),
            ("LOGSTREAM_INSTANCE_ID", instance.as_str()),
            ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7"),
        ],
    )
    .await;
    let rate = 500.0;
    let http = reqwest::Client::new();
    let start = json!({
            "rate_per_second": rate as u64,
            "duration_seconds": 6,
            "formats": {"json": 2, "apache": 1, "syslog5424": 1, "syslog3164": 1},
            "scenarios": [
                {"name": "spike", "start_seconds": 1, "duration_seconds": 1, "factor": 4},
                {"name": "attack", "start_seconds": 3, "duration_seconds": 2, "share": 0.25}
            ]
    });
    generator_call(&http, &generator.base, "start", &start).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let stopped = generator_call(&http, &generator.base, "stop", &json!({})).await;
    let sent = stopped["sent_total"].as_u64().expect("sent_total");
    assert_eq!(stopped["failed_total"], 0);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("broker.address.family", "v4")
        .set("group.id", unique("scenarios-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    // (milliseconds since the first record, label, content-type, payload)
    let mut records: Vec<(i64, Option<String>, String, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (records.len() as u64) < sent && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        records.push((
            message.timestamp().to_millis().expect("timestamp"),
            header(&message, "label"),
            header(&message, "content-type").expect("content-type"),
            message.payload().unwrap_or_default().to_vec(),
        ));
    }
    generator.terminate().await;
    assert_eq!(
        records.len() as u64,
        sent,
        "every acknowledged record was read back"
    );

    let t0 = records.iter().map(|r| r.0).min().expect("records");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let slack = 150; // ms: the producer's timestamp vs the generator's clock
    for (ts, label, content_type, payload) in &records {
        let t = ts - t0;
        let format = decode::format_of(Some(content_type), payload).expect("known content-type");
        assert_eq!(
            format,
            decode::detect(payload),
            "content-type names the real format"
        );
        let Some(label) = label else { continue };
        assert!(
            !String::from_utf8_lossy(payload).contains(label.as_str()),
            "labels never appear in the event body"
        );
        let (kind, _episode) = label.split_once(':').expect("anomaly:episode");
        let (from, to) = if kind == "spike" {
            (1000, 2000)
        } else {
            (3000, 5000)
        };
        assert!(
            (from - slack..to + slack).contains(&t),
            "{label} at {t} ms lies outside its episode {from}..{to} ms"
        );
        *counts.entry(kind.to_owned()).or_default() += 1;
    }
    println!("{} records, labels: {counts:?}", records.len());
    let spike = counts.get("spike").copied().unwrap_or(0) as f64;
    assert!(
        (0.85 * 4.0 * rate..=1.15 * 4.0 * rate).contains(&spike),
        "a 1 s spike ×4 at {rate}/s labels about {} events, got {spike}",
        4.0 * rate
    );
    let attacks: u64 = scenario::ATTACK_KINDS
        .iter()
        .map(|k| counts.get(*k).copied().unwrap_or(0))
        .sum();
    let expected = 0.25 * 2.0 * rate;
    assert!(
        (0.6 * expected..=1.4 * expected).contains(&(attacks as f64)),
        "a quarter of 2 s at {rate}/s should be attacks: about {expected}, got {attacks}"
    );
}
