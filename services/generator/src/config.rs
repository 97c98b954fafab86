//! The generator's settings: every one a flag and a `LOGSTREAM_*` variable with a default.

use std::net::SocketAddr;

use clap::Parser;
use logstream_service::settings::{BreakerArgs, CommonSettings, KafkaSettings};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "logstream-generator",
    version,
    about = "Generates log events at a controlled rate into Kafka"
)]
pub struct Config {
    /// Address the HTTP API (control, metrics, health) listens on.
    #[arg(
        long,
        env = "LOGSTREAM_GENERATOR_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// This instance's id, carried in every record's `instance-id` header. Defaults to the
    /// host name plus a random suffix, so a restarted process never reuses an old id's seq values.
    #[arg(long, env = "LOGSTREAM_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// URL under which the gateway reaches this instance (registered in Redis). `{hostname}`
    /// in it is replaced by the host name (a container's id), so replicas of one definition
    /// (compose `--scale`) each advertise their own, e.g. `http://{hostname}:8080`.
    #[arg(long, env = "LOGSTREAM_GENERATOR_ADVERTISE_URL",
          value_parser = logstream_service::settings::with_hostname)]
    pub advertise_url: Option<String>,

    /// Rate used when a start request names none.
    #[arg(long, env = "LOGSTREAM_RATE_PER_SECOND", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub rate_per_second: u64,

    /// Redis URL, for instance registration.
    #[arg(
        long,
        env = "LOGSTREAM_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Kafka producer compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "LOGSTREAM_KAFKA_COMPRESSION", default_value = "lz4",
          value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub kafka_compression: String,

    /// How long the producer waits to fill a batch.
    #[arg(long, env = "LOGSTREAM_KAFKA_LINGER_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub kafka_linger_ms: u64,

    /// How long Kafka may take to acknowledge a record before it counts as failed. Longer than
    /// a broker pause the breaker rides out (a record that times out may still have been
    /// written), shorter than the gateway's call timeout (60 s), which a stop waits within.
    #[arg(long, env = "LOGSTREAM_KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 45_000,
          value_parser = clap::value_parser!(u64).range(1000..=900_000))]
    pub kafka_message_timeout_ms: u64,

    /// Cap on the events per second of all generator instances together, enforced through
    /// Redis (a start request may override it). Unset: no global cap.
    #[arg(long, env = "LOGSTREAM_GLOBAL_RATE_PER_SECOND",
          value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub global_rate_per_second: Option<u64>,

    /// Generation threads (a start request may override it). One thread holds ±2% to about
    /// 150,000 events/s on this project's 2-core reference machine; two reach 200,000.
    #[arg(long, env = "LOGSTREAM_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// Events a thread generates between clock checks (a start request may override it).
    #[arg(long, env = "LOGSTREAM_BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,

    #[command(flatten)]
    pub breaker: BreakerArgs,

    #[command(flatten)]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub common: CommonSettings,
}

impl Config {
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            let host = hostname();
            format!("{host}-{:08x}", rand::random::<u32>())
        })
    }

    pub fn advertise_url(&self) -> String {
        self.advertise_url.clone().unwrap_or_else(|| {
            let port = self.listen.port();
            let ip = self.listen.ip();
            let host = if ip.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                ip.to_string()
            };
            format!("http://{host}:{port}")
        })
    }
}

/// The machine's host name, or `generator`.
pub fn hostname() -> String {
    logstream_service::settings::hostname().unwrap_or_else(|| "generator".to_owned())
}
