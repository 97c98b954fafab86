//! ingest-bench: how fast the ingest service takes events into Kafka, next to rsyslog
//! (`imtcp` → `omkafka`, Debian's rsyslog-kafka: the usual way syslog goes into Kafka), the
//! same lines into the same topic, in the same run. `integration-tests/ingest-bench.sh` starts
//! rsyslog and runs this against the native stack.
//!
//! Runs, one after the other:
//! - HTTP NDJSON: bodies of `--batch` lines, `--concurrency` requests at a time; each answer
//!   comes once Kafka acknowledged the body's events: events/s, and the p50/p99/max answer time.
//! - syslog TCP into ingest, and the same into rsyslog: `--connections` connections writing
//!   octet-counted RFC 5424 messages as fast as they are read; done when the topic's end
//!   offsets have grown by the events sent (durable in Kafka): events/s from the first byte.
//!
//! - files, with `--file-dir` and `--rsyslog-file-dir`: a file of `--events` lines (the same
//!   RFC 5424 lines, as a daemon writing its own log file would) is moved into the directory the
//!   ingest service tails, and another into the one rsyslog's `imfile` watches (`omkafka` into
//!   the same topic): events/s from the move until the ingest service reports the whole file
//!   committed (its Kafka transaction done), and until the topic's end offsets have grown by the
//!   events for rsyslog.
//!
//! The runs alternate, rsyslog first, `--rounds` times each; the medians are compared.
//! With `--ingest-pid` and `--rsyslog-pid`, each run also prints the CPU time (user + system)
//! the shipper's process spent per million events: the broker shares the machine, so the rates
//! can meet its ceiling, while the CPU time is the shipper's own cost.
//!
//! Usage: ingest-bench [--events N] [--batch N] [--concurrency N] [--connections N] [--rounds N]
//!        [--ingest http://127.0.0.1:8082] [--syslog 127.0.0.1:5514] [--rsyslog 127.0.0.1:5515]
//!        [--brokers 127.0.0.1:9092] [--topic logs.raw] [--file-dir D --rsyslog-file-dir D]

use std::time::{Duration, Instant};

use logstream_integration_tests::cpu_seconds;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::io::AsyncWriteExt;

struct Args {
    events: usize,
    batch: usize,
    concurrency: usize,
    connections: usize,
    ingest: String,
    syslog: String,
    rsyslog: Option<String>,
    brokers: String,
    topic: String,
    rounds: usize,
    ingest_pid: Option<u32>,
    rsyslog_pid: Option<u32>,
    file_dir: Option<String>,
    rsyslog_file_dir: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        events: 200_000,
        batch: 1000,
        concurrency: 4,
        connections: 2,
        ingest: "http://127.0.0.1:8082".into(),
        syslog: "127.0.0.1:5514".into(),
        rsyslog: None,
        brokers: std::fs::read_to_string(".stack/kafka.brokers")
            .map(|b| b.trim().to_owned())
            .unwrap_or_else(|_| "127.0.0.1:9092".into()),
        topic: "logs.raw".into(),
        rounds: 3,
        ingest_pid: None,
        rsyslog_pid: None,
        file_dir: None,
        rsyslog_file_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("{flag} {value:?}")))
        };
        match flag.as_str() {
            "--events" => a.events = number(),
            "--batch" => a.batch = number().max(1),
            "--concurrency" => a.concurrency = number().max(1),
            "--connections" => a.connections = number().max(1),
            "--ingest" => a.ingest = value,
            "--syslog" => a.syslog = value,
            "--rsyslog" => a.rsyslog = Some(value),
            "--brokers" => a.brokers = value,
            "--topic" => a.topic = value,
            "--rounds" => a.rounds = number().max(1),
            "--ingest-pid" => a.ingest_pid = Some(number() as u32),
            "--rsyslog-pid" => a.rsyslog_pid = Some(number() as u32),
            "--file-dir" => a.file_dir = Some(value),
            "--rsyslog-file-dir" => a.rsyslog_file_dir = Some(value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    a
}

fn usage(problem: &str) -> ! {
    eprintln!("ingest-bench: {problem}\nusage: ingest-bench [--events N] [--batch N] [--concurrency N] [--connections N] [--rounds N] [--ingest-pid P] [--rsyslog-pid P] [--ingest URL] [--syslog HOST:PORT] [--rsyslog HOST:PORT] [--brokers B] [--topic T] [--file-dir D --rsyslog-file-dir D]");
    std::process::exit(2)
}

/// The i-th message: an RFC 5424 line as `logger` writes it (about 150 bytes), from one of 16
/// applications (the record key, so the events spread over the topic's partitions).
fn message(run: &str, i: usize) -> String {
    format!(
        "<134>1 2026-12-02T00:28:58.453807+00:00 web-{} bench-{run}-{} 4242 - - GET /api/orders/{i} answered 200 in 12 ms for user {} run={run} n={i}",
        i % 4,
        i % 16,
        i % 977
    )
}

/// Sum of the topic's end offsets.
fn end_offsets(consumer: &BaseConsumer, topic: &str) -> i64 {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| usage(&format!("cannot read the metadata of {topic}: {e}")));
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |(_, high)| high)
        })
        .sum()
}

/// Waits until the topic's end offsets reach `target`; the time it took since `from`.
fn durable_after(consumer: &BaseConsumer, topic: &str, target: i64, from: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if end_offsets(consumer, topic) >= target {
            return from.elapsed();
        }
        if Instant::now() > deadline {
            usage("the events did not reach Kafka within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn http_ndjson(a: &Args, run: &str) -> (f64, Vec<Duration>) {
    let http = reqwest::Client::new();
    let bodies: Vec<String> = (0..a.events.div_ceil(a.batch))
        .map(|b| {
            (b * a.batch..((b + 1) * a.batch).min(a.events))
                .map(|i| {
                    let event = serde_json::json!({"msg": message(run, i), "service": format!("bench-{run}-{}", i % 16), "level": "info"});
                    format!("{event}\n")
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        let (queue, http, url) = (
            queue.clone(),
            http.clone(),
            format!("{}/api/v1/logs", a.ingest),
        );
        tasks.spawn(async move {
            let mut times = Vec::new();
            loop {
                let Some(body) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return times;
                };
                let sent = Instant::now();
                let answer = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => times.push(sent.elapsed()),
                    Ok(r) => usage(&format!("ingest answered {}", r.status())),
                    Err(e) => usage(&format!("ingest: {e}")),
                }
            }
        });
    }
    let mut times = Vec::new();
    while let Some(Ok(t)) = tasks.join_next().await {
        times.extend(t);
    }
    (a.events as f64 / started.elapsed().as_secs_f64(), times)
}

/// One syslog run: events/s until Kafka holds them all, and the shipper's CPU seconds per
/// million events (when its pid is known).
struct Run {
    rate: f64,
    cpu_per_million: Option<f64>,
}

/// Writes the events over `connections` TCP connections (octet counting).
async fn syslog_tcp(
    a: &Args,
    addr: &str,
    pid: Option<u32>,
    run: &str,
    consumer: &BaseConsumer,
) -> Run {
    let before = end_offsets(consumer, &a.topic);
    let cpu_before = pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..a.connections {
        let (addr, run, events, connections) =
            (addr.to_owned(), run.to_owned(), a.events, a.connections);
        tasks.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr)
                .await
                .unwrap_or_else(|e| usage(&format!("cannot connect to {addr}: {e}")));
            let mut chunk = String::with_capacity(256 * 1024);
            for i in (c..events).step_by(connections) {
                let m = message(&run, i);
                chunk.push_str(&format!("{} {m}", m.len()));
                if chunk.len() > 200 * 1024 {
                    let _ = stream.write_all(chunk.as_bytes()).await;
                    chunk.clear();
                }
            }
            let _ = stream.write_all(chunk.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let took = durable_after(consumer, &a.topic, before + a.events as i64, started);
    let cpu_after = pid.and_then(cpu_seconds);
    Run {
        rate: a.events as f64 / took.as_secs_f64(),
        cpu_per_million: cpu_before
            .zip(cpu_after)
            .map(|(b, e)| (e - b) * 1e6 / a.events as f64),
    }
}

/// Who reads the file, and how the run knows it is all in Kafka.
enum FileReader<'a> {
    /// The ingest service: its status says the file is committed up to its size.
    Ingest { status_url: String },
    /// rsyslog: the topic's end offsets have grown by the lines.
    Rsyslog { consumer: &'a BaseConsumer },
}

/// Writes a file of `a.events` lines beside `dir`, moves it into `dir` (where the reader finds
/// it) and waits until its lines are in Kafka.
async fn file_run(a: &Args, dir: &str, reader: FileReader<'_>, pid: Option<u32>, run: &str) -> Run {
    let staged = format!("{dir}.staged-{run}.log");
    let mut text = String::with_capacity(a.events * 160);
    for i in 0..a.events {
        text.push_str(&message(run, i));
        text.push('\n');
    }
    std::fs::write(&staged, &text)
        .unwrap_or_else(|e| usage(&format!("cannot write {staged}: {e}")));
    let size = text.len() as u64;
    drop(text);
    let path = format!("{dir}/{run}.log");
    let before = match &reader {
        FileReader::Rsyslog { consumer } => end_offsets(consumer, &a.topic),
        FileReader::Ingest { .. } => 0,
    };
    let cpu_before = pid.and_then(cpu_seconds);
    let started = Instant::now();
    std::fs::rename(&staged, &path)
        .unwrap_or_else(|e| usage(&format!("cannot move the file into {dir}: {e}")));
    let took = match reader {
        FileReader::Rsyslog { consumer } => {
            durable_after(consumer, &a.topic, before + a.events as i64, started)
        }
        FileReader::Ingest { status_url } => {
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let status: serde_json::Value = match http.get(&status_url).send().await {
                    Ok(r) => r.json().await.unwrap_or_default(),
                    Err(_) => serde_json::Value::Null,
                };
                let done = status["files"].as_array().is_some_and(|files| {
                    files.iter().any(|f| {
                        f["path"].as_str() == Some(path.as_str())
                            && f["committed_offset"].as_u64() == Some(size)
                    })
                });
                if done {
                    break started.elapsed();
                }
                if Instant::now() > deadline {
                    usage("the file was not committed within 300 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let cpu_after = pid.and_then(cpu_seconds);
    let _ = std::fs::remove_file(&path);
    Run {
        rate: a.events as f64 / took.as_secs_f64(),
        cpu_per_million: cpu_before
            .zip(cpu_after)
            .map(|(b, e)| (e - b) * 1e6 / a.events as f64),
    }
}

fn show(name: &str, run: &Run) {
    let cpu = run.cpu_per_million.map_or(String::new(), |c| {
        format!("   {c:.2} CPU s per million events")
    });
    println!("{name:<34} {:>12.0} events/s{cpu}", run.rate);
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let run = format!("{}", chrono::Utc::now().timestamp());
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &a.brokers)
        .set("broker.address.family", "v4")
        .create()
        .unwrap_or_else(|e| usage(&format!("kafka client: {e}")));
    println!("ingest-bench: {} events per run, run id {run}", a.events);
    let (rate, mut times) = http_ndjson(&a, &run).await;
    times.sort();
    println!(
        "{:<34} {:>12.0} events/s   answer p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms ({} requests of {})",
        "ingest HTTP NDJSON",
        rate,
        quantile(&times, 0.5),
        quantile(&times, 0.99),
        quantile(&times, 1.0),
        times.len(),
        a.batch
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        if let Some(rsyslog) = &a.rsyslog {
            let run = syslog_tcp(
                &a,
                rsyslog,
                a.rsyslog_pid,
                &format!("{run}r{round}"),
                &consumer,
            )
            .await;
            show("rsyslog imtcp -> omkafka", &run);
            theirs.push(run);
        }
        let run = syslog_tcp(
            &a,
            &a.syslog,
            a.ingest_pid,
            &format!("{run}i{round}"),
            &consumer,
        )
        .await;
        show("ingest syslog TCP", &run);
        ours.push(run);
    }
    let (mut files_ours, mut files_theirs) = (Vec::new(), Vec::new());
    if let (Some(ours_dir), Some(theirs_dir)) = (&a.file_dir, &a.rsyslog_file_dir) {
        for round in 0..a.rounds {
            let reader = FileReader::Rsyslog {
                consumer: &consumer,
            };
            let r = file_run(
                &a,
                theirs_dir,
                reader,
                a.rsyslog_pid,
                &format!("{run}fr{round}"),
            )
            .await;
            show("rsyslog imfile -> omkafka", &r);
            files_theirs.push(r);
            let reader = FileReader::Ingest {
                status_url: format!("{}/api/v1/ingest/status", a.ingest),
            };
            let r = file_run(
                &a,
                ours_dir,
                reader,
                a.ingest_pid,
                &format!("{run}fi{round}"),
            )
            .await;
            show("ingest file source", &r);
            files_ours.push(r);
        }
    }
    let median = |runs: &[Run], of: fn(&Run) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().filter_map(of).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let rate = |r: &Run| Some(r.rate);
    let cpu = |r: &Run| r.cpu_per_million;
    println!(
        "medians of {} rounds (events/s until durable in Kafka; CPU s per million events):",
        a.rounds
    );
    let line = |name: &str, runs: &[Run]| {
        let c = median(runs, cpu).map_or("-".to_owned(), |c| format!("{c:.2}"));
        println!(
            "  {name:<26} {:>10.0} events/s  {c:>6} CPU s",
            median(runs, rate).unwrap_or(0.0)
        );
    };
    let compare = |ours_name: &str, ours: &[Run], theirs_name: &str, theirs: &[Run]| {
        line(ours_name, ours);
        if theirs.is_empty() {
            return;
        }
        line(theirs_name, theirs);
        if let (Some(o), Some(t)) = (median(ours, rate), median(theirs, rate)) {
            println!("  ratio {ours_name} / {theirs_name}: rate {:.2}", o / t);
        }
        if let (Some(o), Some(t)) = (median(ours, cpu), median(theirs, cpu)) {
            println!(
                "  ratio {theirs_name} / {ours_name}: CPU per event {:.2} (above 1: ingest spends less)",
                t / o
            );
        }
    };
    compare(
        "ingest syslog TCP",
        &ours,
        "rsyslog imtcp -> omkafka",
        &theirs,
    );
    if !files_ours.is_empty() {
        compare(
            "ingest file source",
            &files_ours,
            "rsyslog imfile -> omkafka",
            &files_theirs,
        );
    }
}
