//! Runs logstream's own binaries as child processes, for tests that need several services
//! together against the real PostgreSQL, Redis and Kafka of the native stack.
//!
//! The binaries come from `LOGSTREAM_BIN_DIR` (`scripts/test.sh` points it at the stack's
//! build), else from the directory above the test executable (`target/debug` after
//! `cargo build --workspace --bins`). Each child's output goes to `target/it-logs/<name>-<port>.log`.

pub mod detection_score;

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the live-stack tests should run (`LOGSTREAM_IT=1`); says why not when they don't.
pub fn enabled() -> bool {
    let on = std::env::var("LOGSTREAM_IT").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped: set LOGSTREAM_IT=1 with the native stack up (scripts/stack.sh up)");
    }
    on
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Something unique to this test run, for topic, group and instance names.
pub fn unique(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{prefix}-{}-{millis}", std::process::id())
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOGSTREAM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // A test runs as target/<profile>/deps/<test>, a binary as target/<profile>/<binary>.
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable in a directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    dir.to_path_buf()
}

fn log_dir() -> PathBuf {
    let dir = bin_dir().join("..").join("it-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// One running service; killed when dropped.
pub struct Service {
    name: String,
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
}

impl Service {
    /// Starts `binary` (e.g. `logstream-gateway`) from the binaries' directory, listening on a
    /// free port given through `listen_var`, with `env`, and waits until `/healthz` answers.
    pub async fn start(name: &str, binary: &str, listen_var: &str, env: &[(&str, &str)]) -> Self {
        Self::start_path(name, &bin_dir().join(binary), listen_var, env).await
    }

    /// [`Service::start`] with the executable's path given (e.g. a `CARGO_BIN_EXE_*`).
    pub async fn start_path(
        name: &str,
        path: &std::path::Path,
        listen_var: &str,
        env: &[(&str, &str)],
    ) -> Self {
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace --bins` or set LOGSTREAM_BIN_DIR",
            path.display()
        );
        let port = free_port();
        let log_path = log_dir().join(format!("{name}-{port}.log"));
        let log = File::create(&log_path).expect("log file");
        let mut command = Command::new(path);
        command
            .env(listen_var, format!("127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log));
        for (key, value) in env {
            command.env(key, value);
        }
        let service = Self {
            name: name.to_owned(),
            child: command.spawn().expect("service starts"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", service.base))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{name} did not come up; see {}",
                log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (up to 30 s) for a graceful exit.
    pub async fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("{} ignored SIGTERM for 30 s; killing it", self.name);
        let _ = self.child.kill();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    Some(stat_ticks(pid)?[..2].iter().sum::<f64>() / 100.0)
}

/// utime, stime, cutime, cstime of process `pid`, in clock ticks.
fn stat_ticks(pid: u32) -> Option<[f64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the line, 12 to 15 after the name.
    let mut ticks = [0.0; 4];
    for (i, tick) in ticks.iter_mut().enumerate() {
        *tick = fields.get(11 + i)?.parse().ok()?;
    }
    Some(ticks)
}

/// CPU seconds used so far by every process named `name` and the children they have reaped:
/// for PostgreSQL, its live backends and (through the postmaster) those that have ended.
pub fn cpu_seconds_of_named(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks: f64 = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(stat_ticks)
        .map(|t| t.iter().sum::<f64>())
        .sum();
    ticks / 100.0
}

/// A generator's (or the gateway's) `GET /api/v1/generator/status`, as JSON.
pub async fn generator_status(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/api/v1/generator/status"))
        .send()
        .await
        .expect("status answers")
        .json()
        .await
        .expect("status is JSON")
}

/// One counter of that status (`generated_total`, `sent_total`, ...); 0 when absent.
pub async fn generator_counter(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    generator_status(http, base).await[name]
        .as_u64()
        .unwrap_or(0)
}

/// A consumer of committed records only (`read_committed`), from the earliest offset, in a
/// group of its own named after `purpose`; the brokers from LOGSTREAM_KAFKA_BROKERS.
pub fn committed_reader(purpose: &str) -> rdkafka::consumer::BaseConsumer {
    let brokers =
        std::env::var("LOGSTREAM_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    committed_reader_of(&brokers, purpose)
}

/// [`committed_reader`] of the given brokers.
pub fn committed_reader_of(brokers: &str, purpose: &str) -> rdkafka::consumer::BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("group.id", unique(purpose))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// A Kafka record's header as text.
pub fn header<M: rdkafka::message::Message>(message: &M, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    message.headers().and_then(|h| {
        h.iter()
            .find(|x| x.key == name)
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// `POST {base}/api/v1/generator/{action}` (`start` with `body`, or `stop`); asserts 200 and
/// answers the status it returns.
pub async fn generator_call(
    http: &reqwest::Client,
    base: &str,
    action: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let response = http
        .post(format!("{base}/api/v1/generator/{action}"))
        .json(body)
        .send()
        .await
        .expect("generator answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{action}: {text}");
    serde_json::from_str(&text).expect("status is JSON")
}

/// A service's `/metrics` text.
async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}

/// The sum of every series of metric `name` on a service's `/metrics`.
pub async fn metric_sum(base: &str, name: &str) -> f64 {
    metrics_text(base)
        .await
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether `{base}/metrics` has exactly this line (e.g. `some_gauge 1`).
pub async fn has_metric_line(base: &str, line: &str) -> bool {
    metrics_text(base).await.lines().any(|l| l == line)
}

/// An admin client of `brokers` (topics created and deleted by tests).
pub fn admin(brokers: &str) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .create()
        .expect("admin client")
}

/// Creates `topic` with `partitions` partitions (fine when it exists).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let results = admin(brokers)
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    for result in results {
        if let Err((name, code)) = result {
            assert_eq!(
                code,
                RDKafkaErrorCode::TopicAlreadyExists,
                "creating {name}"
            );
        }
    }
}

/// The headers a generator puts on a record: `instance-id`, `seq`, and `content-type` when
/// given.
pub fn generator_headers(
    instance: &str,
    seq: usize,
    content_type: Option<&str>,
) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let seq = seq.to_string();
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "instance-id",
            value: Some(instance),
        })
        .insert(Header {
            key: "seq",
            value: Some(seq.as_str()),
        });
    if let Some(content_type) = content_type {
        headers = headers.insert(Header {
            key: "content-type",
            value: Some(content_type),
        });
    }
    headers
}

/// Publishes one record as a generator would ([`generator_headers`]); waits for the
/// acknowledgement.
pub async fn publish(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    (instance, seq): (&str, usize),
    content_type: Option<&str>,
) {
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(generator_headers(instance, seq, content_type)),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
}

/// The `seq` values stored for `instance`, once there are at least `expected` (or `timeout`
/// passed), in order.
pub async fn stored_seqs(
    pool: &sqlx::PgPool,
    instance: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<(i64,)> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT seq FROM log_events WHERE instance_id = $1 ORDER BY seq")
                .bind(instance)
                .fetch_all(pool)
                .await
                .expect("query");
        if rows.len() >= expected || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A generator instance for a benchmark: its own topic, a Redis database of its own (so the
/// stack's gateway does not see it), warnings only.
pub async fn bench_generator(
    name: &str,
    brokers: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> Service {
    let mut env = vec![
        ("LOGSTREAM_KAFKA_BROKERS", brokers),
        ("LOGSTREAM_TOPIC_RAW", topic),
        ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7"),
        ("LOGSTREAM_LOG", "warn"),
    ];
    env.extend_from_slice(extra);
    Service::start(
        name,
        "logstream-generator",
        "LOGSTREAM_GENERATOR_LISTEN",
        &env,
    )
    .await
}

/// Starts a generator at the highest rate the API accepts.
pub async fn start_full_rate(http: &reqwest::Client, base: &str) {
    generator_call(
        http,
        base,
        "start",
        &serde_json::json!({"rate_per_second": logstream_core::api::MAX_RATE_PER_SECOND}),
    )
    .await;
}

/// A schema of its own in the stack's database (`DATABASE_URL`, else the stack's), named after
/// `prefix` and unique to the run, with the migrations applied; a pool whose connections use it,
/// and its name.
pub async fn migrated_schema(prefix: &str) -> (sqlx::PgPool, String) {
    static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let url = database_url();
    // Tests of one process start within the same millisecond: a counter tells them apart.
    let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("{}_{n}", unique(prefix).replace('-', "_"));
    let admin = sqlx::PgPool::connect(&url).await.expect("postgres");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("database URL");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("postgres in the test's schema");
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .expect("migrations in the test's schema");
    (pool, schema)
}

/// The stack's database URL (`DATABASE_URL` overrides it).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://logstream:logstream@127.0.0.1:5432/logstream".into())
}

/// Queues every record on `producer`, then waits until Kafka has acknowledged them all.
pub async fn send_all<'a>(
    producer: &rdkafka::producer::FutureProducer,
    records: impl IntoIterator<Item = rdkafka::producer::FutureRecord<'a, str, str>>,
) {
    let mut pending = Vec::new();
    for record in records {
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
    }
    for delivery in pending {
        delivery.await.expect("delivered").expect("acknowledged");
    }
}
