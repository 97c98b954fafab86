//! The Kafka circuit breaker against librdkafka's mock cluster: the real generator binary
//! produces to a mock broker that is taken down and brought back. The breaker opens within 2 s
//! and generation pauses; it closes when the broker returns and generation resumes; at the end
//! every acknowledged event is in the topic, exactly once, and nothing failed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use logstream_integration_tests::{enabled, generator_call, generator_status, unique, Service};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// Polls the status until `state` (within `limit`); answers how long it took.
async fn wait_for_state(
    http: &reqwest::Client,
    base: &str,
    state: &str,
    limit: Duration,
) -> Duration {
    let began = Instant::now();
    loop {
        let s = generator_status(http, base).await;
        if s["circuit_breaker_state"] == state {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < limit,
            "breaker not {state} after {limit:?}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn generated(s: &Value) -> u64 {
    s["generated_total"].as_u64().expect("generated_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_on_a_dead_broker_pauses_and_recovers_without_loss() {
    if !enabled() {
        return;
    }
    let mock = MockCluster::new(1).expect("mock cluster");
    let topic = unique("breaker");
    for t in [topic.as_str(), "logs.dlq", "logs.alerts"] {
        mock.create_topic(t, PARTITIONS, 1).expect("topic");
    }
    let brokers = mock.bootstrap_servers();
    let generator = Service::start_path(
        "breaker-generator",
        Path::new(env!("CARGO_BIN_EXE_logstream-generator")),
        "LOGSTREAM_GENERATOR_LISTEN",
        &[
            ("LOGSTREAM_KAFKA_BROKERS", brokers.as_str()),
            ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
            ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7"),
            ("LOGSTREAM_BREAKER_BACKOFF_MAX_MS", "2000"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let base = generator.base.as_str();
    generator_call(
        &http,
        base,
        "start",
        &serde_json::json!({"rate_per_second": 1000}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = generator_status(&http, base).await;
    assert_eq!(before["circuit_breaker_state"], "closed");
    assert!(
        before["sent_total"].as_u64().unwrap_or(0) > 1000,
        "{before}"
    );

    mock.broker_down(1).expect("broker down");
    let opened_after = wait_for_state(&http, base, "open", Duration::from_secs(2)).await;
    println!("broker down → breaker open after {opened_after:?}");
    let paused_from = generated(&generator_status(&http, base).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let paused_to = generated(&generator_status(&http, base).await);
    println!("generated while down for 4 s: {}", paused_to - paused_from);
    assert!(
        paused_to - paused_from < 400,
        "generation pauses while the breaker is open (1000/s would make 4000): {}",
        paused_to - paused_from
    );

    mock.broker_up(1).expect("broker up");
    let closed_after = wait_for_state(&http, base, "closed", Duration::from_secs(15)).await;
    println!("broker up → breaker closed after {closed_after:?}");
    let resumed_from = generated(&generator_status(&http, base).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resumed_to = generated(&generator_status(&http, base).await);
    assert!(
        resumed_to - resumed_from > 1500,
        "generation resumes: {}",
        resumed_to - resumed_from
    );

    let stopped = generator_call(&http, base, "stop", &serde_json::json!({})).await;
    let (sent, failed, total) = (
        stopped["sent_total"].as_u64().expect("sent"),
        stopped["failed_total"].as_u64().expect("failed"),
        generated(&stopped),
    );
    println!("generated {total}, acknowledged {sent}, failed {failed}");
    assert_eq!(
        failed, 0,
        "nothing failed: records queued while down were delivered"
    );
    assert_eq!(sent, total, "sent == acknowledged == generated");

    // Every acknowledged event is in the topic once.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("breaker-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seqs = BTreeSet::new();
    let mut records = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seqs.len() as u64) < sent && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        records += 1;
        let seq = message
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == "seq").and_then(|x| x.value))
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("seq header");
        seqs.insert(seq);
    }
    println!(
        "read {records} records, {} distinct seq ({} retried appends the mock broker kept twice)",
        seqs.len(),
        records - seqs.len() as u64
    );
    assert_eq!(
        seqs.len() as u64,
        sent,
        "every acknowledged event is in the topic"
    );
    assert_eq!(seqs.first().copied(), Some(1));
    assert_eq!(seqs.last().copied(), Some(sent), "seq 1..=sent, no gap");
}
