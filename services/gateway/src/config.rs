//! The gateway's settings: every one a flag and a `LOGSTREAM_*` variable with a default.

use std::net::SocketAddr;

use clap::Parser;
use logstream_service::settings::{CommonSettings, DatabaseSettings, KafkaSettings, RulesSettings};

#[derive(Clone, Parser)]
#[command(
    name = "logstream-gateway",
    version,
    about = "Public REST API of logstream"
)]
pub struct Config {
    /// Address the REST API listens on.
    #[arg(long, env = "LOGSTREAM_GATEWAY_LISTEN", default_value = "0.0.0.0:8090")]
    pub listen: SocketAddr,

    /// Generator instances always used, comma-separated base URLs (e.g. http://127.0.0.1:8080).
    /// Instances registered in Redis are added to these.
    #[arg(long, env = "LOGSTREAM_GENERATOR_URLS", value_delimiter = ',')]
    pub generator_urls: Vec<String>,

    /// Redis URL, where generator instances register themselves.
    #[arg(
        long,
        env = "LOGSTREAM_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Bearer token required on control endpoints (start/stop). Unset: no token required.
    #[arg(long, env = "LOGSTREAM_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Bearer token required on the read endpoints (status, stats, windows, alerts), which also
    /// accept the control token. Unset: reads are open. The OpenAPI document is always open.
    #[arg(long, env = "LOGSTREAM_API_READ_TOKEN", hide_env_values = true)]
    pub api_read_token: Option<String>,

    /// Timeout of one call to a generator instance.
    #[arg(long, env = "LOGSTREAM_GENERATOR_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub generator_timeout_seconds: u64,

    /// Requests per minute per client on control routes (POST).
    #[arg(long, env = "LOGSTREAM_RATE_LIMIT_CONTROL_PER_MINUTE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_control_per_minute: u32,

    /// Requests per minute per client on read routes (GET).
    #[arg(long, env = "LOGSTREAM_RATE_LIMIT_READ_PER_MINUTE", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_read_per_minute: u32,

    /// Per-route overrides, requests per minute: `ROUTE=N,...` with the route template, e.g.
    /// `/api/v1/generator/start=10,/api/v1/stats/{service}=300`.
    #[arg(long, env = "LOGSTREAM_RATE_LIMITS", default_value = "",
          value_parser = crate::ratelimit::parse_overrides)]
    pub rate_limits: std::collections::HashMap<String, u32>,

    /// Most live tails (`GET /api/v1/tail`) followed at once; more are refused with 503.
    #[arg(long, env = "LOGSTREAM_TAIL_MAX_CLIENTS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tail_max_clients: u32,

    /// Events buffered per live tail; a follower reading slower skips events (and is told how
    /// many).
    #[arg(long, env = "LOGSTREAM_TAIL_BUFFER", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub tail_buffer: u32,

    /// Where the live tail reads events (`LOGSTREAM_TOPIC_RAW` on `LOGSTREAM_KAFKA_BROKERS`);
    /// the gateway reads only, and only while someone follows.
    #[command(flatten)]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub rules: RulesSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub common: CommonSettings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("generator_urls", &self.generator_urls)
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .field(
                "api_read_token",
                &self.api_read_token.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}
