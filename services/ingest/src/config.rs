//! The ingest service's settings: every one a flag and a `LOGSTREAM_*` variable with a default.

use std::net::SocketAddr;

use clap::Parser;
use logstream_service::settings::{BreakerArgs, CommonSettings, KafkaSettings};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "logstream-ingest",
    version,
    about = "Takes logs over HTTP (NDJSON, JSON, text lines) and syslog (UDP, TCP) into Kafka"
)]
pub struct Config {
    /// Address the HTTP API (ingest, status, metrics, health) listens on.
    #[arg(long, env = "LOGSTREAM_INGEST_LISTEN", default_value = "0.0.0.0:8082")]
    pub listen: SocketAddr,

    /// Address the syslog TCP listener binds (RFC 6587: octet counting and LF framing);
    /// `off` disables it.
    #[arg(long, env = "LOGSTREAM_SYSLOG_TCP_LISTEN", default_value = "0.0.0.0:5514",
          value_parser = parse_listen)]
    pub syslog_tcp_listen: Listen,

    /// Address the syslog UDP listener binds (one message per datagram); `off` disables it.
    #[arg(long, env = "LOGSTREAM_SYSLOG_UDP_LISTEN", default_value = "0.0.0.0:5514",
          value_parser = parse_listen)]
    pub syslog_udp_listen: Listen,

    /// Address the syslog TLS listener binds (RFC 5425, framed as over TCP), used when a
    /// certificate and key are set; `off` disables it.
    #[arg(long, env = "LOGSTREAM_SYSLOG_TLS_LISTEN", default_value = "0.0.0.0:6514",
          value_parser = parse_listen)]
    pub syslog_tls_listen: Listen,

    /// PEM file of the syslog TLS listener's certificate chain (server certificate first).
    /// With LOGSTREAM_SYSLOG_TLS_KEY, turns the TLS listener on.
    #[arg(long, env = "LOGSTREAM_SYSLOG_TLS_CERT")]
    pub syslog_tls_cert: Option<std::path::PathBuf>,

    /// PEM file of the syslog TLS listener's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "LOGSTREAM_SYSLOG_TLS_KEY")]
    pub syslog_tls_key: Option<std::path::PathBuf>,

    /// Receive buffer of the syslog UDP socket (SO_RCVBUF): datagrams arriving faster than they
    /// are read wait here; what overflows it the kernel drops (counted as dropped, reason
    /// `receive_buffer`). The kernel caps it at net.core.rmem_max.
    #[arg(long, env = "LOGSTREAM_SYSLOG_UDP_RECV_BUFFER_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(65_536..=1_073_741_824))]
    pub syslog_udp_recv_buffer_bytes: u32,

    /// Bearer token the HTTP ingest endpoints require (`Authorization: Bearer <token>`).
    /// Unset: no token needed.
    #[arg(long, env = "LOGSTREAM_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,

    /// Largest request body, as sent and once decompressed (413 above it).
    #[arg(long, env = "LOGSTREAM_INGEST_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Largest line, JSON object or syslog message; a longer one is rejected alone.
    #[arg(long, env = "LOGSTREAM_INGEST_MAX_LINE_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=800_000))]
    pub max_line_bytes: u64,

    /// Most events one request body may hold (413 above: send smaller batches); with the body
    /// limit and the concurrent requests it bounds the memory requests take.
    #[arg(long, env = "LOGSTREAM_INGEST_MAX_EVENTS_PER_REQUEST", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_events_per_request: u64,

    /// Request bodies read and taken apart at once, at most (others wait their turn).
    #[arg(long, env = "LOGSTREAM_INGEST_MAX_CONCURRENT_REQUESTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_requests: u32,

    /// Requests to the event endpoints (`/api/v1/logs`, `/_bulk`) one client may make per
    /// minute, counted in Redis (shared by every ingest instance; a local count while Redis is
    /// unreachable); the client is its IP address. 0: no limit.
    #[arg(long, env = "LOGSTREAM_INGEST_RATE_LIMIT_PER_MINUTE", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
    pub rate_limit_per_minute: u32,

    /// Redis of the per-client rate limit (used only when the limit is set).
    #[arg(
        long,
        env = "LOGSTREAM_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Service of events that name none (a plain line, an object without `service`), unless
    /// the request names one (`?service=`).
    #[arg(
        long,
        env = "LOGSTREAM_INGEST_DEFAULT_SERVICE",
        default_value = "unknown"
    )]
    pub default_service: String,

    /// Most syslog TCP connections open at once; more are refused (and counted).
    #[arg(long, env = "LOGSTREAM_SYSLOG_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub syslog_max_connections: u32,

    /// Records of one syslog TCP connection handed to Kafka and not yet acknowledged, at most;
    /// at the limit the connection is not read (backpressure).
    #[arg(long, env = "LOGSTREAM_SYSLOG_TCP_IN_FLIGHT", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub syslog_tcp_in_flight: u32,

    /// This instance's id, carried in every record's `instance-id` header. Defaults to
    /// `ingest-` plus the host name and a random suffix, so a restarted process never reuses
    /// an old id's seq values.
    #[arg(long, env = "LOGSTREAM_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Kafka producer compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "LOGSTREAM_KAFKA_COMPRESSION", default_value = "lz4",
          value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub kafka_compression: String,

    /// How long the producer waits to fill a batch.
    #[arg(long, env = "LOGSTREAM_KAFKA_LINGER_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub kafka_linger_ms: u64,

    /// How long Kafka may take to acknowledge a record before it counts as failed (the HTTP
    /// answer waits at most this long, then says 503).
    #[arg(long, env = "LOGSTREAM_KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1000..=900_000))]
    pub kafka_message_timeout_ms: u64,

    #[command(flatten)]
    pub files: crate::file::FileArgs,

    #[command(flatten)]
    pub websocket: crate::websocket::WsArgs,

    #[command(flatten)]
    pub breaker: BreakerArgs,

    #[command(flatten)]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub common: CommonSettings,
}

/// A listener's address, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(value: &str) -> Result<Listen, String> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    value
        .trim()
        .parse::<SocketAddr>()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{value:?} is not host:port or `off`: {e}"))
}

impl Config {
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            let host = logstream_service::settings::hostname().unwrap_or_else(|| "host".to_owned());
            format!("ingest-{host}-{:08x}", rand::random::<u32>())
        })
    }

    /// Settings that cannot be checked one by one.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.default_service.trim().is_empty() || self.default_service.len() > 256 {
            anyhow::bail!("LOGSTREAM_INGEST_DEFAULT_SERVICE must be 1 to 256 bytes");
        }
        if self.max_line_bytes > self.max_body_bytes {
            anyhow::bail!(
                "LOGSTREAM_INGEST_MAX_LINE_BYTES ({}) must not exceed LOGSTREAM_INGEST_MAX_BODY_BYTES ({})",
                self.max_line_bytes,
                self.max_body_bytes
            );
        }
        if self
            .ingest_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            anyhow::bail!("LOGSTREAM_INGEST_TOKEN is set but empty");
        }
        if self.syslog_tls_cert.is_some() != self.syslog_tls_key.is_some() {
            anyhow::bail!(
                "LOGSTREAM_SYSLOG_TLS_CERT and LOGSTREAM_SYSLOG_TLS_KEY go together: set both or neither"
            );
        }
        self.breaker.settings().map_err(anyhow::Error::msg)?;
        self.websocket.validate()?;
        self.files.validate(self.max_line_bytes as usize)?;
        Ok(())
    }
}
