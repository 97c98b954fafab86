//! The collector's settings: every one a flag and a `LOGSTREAM_*` variable with a default.

use std::net::SocketAddr;

use clap::Parser;
use logstream_service::settings::{CommonSettings, DatabaseSettings, KafkaSettings};

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
    /// Must be unique per collector process in the group; unset: dynamic membership.
    #[arg(long, env = "LOGSTREAM_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,

    /// Partition assignment strategy: cooperative-sticky (incremental rebalances) or range / roundrobin.
    #[arg(long, env = "LOGSTREAM_KAFKA_ASSIGNMENT_STRATEGY", default_value = "cooperative-sticky",
          value_parser = ["cooperative-sticky", "range", "roundrobin"])]
    pub assignment_strategy: String,

    /// Kafka group session timeout: how soon a dead collector's partitions move to another.
    #[arg(long, env = "LOGSTREAM_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(3_000..=300_000))]
    pub session_timeout_ms: u64,

    /// Largest number of records in one database transaction.
    #[arg(long, env = "LOGSTREAM_BATCH_MAX_EVENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_max_events: u64,

    /// Longest a record waits in an open batch before the batch is written.
    #[arg(long, env = "LOGSTREAM_BATCH_MAX_WAIT_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_max_wait_ms: u64,

    /// Records buffered between the Kafka consumer and the writer (bounds memory).
    #[arg(long, env = "LOGSTREAM_QUEUE_CAPACITY", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub queue_capacity: u64,

    /// Tumbling window sizes for aggregates, in seconds, comma-separated.
    #[arg(long, env = "LOGSTREAM_WINDOW_SIZES_SECONDS", default_value = "10,60",
          value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub window_sizes_seconds: Vec<u32>,

    /// Stored events older than this (by event time) are deleted.
    #[arg(long, env = "LOGSTREAM_RETENTION_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub retention_hours: u64,

    #[command(flatten)]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub common: CommonSettings,
}
