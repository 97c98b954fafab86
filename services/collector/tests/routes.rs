//! Against a running stack (scripts/stack.sh up; enabled by LOGSTREAM_IT=1): a collector of its
//! own (own topic and group) with a drop rule and two routes stores what it keeps in PostgreSQL,
//! drops and counts what the filter matches, and sends copies to a Kafka topic and an NDJSON file.

use std::time::{Duration, Instant};

use logstream_integration_tests::{
    enabled, has_metric_line, publish, stored_seqs, unique, Service,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;

#[tokio::test]
async fn filters_and_routes_to_three_destinations() {
    if !enabled() {
        return;
    }
    let brokers = std::env::var("LOGSTREAM_KAFKA_BROKERS").unwrap_or("127.0.0.1:9092".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or("postgres://logstream:logstream@127.0.0.1:5432/logstream".into());
    let topic = unique("routes-raw");
    let errors = unique("routes-errors");
    let file = std::env::temp_dir().join(format!("{}.ndjson", unique("routes")));
    let routes = format!(
        "kafka:{errors}=level>=ERROR; file:{}=service==payments",
        file.display()
    );
    let group = unique("routes-group");
    let mut collector = Service::start(
        "collector-routes",
        "logstream-collector",
        "LOGSTREAM_COLLECTOR_LISTEN",
        &[
            ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
            ("LOGSTREAM_TOPIC_PARTITIONS", "1"),
            ("LOGSTREAM_CONSUMER_GROUP", group.as_str()),
            ("LOGSTREAM_FILTER_DROP", "service==noise"),
            ("LOGSTREAM_ROUTES", routes.as_str()),
        ],
    )
    .await;

    let instance = unique("routes-test");
    let now = chrono::Utc::now().timestamp_millis();
    let records = [
        ("orders", "ERROR"),   // stored, routed to the errors topic
        ("payments", "INFO"),  // stored, routed to the file
        ("noise", "ERROR"),    // dropped
        ("payments", "FATAL"), // stored, routed to both
        ("orders", "INFO"),    // stored only
    ];
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("broker.address.family", "v4")
        .create()
        .expect("producer");
    // The collector creates its topic at start; wait until it is assigned.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_metric_line(&collector.base, "collector_consumer_paused 0").await
        || reqwest::get(format!("{}/api/v1/collector/status", collector.base))
            .await
            .expect("status")
            .json::<serde_json::Value>()
            .await
            .expect("json")["partitions"]
            .as_array()
            .is_none_or(|p| p.is_empty())
    {
        assert!(Instant::now() < deadline, "collector got no partition");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, (service, level)) in records.iter().enumerate() {
        let payload = format!(
            r#"{{"timestamp":{now},"level":"{level}","service":"{service}","message":"routed {i}"}}"#
        );
        publish(
            &producer,
            &topic,
            service,
            payload.as_bytes(),
            (&instance, i + 1),
            None,
        )
        .await;
    }

    let pool = sqlx::PgPool::connect(&database).await.expect("postgres");
    let stored = stored_seqs(&pool, &instance, 4, Duration::from_secs(60)).await;
    assert_eq!(
        stored,
        vec![(1,), (2,), (4,), (5,)],
        "all but the dropped one"
    );
    assert!(has_metric_line(&collector.base, "log_events_filtered_total{rule=\"0\"} 1").await);

    let lines = std::fs::read_to_string(&file).expect("route file");
    let services: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    assert_eq!(services.len(), 2, "{lines}");
    assert!(services.iter().all(|e| e["service"] == "payments"));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("broker.address.family", "v4")
        .set("group.id", unique("routes-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[errors.as_str()]).expect("subscribe");
    let mut levels = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while levels.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let event: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap_or_default()).expect("json");
            levels.push(event["level"].as_str().unwrap_or_default().to_owned());
        }
    }
    levels.sort();
    assert_eq!(levels, ["ERROR", "FATAL"]);
    collector.terminate().await;
    let _ = std::fs::remove_file(&file);
}
