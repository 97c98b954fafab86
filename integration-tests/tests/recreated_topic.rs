//! A topic deleted and recreated under a collector whose PostgreSQL holds its old offsets
//! (LOGSTREAM_IT=1, native stack up): the new records sit below the stored offset, where no lag
//! shows them. The collector must say so: `kafka_offsets_ahead_of_topic{partition}` at the
//! stored offset minus the new end, and an error in its log.

use std::time::{Duration, Instant};

use logstream_integration_tests::{
    admin, create_topic, database_url, enabled, has_metric_line, publish, stored_seqs, unique,
    Service,
};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureProducer;

fn brokers() -> String {
    std::env::var("LOGSTREAM_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn producer_of() -> FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

async fn collector(topic: &str) -> Service {
    Service::start(
        "recreated-topic-collector",
        "logstream-collector",
        "LOGSTREAM_COLLECTOR_LISTEN",
        &[
            ("LOGSTREAM_TOPIC_RAW", topic),
            ("LOGSTREAM_CONSUMER_GROUP", topic),
            ("LOGSTREAM_TOPIC_PARTITIONS", "1"),
            ("LOGSTREAM_LOG", "warn"),
        ],
    )
    .await
}

async fn publish_run(producer: &FutureProducer, topic: &str, instance: &str, n: usize) {
    for seq in 1..=n {
        let line = serde_json::json!({"timestamp": chrono::Utc::now().timestamp_millis(), "level": "INFO", "service": "recreated", "message": format!("event {seq}")})
            .to_string();
        publish(
            producer,
            topic,
            "recreated",
            line.as_bytes(),
            (instance, seq),
            None,
        )
        .await;
    }
}

/// Deletes `topic` and creates it again once the broker has forgotten it.
async fn recreate(topic: &str) {
    let admin = admin(&brokers());
    let deleted = admin
        .delete_topics(&[topic], &AdminOptions::new())
        .await
        .expect("delete topic");
    assert!(
        deleted.iter().all(Result::is_ok),
        "deleting {topic}: {deleted:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let gone = metadata
            .topics()
            .first()
            .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} still exists 30 s after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Created again once the broker no longer says it exists (a deletion still under way
    // answers TopicAlreadyExists).
    loop {
        let created = admin
            .create_topics(
                &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topic");
        if created.iter().all(Result::is_ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not created again: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_recreated_topic_below_the_stored_offsets_is_reported() {
    if !enabled() {
        return;
    }
    let topic = unique("it-recreated");
    create_topic(&brokers(), &topic, 1).await;
    let producer = producer_of();
    let pool = sqlx::PgPool::connect(&database_url())
        .await
        .expect("postgres");
    let (before, after) = (format!("{topic}-before"), format!("{topic}-after"));

    let mut first = collector(&topic).await;
    publish_run(&producer, &topic, &before, 50).await;
    let stored = stored_seqs(&pool, &before, 50, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 50, "the first run stored");
    assert!(
        wait_line(
            &first.base,
            "kafka_offsets_ahead_of_topic{partition=\"0\"} 0"
        )
        .await,
        "kafka_offsets_ahead_of_topic is not 0 on a topic that was not recreated"
    );
    first.terminate().await;

    recreate(&topic).await;
    // A new producer: the first one's metadata of the topic is stale.
    let producer = producer_of();
    publish_run(&producer, &topic, &after, 10).await;
    let second = collector(&topic).await;
    // Stored next offset 50, the recreated partition ends at 10.
    assert!(
        wait_line(
            &second.base,
            "kafka_offsets_ahead_of_topic{partition=\"0\"} 40"
        )
        .await,
        "kafka_offsets_ahead_of_topic did not show the recreated topic"
    );
}

/// Whether `{base}/metrics` shows `line` within 30 s.
async fn wait_line(base: &str, line: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if has_metric_line(base, line).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
