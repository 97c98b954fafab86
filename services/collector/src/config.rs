//! The collector's settings: every one a flag and a `LOGSTREAM_*` variable with a default.

use std::net::SocketAddr;

use clap::Parser;
use logstream_core::sample::SampleRule;
use logstream_core::window::WindowSpec;
use logstream_core::Level;
use logstream_service::settings::{CommonSettings, DatabaseSettings, KafkaSettings, RulesSettings};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "logstream-collector",
    version,
    about = "Consumes log events from Kafka into PostgreSQL, exactly once"
)]
pub struct Config {
    /// Address the HTTP API (status, metrics, health) listens on.
    #[arg(
        long,
        env = "LOGSTREAM_COLLECTOR_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    pub listen: SocketAddr,

    /// Kafka consumer group.
    #[arg(
        long,
        env = "LOGSTREAM_CONSUMER_GROUP",
        default_value = "logstream-collector"
    )]
    pub consumer_group: String,

    /// Static group membership id (Kafka `group.instance.id`): a restarted collector with the same
    /// id takes over its old membership at once instead of waiting for the session to expire.
    /// Must be unique per collector process in the group; unset or empty: dynamic membership.
    /// `{hostname}` in it is replaced by the host name (a container's id), so replicas of one
    /// definition (compose `--scale`) each get their own, e.g. `collector-{hostname}`.
    #[arg(long, env = "LOGSTREAM_GROUP_INSTANCE_ID",
          value_parser = logstream_service::settings::with_hostname)]
    pub group_instance_id: Option<String>,

    /// Partition assignment strategy: cooperative-sticky (incremental rebalances) or range / roundrobin.
    #[arg(long, env = "LOGSTREAM_KAFKA_ASSIGNMENT_STRATEGY", default_value = "cooperative-sticky",
          value_parser = ["cooperative-sticky", "range", "roundrobin"])]
    pub assignment_strategy: String,

    /// Kafka group session timeout: how soon a dead collector's partitions move to another.
    #[arg(long, env = "LOGSTREAM_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(3_000..=300_000))]
    pub session_timeout_ms: u64,

    /// Largest number of records in one database transaction. Each transaction has a fixed cost
    /// (window upserts, offsets, commit): under a backlog, batches of 30,000 stored 5-10% more
    /// events/s than batches of 10,000. A batch grows this large only while PostgreSQL is busy
    /// with the batches before it (see LOGSTREAM_BATCH_EARLY_EVENTS).
    #[arg(long, env = "LOGSTREAM_BATCH_MAX_EVENTS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_max_events: u64,

    /// A batch is handed off at this many records when PostgreSQL has a transaction free to
    /// take it at once (while both are busy it keeps filling, up to LOGSTREAM_BATCH_MAX_EVENTS,
    /// which also caps this): at 110,000 events/s, batches closed at 30,000 or after
    /// LOGSTREAM_BATCH_MAX_WAIT_MS held events 277 ms at the median before their commit, batches
    /// of 10,000 130 ms.
    #[arg(long, env = "LOGSTREAM_BATCH_EARLY_EVENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_early_events: u64,

    /// Longest a record waits in an open batch before the batch is written.
    #[arg(long, env = "LOGSTREAM_BATCH_MAX_WAIT_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_max_wait_ms: u64,

    /// A batch whose write has failed (and been retried) for longer than this makes /readyz fail,
    /// naming the error (seconds).
    #[arg(long, env = "LOGSTREAM_STUCK_BATCH_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stuck_batch_seconds: u64,

    /// Records buffered between the Kafka consumer and the writer (bounds memory).
    #[arg(long, env = "LOGSTREAM_QUEUE_CAPACITY", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub queue_capacity: u64,

    /// Events to drop instead of storing: `;`-separated rules (e.g. `service==healthcheck;
    /// level<=DEBUG`); each drop counts in log_events_filtered_total{rule}. Rule syntax: README.
    #[arg(long, env = "LOGSTREAM_FILTER_DROP", default_value = "")]
    pub filter_drop: String,

    /// Extra destinations besides PostgreSQL: `;`-separated `DESTINATION=RULE` with DESTINATION
    /// `kafka:TOPIC`, `file:PATH` (NDJSON) or `stdout`, e.g. `kafka:logs.errors=level>=ERROR`.
    #[arg(long, env = "LOGSTREAM_ROUTES", default_value = "")]
    pub routes: String,

    /// Longest the consumer waits for room in the full queue before it pauses its partitions
    /// (Kafka pause/resume) until storage catches up.
    #[arg(long, env = "LOGSTREAM_PAUSE_AFTER_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub pause_after_ms: u64,

    /// Resident memory limit in MiB: above 90% of it, with records still queued, the consumer
    /// pauses its partitions (what is already fetched and batched still arrives after a pause);
    /// Kafka's prefetch buffer is sized from it too (a quarter).
    #[arg(long, env = "LOGSTREAM_MEMORY_LIMIT_MB", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub memory_limit_mb: u64,

    /// Tumbling window sizes for aggregates, in seconds, comma-separated.
    #[arg(long, env = "LOGSTREAM_WINDOW_SIZES_SECONDS", default_value = "10,60",
          value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub window_sizes_seconds: Vec<u32>,

    /// Sliding windows as SIZE/SLIDE in seconds, comma-separated (size a multiple of slide);
    /// `none` for none.
    #[arg(long, env = "LOGSTREAM_SLIDING_WINDOWS", default_value = "300/60")]
    pub sliding_windows: String,

    /// How far behind the highest event time seen an event may arrive and still find its window
    /// open (the watermark is the highest event time minus this). Later events still update
    /// their window and count in log_events_late_total.
    #[arg(long, env = "LOGSTREAM_ALLOWED_LATENESS_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub allowed_lateness_seconds: u64,

    /// Events timed further ahead of the collector's clock than this are dead-lettered
    /// (reason timestamp_out_of_range), as are events older than the retention.
    #[arg(long, env = "LOGSTREAM_MAX_FUTURE_SECONDS", default_value_t = 3_600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub max_future_seconds: u64,

    /// Stored events older than this (by event time) are deleted (a day's partition is dropped
    /// once all of it is older), and older events are dead-lettered on arrival.
    #[arg(long, env = "LOGSTREAM_RETENTION_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub retention_hours: u64,

    /// Keep a full-text index of the stored messages' words (GIN over to_tsvector('simple',
    /// message)) for the text queries of GET /api/v1/logs. Rarely worth it: over 10 million
    /// events it lowered the p99 of rare words in one hour and slowed every other text search,
    /// and it costs two thirds of the ingest rate (see the README). Created at start when
    /// missing (on every partition: a long build on a big table); when turned off again, drop it
    /// by hand (DROP INDEX log_events_message_words).
    #[arg(long, env = "LOGSTREAM_SEARCH_TEXT_INDEX", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub search_text_index: bool,

    #[command(flatten)]
    pub rules: RulesSettings,

    /// Alertmanager to push alerts to (API v2), e.g. http://127.0.0.1:9093. Unset: none.
    #[arg(long, env = "LOGSTREAM_ALERTMANAGER_URL")]
    pub alertmanager_url: Option<String>,

    /// A URL every alert transition is POSTed to as JSON (as on logs.alerts). Unset: none.
    #[arg(long, env = "LOGSTREAM_ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,

    /// How often firing alerts are posted to Alertmanager again (seconds; keep it under
    /// Alertmanager's resolve_timeout).
    #[arg(long, env = "LOGSTREAM_ALERT_REPEAT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub alert_repeat_seconds: u64,

    /// How often the publisher looks for new alert transitions to put on logs.alerts (ms).
    #[arg(long, env = "LOGSTREAM_ALERT_PUBLISH_POLL_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub alert_publish_poll_ms: u64,

    /// How often each partition's detector state is stored with its offsets (seconds): a new
    /// owner replays at most this much of the partition through its detectors.
    #[arg(long, env = "LOGSTREAM_DETECTOR_SNAPSHOT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub detector_snapshot_seconds: u64,

    /// Most services given a `service` label value of their own in the metrics; events of the
    /// others count under `service="other"`, so any number of service names sent cannot grow
    /// memory or Prometheus without bound.
    #[arg(long, env = "LOGSTREAM_METRICS_MAX_SERVICES", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub metrics_max_services: u64,

    /// Sampling of raw storage under sustained lag: once the records being read are older than
    /// this many seconds (their Kafka timestamp against the clock), only a share
    /// (LOGSTREAM_SAMPLE_KEEP_RATIO) of the raw rows of events at or below
    /// LOGSTREAM_SAMPLE_MAX_LEVEL is stored, until the lag is below half of it. Windows, stats
    /// and detection still count every event; the others count in
    /// log_events_sampled_out_total and the log_events_sampled_out table. Unset: never (default).
    #[arg(long, env = "LOGSTREAM_SAMPLE_LAG_SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub sample_lag_seconds: Option<u64>,

    /// Share of the sampled events' raw rows stored while sampling (0 < ratio <= 1).
    #[arg(long, env = "LOGSTREAM_SAMPLE_KEEP_RATIO", default_value_t = 0.1,
          value_parser = parse_ratio)]
    pub sample_keep_ratio: f64,

    /// Highest level sampled (events above it are always stored).
    #[arg(long, env = "LOGSTREAM_SAMPLE_MAX_LEVEL", default_value = "INFO",
          value_parser = clap::value_parser!(Level))]
    pub sample_max_level: Level,

    /// Parse each event's user agent (`http.user_agent`, `user_agent.original`, `user_agent`)
    /// into a `ua` attribute: browser, OS, device, bot (uap-core's rules, built in).
    #[arg(long, env = "LOGSTREAM_ENRICH_USER_AGENT", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub enrich_user_agent: bool,

    /// MaxMind-format databases (GeoLite2/GeoIP2 Country or ASN, DB-IP, ...), comma-separated
    /// paths: each event's client address (`http.client_ip`, `client.ip`, `source.ip`,
    /// `client_ip`) is located into a `geo` attribute (country, asn, as_org). Empty (default):
    /// not located.
    #[arg(long, env = "LOGSTREAM_GEOIP_DATABASES", default_value = "")]
    pub geoip_databases: String,

    /// S3 endpoint of `s3://` routes (archives), e.g. `http://127.0.0.1:8014` for s3s-fs or
    /// MinIO. Empty (default): AWS, `https://s3.REGION.amazonaws.com`. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
    #[arg(long, env = "LOGSTREAM_S3_ENDPOINT", default_value = "")]
    pub s3_endpoint: String,

    /// Access key of the archive's requests (AWS's standard variable).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// Secret key of the archive's requests (AWS's standard variable).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Session token of temporary credentials (AWS's standard variable).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub s3_session_token: Option<String>,

    /// Region the archive's requests are signed for (AWS_REGION when unset; else us-east-1).
    #[arg(long, env = "LOGSTREAM_S3_REGION")]
    pub s3_region: Option<String>,

    /// Path-style requests (ENDPOINT/BUCKET/KEY), as MinIO, s3s-fs and most servers other
    /// than AWS expect; off: virtual-hosted style (BUCKET.ENDPOINT/KEY).
    #[arg(long, env = "LOGSTREAM_S3_PATH_STYLE", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub s3_path_style: bool,

    /// An archive closes a partition's segment (and uploads its objects) once its NDJSON
    /// reaches this many MiB, before compression.
    #[arg(long, env = "LOGSTREAM_ARCHIVE_MAX_MB", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=4_096))]
    pub archive_max_mb: u64,

    /// ... or once its first record was read this many seconds ago.
    #[arg(long, env = "LOGSTREAM_ARCHIVE_MAX_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub archive_max_seconds: u64,

    /// MiB of records an archive (or search route) may hold ahead of its uploads, past which
    /// its reading pauses (PostgreSQL storage goes on); and MiB its open segments may hold
    /// together, past which the largest closes early. A route's memory is about twice this.
    #[arg(long, env = "LOGSTREAM_ARCHIVE_BUFFER_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=16_384))]
    pub archive_buffer_mb: u64,

    /// Where an archive or search route starts on a partition it has no progress for:
    /// `earliest` (everything the topic still holds) or `latest` (the topic's end when the
    /// collector first starts with the route; recorded at once, so a crash does not move it;
    /// partitions added to the topic later are read from their beginning).
    #[arg(long, env = "LOGSTREAM_SINK_START", default_value = "earliest",
          value_parser = ["earliest", "latest"])]
    pub sink_start: String,

    /// Largest `_bulk` request body of a search route, in MiB (a segment's documents go in as
    /// many requests as needed).
    #[arg(long, env = "LOGSTREAM_SEARCH_BULK_MB", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=512))]
    pub search_bulk_mb: u64,

    #[command(flatten)]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub common: CommonSettings,
}

impl Config {
    /// The early hand-off size, never above the largest batch.
    pub fn batch_early_events(&self) -> u64 {
        self.batch_early_events.min(self.batch_max_events)
    }

    /// The sampling rule (None: sampling off).
    pub fn sample_rule(&self) -> Option<SampleRule> {
        self.sample_lag_seconds.map(|seconds| SampleRule {
            lag_ms: seconds as i64 * 1000,
            keep_per_million: (self.sample_keep_ratio * 1e6).round() as u32,
            max_level: self.sample_max_level,
        })
    }

    /// Every window shape to aggregate: the tumbling sizes, then the sliding windows; fails with
    /// a message naming the setting.
    pub fn window_specs(&self) -> Result<Vec<WindowSpec>, String> {
        let mut specs = Vec::new();
        for size in &self.window_sizes_seconds {
            specs.push(
                WindowSpec::tumbling(i64::from(*size) * 1000)
                    .map_err(|e| format!("LOGSTREAM_WINDOW_SIZES_SECONDS: {e}"))?,
            );
        }
        if specs.is_empty() {
            return Err("LOGSTREAM_WINDOW_SIZES_SECONDS must name at least one size".into());
        }
        specs.sort_unstable();
        specs.dedup();
        let sliding = self.sliding_windows.trim();
        if !sliding.is_empty() && sliding != "none" {
            for text in sliding.split(',') {
                let spec = parse_sliding(text)
                    .map_err(|e| format!("LOGSTREAM_SLIDING_WINDOWS / --sliding-windows: {e}"))?;
                if !specs.contains(&spec) {
                    specs.push(spec);
                }
            }
        }
        Ok(specs)
    }
}

/// A share in (0, 1] (LOGSTREAM_SAMPLE_KEEP_RATIO).
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a ratio above 0 and at most 1 (e.g. 0.1)"
        )),
    }
}

/// Most sliding windows one event may fall in (size / slide).
const MAX_WINDOWS_PER_EVENT: i64 = 60;

/// One `SIZE/SLIDE` (seconds) of `LOGSTREAM_SLIDING_WINDOWS`.
fn parse_sliding(text: &str) -> Result<WindowSpec, String> {
    let (size, slide) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not SIZE/SLIDE (seconds), e.g. 300/60"))?;
    let seconds = |s: &str| {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or_else(|| format!("{s:?} is not a number of seconds in 1..=86400"))
    };
    let (size, slide) = (seconds(size)?, seconds(slide)?);
    if size / slide > MAX_WINDOWS_PER_EVENT {
        return Err(format!(
            "{text:?}: an event would fall in {} windows (at most {MAX_WINDOWS_PER_EVENT})",
            size / slide
        ));
    }
    WindowSpec::sliding(size * 1000, slide * 1000).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(args: &[&str]) -> Result<Vec<WindowSpec>, String> {
        let mut argv = vec!["logstream-collector"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .window_specs()
    }

    #[test]
    fn window_shapes_from_settings() {
        let spec =
            |size: i64, slide: i64| WindowSpec::sliding(size * 1000, slide * 1000).expect("valid");
        assert_eq!(
            specs(&[]),
            Ok(vec![spec(10, 10), spec(60, 60), spec(300, 60)])
        );
        assert_eq!(
            specs(&[
                "--window-sizes-seconds",
                "60,10,60",
                "--sliding-windows",
                "none"
            ]),
            Ok(vec![spec(10, 10), spec(60, 60)])
        );
        let err = specs(&["--sliding-windows", "300/70"]).expect_err("not a multiple");
        assert!(
            err.contains("LOGSTREAM_SLIDING_WINDOWS") && err.contains("multiple"),
            "{err}"
        );
        assert!(specs(&["--sliding-windows", "300"]).is_err());
        assert!(specs(&["--sliding-windows", "86400/1"]).is_err());
    }
}
