//! Delivery throughput of one generator instance, next to a bare rdkafka producer loop and
//! Kafka's own ProducerPerformance (the class behind `kafka-producer-perf-test.sh`) in the same
//! run: all three send the same payloads (the synthesizer's JSON events; ProducerPerformance
//! reads them from a payload file, without headers) with the same producer settings
//! (idempotent, acks=all, lz4, linger 5 ms) to the same broker, and the figure is records
//! acknowledged per second.
//!
//! Needs a broker (the native stack's Apache Kafka: `scripts/stack.sh up`) and the release
//! binaries; ProducerPerformance runs from the stack's Kafka jars (`.stack/kafka-*/libs`, or
//! LOGSTREAM_KAFKA_LIBS), and is left out when they are not there.
//!
//!   cargo run --release -p logstream-integration-tests --bin delivery-bench -- [--seconds 20]
//!
//! Environment: LOGSTREAM_KAFKA_BROKERS (127.0.0.1:9092), LOGSTREAM_BIN_DIR (target/release).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::json;
use logstream_core::synth::Synthesizer;
use logstream_integration_tests::{
    bench_generator, create_topic, generator_counter, start_full_rate, unique,
};
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 6;

/// A setting shared with the generator instance (which reads the same variable), or its default.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

struct Acks(Arc<AtomicU64>, Arc<AtomicU64>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.1.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The synthesizer's JSON events with their keys, as every contender sends them.
fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut synth = Synthesizer::new(1, "bench-host");
    (0..10_000)
        .map(|i| {
            let event = synth.next_event(1_700_000_000_000 + i);
            (
                event.service.clone(),
                json::encode(&event).expect("encodes"),
            )
        })
        .collect()
}

/// The Kafka jars of the native stack.
fn kafka_libs() -> Option<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("LOGSTREAM_KAFKA_LIBS") {
        return Some(dir.into());
    }
    let stack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.stack");
    std::fs::read_dir(stack)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("libs"))
        .find(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n.to_string_lossy().starts_with("kafka-"))
                && p.is_dir()
        })
}

/// Kafka's ProducerPerformance sending `records` of the same payloads (one per line of a
/// payload file) with the same settings; records/s as it reports them.
fn producer_performance(brokers: &str, topic: &str, records: u64) -> Option<f64> {
    let libs = kafka_libs()?;
    let file = std::env::temp_dir().join(format!("{topic}.payloads"));
    let mut lines = Vec::new();
    for (_, payload) in payloads() {
        lines.extend_from_slice(&payload);
        lines.push(b'\n');
    }
    std::fs::write(&file, lines).ok()?;
    let output = std::process::Command::new("java")
        .arg("-Xmx1g")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("org.apache.kafka.tools.ProducerPerformance")
        .args(["--topic", topic, "--num-records", &records.to_string()])
        .args(["--throughput", "-1", "--payload-file"])
        .arg(&file)
        .arg("--producer-props")
        .arg(format!("bootstrap.servers={brokers}"))
        .args(["acks=all", "enable.idempotence=true"])
        .arg(format!(
            "compression.type={}",
            env_or("LOGSTREAM_KAFKA_COMPRESSION", "lz4")
        ))
        .arg(format!(
            "linger.ms={}",
            env_or("LOGSTREAM_KAFKA_LINGER_MS", "5")
        ))
        .args(["batch.size=1000000", "buffer.memory=268435456"])
        .output();
    let _ = std::fs::remove_file(&file);
    let output = output.ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The summary line: "N records sent, X records/sec (Y MB/sec), ...".
    let summary = stdout.lines().rev().find(|l| l.contains("records sent"))?;
    summary
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The bare loop: pre-encoded payloads sent as fast as the producer takes them.
fn bare_loop(brokers: &str, topic: &str, seconds: u64) -> (f64, u64) {
    let (acked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "compression.type",
            env_or("LOGSTREAM_KAFKA_COMPRESSION", "lz4"),
        )
        .set("linger.ms", env_or("LOGSTREAM_KAFKA_LINGER_MS", "5"))
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Acks(acked.clone(), failed.clone()))
        .expect("producer");
    let payloads = payloads();
    let began = Instant::now();
    let mut seq: u64 = 0;
    while began.elapsed() < Duration::from_secs(seconds) {
        let (key, payload) = &payloads[(seq % payloads.len() as u64) as usize];
        seq += 1;
        let seq_text = seq.to_string();
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            })
            .insert(Header {
                key: "instance-id",
                value: Some("bare-loop"),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq_text.as_str()),
            });
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice())
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("bare loop: {e}"),
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(60));
    let elapsed = began.elapsed().as_secs_f64();
    (
        acked.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// The generator instance at its highest rate; acknowledged records per second.
async fn instance(brokers: &str, topic: &str, seconds: u64, threads: &str) -> (f64, u64) {
    let mut generator = bench_generator(
        "delivery-bench-generator",
        brokers,
        topic,
        &[("LOGSTREAM_THREADS", threads)],
    )
    .await;
    let http = reqwest::Client::new();
    let base = generator.base.clone();
    start_full_rate(&http, &base).await;
    // Measure the steady part: skip the first second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (from, began) = (
        generator_counter(&http, &base, "sent_total").await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let to = generator_counter(&http, &base, "sent_total").await;
    let rate = (to - from) as f64 / began.elapsed().as_secs_f64();
    let stopped: serde_json::Value = http
        .post(format!("{base}/api/v1/generator/stop"))
        .send()
        .await
        .expect("stop")
        .json()
        .await
        .expect("json");
    generator.terminate().await;
    (rate, stopped["failed_total"].as_u64().unwrap_or(0))
}

#[tokio::main]
async fn main() {
    let mut seconds = 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--seconds", Some(s)) => seconds = s.parse().expect("--seconds N"),
            _ => {
                eprintln!("usage: delivery-bench [--seconds N]");
                std::process::exit(2);
            }
        }
    }
    let brokers =
        std::env::var("LOGSTREAM_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let threads = std::env::var("LOGSTREAM_THREADS").unwrap_or_else(|_| "2".into());
    let topic = unique("delivery-bench");
    create_topic(&brokers, &topic, PARTITIONS).await;
    println!("delivery to {brokers}, topic {topic} ({PARTITIONS} partitions), {seconds} s each");
    let bare_topic = topic.clone();
    let bare_brokers = brokers.clone();
    let (bare, bare_failed) =
        tokio::task::spawn_blocking(move || bare_loop(&bare_brokers, &bare_topic, seconds))
            .await
            .expect("bare loop");
    println!(
        "bare rdkafka producer loop: {bare:>10.0} records/s acknowledged ({bare_failed} failed)"
    );
    let (ours, ours_failed) = instance(&brokers, &topic, seconds, &threads).await;
    println!("generator instance ({threads} thread(s)): {ours:>10.0} events/s acknowledged ({ours_failed} failed)");
    let (pp_brokers, pp_topic) = (brokers.clone(), topic.clone());
    let records = (bare * seconds as f64) as u64;
    let pp =
        tokio::task::spawn_blocking(move || producer_performance(&pp_brokers, &pp_topic, records))
            .await
            .ok()
            .flatten();
    match pp {
        Some(pp) => println!("Kafka ProducerPerformance:  {pp:>10.0} records/s acknowledged"),
        None => println!("Kafka ProducerPerformance: not run (no Kafka jars, or no summary line)"),
    }
    println!("ratio generator / bare loop: {:.2}", ours / bare);
    if let Some(pp) = pp {
        println!("ratio generator / ProducerPerformance: {:.2}", ours / pp);
    }
}
