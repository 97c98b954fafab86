//! WebSocket fan-in (`LOGSTREAM_WS_SOURCES`): the service connects to upstream `ws://` and
//! `wss://` URLs (the generator's `/ws/logs`, or any server streaming events as JSON or text
//! lines) and takes their events into Kafka like any other source (`websocket`).
//!
//! - [`upstream`]: one reader task per upstream: connect, read frames, ping, detect a stall,
//!   reconnect with jittered exponential backoff ([`backoff`]); [`connect`] makes one connection
//!   (TCP, TLS from [`tls`], handshake with the frame size limit).
//! - [`queue`]: the bounded queue from the readers to the workers, in frames and in bytes, an
//!   equal share per upstream; a frame that does not fit is dropped and counted, never waited for.
//! - [`pool`]: the parser workers: frame → events ([`parse`]) → Kafka, without waiting.
//! - [`status`]: each upstream's state and counters (`websocket` in `/api/v1/ingest/status`).
//!
//! Memory is bounded: frames queued or being parsed take at most
//! `LOGSTREAM_WS_MAX_BUFFERED_BYTES`; each connection adds its read buffer (128 KiB) and at most
//! one frame being read (`LOGSTREAM_WS_MAX_FRAME_BYTES`). Accounting: every event counts as
//! received once and ends sent, rejected or dropped; a frame dropped or refused whole before it
//! was read counts as one event.

mod backoff;
mod connect;
mod parse;
mod pool;
mod queue;
mod status;
mod tls;
mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

pub use pool::FanIn;
pub use status::{UpstreamStatus, Upstreams};

/// The WebSocket fan-in's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WsArgs {
    /// Upstream `ws://` or `wss://` URLs to read events from (e.g. the generator's
    /// `ws://host:8080/ws/logs?interval_ms=100`), comma-separated (a comma inside a URL is
    /// written %2C); empty: none. Each frame holds an event as JSON, or NDJSON or text lines.
    #[arg(
        long,
        env = "LOGSTREAM_WS_SOURCES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub ws_sources: Vec<String>,

    /// Parser workers: they read the queued frames into events and hand them to Kafka.
    #[arg(long, env = "LOGSTREAM_WS_WORKERS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub ws_workers: u32,

    /// Frames waiting for the parser workers, at most, split evenly between the upstreams; a
    /// frame its upstream's share has no room for is dropped (counted, reason `overflow`).
    #[arg(long, env = "LOGSTREAM_WS_QUEUE_FRAMES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub ws_queue_frames: u32,

    /// Bytes of frames waiting for or being read by the parser workers, at most, split evenly
    /// between the upstreams (each share must hold one frame of the largest size); a frame its
    /// upstream's share has no room for is dropped (counted, reason `overflow`).
    #[arg(long, env = "LOGSTREAM_WS_MAX_BUFFERED_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65_536..=16 * 1024 * 1024 * 1024))]
    pub ws_max_buffered_bytes: u64,

    /// Largest frame (message) accepted: a larger one is refused from its header, never
    /// buffered; it counts as a rejected event (`too_large`) and the connection is made again.
    #[arg(long, env = "LOGSTREAM_WS_MAX_FRAME_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub ws_max_frame_bytes: u64,

    /// How long connecting to an upstream (TCP, TLS and the WebSocket handshake) may take.
    #[arg(long, env = "LOGSTREAM_WS_CONNECT_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub ws_connect_timeout_ms: u64,

    /// An upstream from which nothing came (no frame, no answer to the pings) for this long is
    /// stalled: its connection is dropped and made again.
    #[arg(long, env = "LOGSTREAM_WS_STALL_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub ws_stall_timeout_ms: u64,

    /// How often a Ping goes to each upstream (shorter than the stall timeout), so a quiet but
    /// live upstream answers and is not taken for stalled.
    #[arg(long, env = "LOGSTREAM_WS_PING_INTERVAL_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub ws_ping_interval_ms: u64,

    /// The first wait before connecting again after a connection ended or failed; it doubles
    /// with each failure (with jitter), up to the maximum, and starts again after a connection
    /// that delivered frames or lived 10 s.
    #[arg(long, env = "LOGSTREAM_WS_BACKOFF_INITIAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub ws_backoff_initial_ms: u64,

    /// The longest wait before connecting again.
    #[arg(long, env = "LOGSTREAM_WS_BACKOFF_MAX_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub ws_backoff_max_ms: u64,

    /// PEM file of the certificates `wss://` upstreams are checked against. Unset: the system's
    /// bundle (/etc/ssl/certs/ca-certificates.crt or the like).
    #[arg(long, env = "LOGSTREAM_WS_CA_FILE")]
    pub ws_ca_file: Option<PathBuf>,
}

impl WsArgs {
    /// Settings that cannot be checked one by one; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let upstreams = self.targets()?.len().max(1) as u64;
        let share = self.ws_max_buffered_bytes / upstreams;
        if share < self.ws_max_frame_bytes {
            anyhow::bail!(
                "LOGSTREAM_WS_MAX_BUFFERED_BYTES ({}) split between {upstreams} upstream(s) leaves {share} bytes each, less than one frame of LOGSTREAM_WS_MAX_FRAME_BYTES ({}): raise the one or lower the other",
                self.ws_max_buffered_bytes,
                self.ws_max_frame_bytes
            );
        }
        if self.ws_ping_interval_ms >= self.ws_stall_timeout_ms {
            anyhow::bail!(
                "LOGSTREAM_WS_PING_INTERVAL_MS ({}) must be shorter than LOGSTREAM_WS_STALL_TIMEOUT_MS ({})",
                self.ws_ping_interval_ms,
                self.ws_stall_timeout_ms
            );
        }
        if self.ws_backoff_max_ms < self.ws_backoff_initial_ms {
            anyhow::bail!(
                "LOGSTREAM_WS_BACKOFF_MAX_MS ({}) must not be under LOGSTREAM_WS_BACKOFF_INITIAL_MS ({})",
                self.ws_backoff_max_ms,
                self.ws_backoff_initial_ms
            );
        }
        Ok(())
    }

    /// The upstreams, in the order given (blank entries skipped).
    fn targets(&self) -> anyhow::Result<Vec<connect::Target>> {
        self.ws_sources
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                connect::Target::parse(s).map_err(|e| anyhow::anyhow!("LOGSTREAM_WS_SOURCES: {e}"))
            })
            .collect()
    }

    fn timing(&self) -> upstream::Timing {
        let ms = Duration::from_millis;
        upstream::Timing {
            connect_timeout: ms(self.ws_connect_timeout_ms),
            stall_timeout: ms(self.ws_stall_timeout_ms),
            ping_interval: ms(self.ws_ping_interval_ms),
            backoff_first: ms(self.ws_backoff_initial_ms),
            backoff_max: ms(self.ws_backoff_max_ms),
        }
    }
}

/// The WebSocket limits of every connection: no message or frame over `max_frame_bytes`.
fn frame_limits(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Starts one reader per upstream and the parser pool; they run until `shutdown`: then the
/// readers close their connections and the workers finish the frames queued, and the tasks end.
pub fn start(
    args: &WsArgs,
    fan_in: FanIn,
    shutdown: CancellationToken,
) -> anyhow::Result<(Arc<Upstreams>, JoinSet<()>)> {
    args.validate()?;
    let targets = args.targets()?;
    let mut tasks = JoinSet::new();
    if targets.is_empty() {
        return Ok((Arc::new(Upstreams::default()), tasks));
    }
    let tls = if targets.iter().any(|t| t.tls) {
        Some(tls::connector(args.ws_ca_file.as_deref())?)
    } else {
        None
    };
    let n = targets.len();
    let share_frames = (args.ws_queue_frames as usize / n).max(1);
    let share_bytes = usize::try_from(args.ws_max_buffered_bytes / n as u64).unwrap_or(usize::MAX);
    let max_frame = usize::try_from(args.ws_max_frame_bytes).unwrap_or(usize::MAX);
    let (queue, receiver) = queue::queue(share_frames * n);

    let accounting = fan_in.accounting.clone();
    let workers = Arc::new(pool::Workers::new(fan_in));
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    for _ in 0..args.ws_workers {
        tasks.spawn(pool::work(receiver.clone(), workers.clone()));
    }
    // The readers hold the queue's sending end: when the last one ends, the workers finish.
    let readers = Arc::new(upstream::Readers {
        queue,
        accounting,
        tls,
        config: frame_limits(max_frame),
        timing: args.timing(),
    });
    let mut each = Vec::with_capacity(n);
    for target in targets {
        let state = Arc::new(status::Upstream::new(
            target.shown.clone(),
            target.host.clone(),
        ));
        each.push(state.clone());
        tracing::info!(upstream = %target.shown, "websocket upstream configured");
        let reader = upstream::Reader {
            target,
            upstream: state,
            share: queue::Share::new(share_frames, share_bytes),
            readers: readers.clone(),
        };
        tasks.spawn(reader.run(shutdown.clone()));
    }
    tracing::info!(
        upstreams = n,
        workers = args.ws_workers,
        share_frames,
        share_bytes,
        "websocket fan-in started"
    );
    Ok((Arc::new(Upstreams::new(each)), tasks))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        ws: WsArgs,
    }

    fn args(flags: &[&str]) -> WsArgs {
        Settings::try_parse_from(std::iter::once("ingest").chain(flags.iter().copied()))
            .expect("flags parse")
            .ws
    }

    fn error(flags: &[&str]) -> String {
        match args(flags).validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_defaults_are_valid_and_read_no_upstream() {
        let a = args(&[]);
        assert!(a.validate().is_ok());
        assert!(a.targets().expect("targets").is_empty());
        assert_eq!((a.ws_workers, a.ws_max_frame_bytes), (2, 1024 * 1024));
    }

    #[test]
    fn sources_are_a_comma_separated_list_of_ws_urls() {
        let a = args(&["--ws-sources", " ws://a:8080/ws/logs , ,wss://b/x"]);
        let hosts: Vec<String> = a
            .targets()
            .expect("targets")
            .into_iter()
            .map(|t| t.host)
            .collect();
        assert_eq!(hosts, ["a", "b"]);
        assert!(error(&["--ws-sources", "ws://a/,http://b/"]).starts_with("LOGSTREAM_WS_SOURCES:"));
    }

    #[test]
    fn limits_that_do_not_fit_together_name_their_settings() {
        let small = [
            "--ws-sources",
            "ws://a/,ws://b/",
            "--ws-max-buffered-bytes",
            "1048576",
        ];
        assert!(error(&small).starts_with("LOGSTREAM_WS_MAX_BUFFERED_BYTES"));
        let fits = [&small[..], &["--ws-max-frame-bytes", "524288"][..]].concat();
        assert_eq!(error(&fits), "");
        let ping = [
            "--ws-ping-interval-ms",
            "10000",
            "--ws-stall-timeout-ms",
            "10000",
        ];
        assert!(error(&ping).starts_with("LOGSTREAM_WS_PING_INTERVAL_MS"));
        let backoff = [
            "--ws-backoff-initial-ms",
            "1000",
            "--ws-backoff-max-ms",
            "999",
        ];
        assert!(error(&backoff).starts_with("LOGSTREAM_WS_BACKOFF_MAX_MS"));
    }

    #[test]
    fn frames_over_the_limit_are_refused_by_the_connection() {
        let config = frame_limits(1 << 20);
        assert_eq!(config.max_frame_size, Some(1 << 20));
        assert_eq!(config.max_message_size, Some(1 << 20));
    }
}
