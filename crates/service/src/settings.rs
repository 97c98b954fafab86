//! Settings shared by several services. Each is a flag and a `LOGSTREAM_*` environment variable
//! with a documented default; a bad value stops the service at start with a message naming it.

use clap::{Args, ValueEnum};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default for a terminal).
    Text,
    /// One JSON object per line (for containers and log shippers).
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct CommonSettings {
    /// Log output format.
    #[arg(long, env = "LOGSTREAM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,logstream_collector=debug`.
    #[arg(long, env = "LOGSTREAM_LOG", default_value = "info")]
    pub log_filter: String,

    /// Longest time a graceful shutdown may take before the service exits anyway.
    #[arg(long, env = "LOGSTREAM_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_seconds: u64,

    /// OTLP/HTTP endpoint traces are exported to, e.g. `http://127.0.0.1:4318` (`/v1/traces` is
    /// appended when missing; plain http only). Unset: no export; trace context is still
    /// propagated.
    #[arg(long, env = "LOGSTREAM_OTLP_ENDPOINT", value_parser = parse_http_url)]
    pub otlp_endpoint: Option<String>,

    /// Share of new traces that are sampled (0.0..=1.0); a request's own sampling decision
    /// (its `traceparent`) is always followed.
    #[arg(long, env = "LOGSTREAM_TRACE_SAMPLE_RATIO", default_value_t = 1.0,
          value_parser = parse_ratio)]
    pub trace_sample_ratio: f64,
}

/// OTLP endpoints are plain HTTP (the exporter is built without TLS; put a local collector or
/// sidecar in front of a TLS backend).
fn parse_http_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.starts_with("https://") {
        Err(format!(
            "{value:?}: https is not supported; use an http:// endpoint (e.g. a local OTLP collector)"
        ))
    } else if value.len() > "http://".len() && value.starts_with("http://") {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not an http:// URL"))
    }
}

fn parse_ratio(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{value:?} is not a number from 0.0 to 1.0")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "LOGSTREAM_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,

    /// Topic the generators publish raw log events to.
    #[arg(long, env = "LOGSTREAM_TOPIC_RAW", default_value = "logs.raw")]
    pub topic_raw: String,

    /// Topic for records the collector could not accept.
    #[arg(long, env = "LOGSTREAM_TOPIC_DLQ", default_value = "logs.dlq")]
    pub topic_dlq: String,

    /// Topic for raised alerts.
    #[arg(long, env = "LOGSTREAM_TOPIC_ALERTS", default_value = "logs.alerts")]
    pub topic_alerts: String,

    /// Partitions of each topic when this service has to create it.
    #[arg(long, env = "LOGSTREAM_TOPIC_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub topic_partitions: i32,

    /// Replication factor of each topic when this service has to create it.
    #[arg(long, env = "LOGSTREAM_TOPIC_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: i32,
}

impl KafkaSettings {
    /// All topics of the design, which every service creates when missing.
    pub fn topics(&self) -> [&str; 3] {
        [&self.topic_raw, &self.topic_dlq, &self.topic_alerts]
    }
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "LOGSTREAM_DATABASE_URL",
        default_value = "postgres://logstream:logstream@127.0.0.1:5432/logstream"
    )]
    pub database_url: String,

    /// Largest number of PostgreSQL connections in the pool.
    #[arg(long, env = "LOGSTREAM_DATABASE_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
}

/// The detection rules file, read by the collector (which applies it) and the gateway (which
/// shows it).
#[derive(Debug, Clone, Args)]
pub struct RulesSettings {
    /// Detection rules (TOML; monitoring/rules/detection.toml is the shipped default). Unset:
    /// the built-in defaults, which are that file's values.
    #[arg(long, env = "LOGSTREAM_RULES")]
    pub rules: Option<std::path::PathBuf>,
}

impl RulesSettings {
    /// The rules in force: the file's, or the defaults; fails naming the setting and the rule.
    pub fn load(&self) -> Result<logstream_core::detect::rules::Rules, String> {
        let Some(path) = &self.rules else {
            return Ok(Default::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("LOGSTREAM_RULES: cannot read {}: {e}", path.display()))?;
        logstream_core::detect::rules::Rules::parse(&text)
            .map_err(|e| format!("LOGSTREAM_RULES ({}): {e}", path.display()))
    }
}

/// The Kafka circuit breaker of services that produce events (generator, ingest).
#[derive(Debug, Clone, Args)]
pub struct BreakerArgs {
    /// Consecutive delivery failures (or stalls) that open the Kafka circuit breaker.
    #[arg(long, env = "LOGSTREAM_BREAKER_FAILURES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub breaker_failures: u32,

    /// Records in flight with no delivery report for this long count as a failure (a stall).
    #[arg(long, env = "LOGSTREAM_BREAKER_STALL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub breaker_stall_ms: u64,

    /// First wait of an open breaker before it lets the producer try again (then doubling,
    /// jittered).
    #[arg(long, env = "LOGSTREAM_BREAKER_BACKOFF_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub breaker_backoff_ms: u64,

    /// Longest wait of an open breaker.
    #[arg(long, env = "LOGSTREAM_BREAKER_BACKOFF_MAX_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub breaker_backoff_max_ms: u64,
}

impl BreakerArgs {
    /// The breaker settings; fails when the backoff range is inverted.
    pub fn settings(&self) -> Result<crate::breaker::BreakerSettings, String> {
        if self.breaker_backoff_ms > self.breaker_backoff_max_ms {
            return Err(format!(
                "LOGSTREAM_BREAKER_BACKOFF_MS ({}) must not exceed LOGSTREAM_BREAKER_BACKOFF_MAX_MS ({})",
                self.breaker_backoff_ms, self.breaker_backoff_max_ms
            ));
        }
        Ok(crate::breaker::BreakerSettings {
            failures: self.breaker_failures,
            stall: std::time::Duration::from_millis(self.breaker_stall_ms),
            backoff_min: std::time::Duration::from_millis(self.breaker_backoff_ms),
            backoff_max: std::time::Duration::from_millis(self.breaker_backoff_max_ms),
        })
    }
}

/// The machine's host name (from `HOSTNAME` or /etc/hostname), if it has one.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// A setting's value with each `{hostname}` replaced by the machine's host name (in a
/// container, its id): one definition then gives each replica its own value, e.g.
/// `collector-{hostname}` under compose `--scale`. A clap value parser.
pub fn with_hostname(value: &str) -> Result<String, String> {
    with_hostname_of(value, hostname)
}

fn with_hostname_of(value: &str, host: impl FnOnce() -> Option<String>) -> Result<String, String> {
    const PLACEHOLDER: &str = "{hostname}";
    if !value.contains(PLACEHOLDER) {
        return Ok(value.to_owned());
    }
    let host = host().ok_or_else(|| {
        format!("{value:?} names {PLACEHOLDER}, but neither HOSTNAME nor /etc/hostname gives one")
    })?;
    Ok(value.replace(PLACEHOLDER, &host))
}

#[cfg(test)]
mod hostname_tests {
    use super::*;

    #[test]
    fn replaces_the_placeholder_only() {
        let host = || Some("a1b2c3".to_owned());
        assert_eq!(
            with_hostname_of("collector-1", host).as_deref(),
            Ok("collector-1")
        );
        assert_eq!(
            with_hostname_of("http://{hostname}:8080", host).as_deref(),
            Ok("http://a1b2c3:8080")
        );
        let err = with_hostname_of("c-{hostname}", || None).expect_err("no host name");
        assert!(err.contains("HOSTNAME"), "{err}");
    }
}
