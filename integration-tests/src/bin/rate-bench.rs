//! Rate control of one generator instance: for each target rate, runs the generator against the
//! broker and prints the achieved generation rate of every 10 s window next to the target; fails
//! (exit 1) when a window is more than 2% off.
//!
//! Needs a broker (the native stack's Apache Kafka: `scripts/stack.sh up`) and the release binaries.
//!
//!   cargo run --release -p logstream-integration-tests --bin rate-bench -- \
//!       [--rates 100,1000,10000,100000,200000] [--windows 3] [--threads 2]
//!
//! Environment: LOGSTREAM_KAFKA_BROKERS (127.0.0.1:9092), LOGSTREAM_BIN_DIR (target/release).

use std::time::{Duration, Instant};

use logstream_integration_tests::{generator_call, generator_counter, unique, Service};

const WINDOW: Duration = Duration::from_secs(10);
const TOLERANCE: f64 = 0.02;

#[tokio::main]
async fn main() {
    let mut rates = vec![100u64, 1_000, 10_000, 100_000, 200_000];
    let mut windows = 3;
    let mut threads = "2".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--rates", Some(list)) => {
                rates = list
                    .split(',')
                    .map(|r| r.trim().parse().expect("--rates: whole numbers"))
                    .collect()
            }
            ("--windows", Some(n)) => windows = n.parse().expect("--windows N"),
            ("--threads", Some(n)) => threads = n,
            _ => {
                eprintln!("usage: rate-bench [--rates 100,1000,...] [--windows N] [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let brokers =
        std::env::var("LOGSTREAM_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = unique("rate-bench");
    let mut generator = Service::start(
        "rate-bench-generator",
        "logstream-generator",
        "LOGSTREAM_GENERATOR_LISTEN",
        &[
            ("LOGSTREAM_KAFKA_BROKERS", brokers.as_str()),
            ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
            ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7"),
            ("LOGSTREAM_THREADS", threads.as_str()),
            ("LOGSTREAM_LOG", "warn"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let base = generator.base.clone();
    println!("rate control, {windows} windows of {WINDOW:?} per target, {threads} thread(s), topic {topic}");
    println!(
        "{:>10} {:>8} {:>12} {:>9}",
        "target/s", "window", "achieved/s", "off"
    );
    let mut worst: f64 = 0.0;
    for rate in rates {
        generator_call(
            &http,
            &base,
            "start",
            &serde_json::json!({"rate_per_second": rate}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut from = generator_counter(&http, &base, "generated_total").await;
        let mut at = Instant::now();
        for window in 1..=windows {
            tokio::time::sleep_until((at + WINDOW).into()).await;
            let to = generator_counter(&http, &base, "generated_total").await;
            let now = Instant::now();
            let achieved = (to - from) as f64 / (now - at).as_secs_f64();
            let off = achieved / rate as f64 - 1.0;
            worst = worst.max(off.abs());
            let mark = if off.abs() <= TOLERANCE {
                ""
            } else {
                "  OUTSIDE ±2%"
            };
            println!(
                "{rate:>10} {window:>8} {achieved:>12.1} {:>+8.2}%{mark}",
                off * 100.0
            );
            (from, at) = (to, now);
        }
    }
    let _ = http
        .post(format!("{base}/api/v1/generator/stop"))
        .send()
        .await;
    generator.terminate().await;
    println!("worst window: {:+.2}% off target", worst * 100.0);
    if worst > TOLERANCE {
        std::process::exit(1);
    }
}
