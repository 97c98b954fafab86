//! Tailing files (`LOGSTREAM_FILE_PATHS`): paths and globs, looked at again every poll, so new
//! files are found; rotation by rename-and-create (the open handle is read to its end) and by
//! copytruncate (the copy, found by its first line, is read on from where the file was);
//! multi-line events; each line in Kafka exactly once across crashes, through Kafka transactions
//! that carry the events and the checkpoint together ([`checkpoint`]).
//!
//! - [`discover`]: which files the patterns name now.
//! - [`fingerprint`]: a file's identity by its first line.
//! - [`tail`]: one file's handle, offsets and multi-line state.
//! - [`source`]: the reader (look, read, join, hand batches over).
//! - [`committer`]: each batch as one transaction, while the reader reads on.
//! - [`transaction`]: the transactional producer.

mod checkpoint;
mod committer;
mod discover;
mod fingerprint;
mod source;
mod tail;
mod transaction;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use logstream_core::ingest::multiline::StartRule;
use logstream_core::ingest::text_line::LineFormat;
use logstream_service::retry::Backoff;
use logstream_service::settings::KafkaSettings;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio_util::sync::CancellationToken;

use crate::accounting::Accounting;

/// The file source's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// Files to tail: paths and globs, comma-separated (e.g. `/var/log/*.log`); empty: none.
    /// Include the rotated names (`app.log*`) so lines written just before a rotation are
    /// found after a restart too.
    #[arg(
        long,
        env = "LOGSTREAM_FILE_PATHS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub file_paths: Vec<String>,

    /// File names never tailed (globs, comma-separated): compressed rotations.
    #[arg(
        long,
        env = "LOGSTREAM_FILE_EXCLUDE",
        value_delimiter = ',',
        default_value = "*.gz,*.bz2,*.xz,*.zst,*.zip,*.lz4"
    )]
    pub file_exclude: Vec<String>,

    /// Format of the files' lines: `auto` (JSON objects as shippers write them, syslog, Apache,
    /// anything else as a plain message) or a format name (`json`, `apache`, `syslog5424`,
    /// `syslog3164`).
    #[arg(long, env = "LOGSTREAM_FILE_FORMAT", default_value = "auto")]
    pub file_format: String,

    /// A regular expression matching the lines that start an event; other lines continue the
    /// event before them. Unset: a line starting with a space or a tab continues (Java and
    /// Python stack traces).
    #[arg(long, env = "LOGSTREAM_FILE_MULTILINE_START")]
    pub file_multiline_start: Option<String>,

    /// An event whose next line has not come for this long is complete.
    #[arg(long, env = "LOGSTREAM_FILE_MULTILINE_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub file_multiline_timeout_ms: u64,

    /// How often the patterns are looked at again (new, renamed, truncated files).
    #[arg(long, env = "LOGSTREAM_FILE_POLL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub file_poll_ms: u64,

    /// How often the events read are committed to Kafka (one transaction, with the checkpoint).
    #[arg(long, env = "LOGSTREAM_FILE_COMMIT_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub file_commit_ms: u64,

    /// Most events in one transaction. A commit costs about 100 ms however small it is (the
    /// broker's transaction round trips), so big batches are what carries a high rate; one batch
    /// is read while the one before commits.
    #[arg(long, env = "LOGSTREAM_FILE_MAX_BATCH", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub file_max_batch: u64,

    /// Most bytes of records in one transaction. At most three batches are held: one being
    /// read, one handed over and waiting, one committing.
    #[arg(long, env = "LOGSTREAM_FILE_MAX_BATCH_BYTES", default_value_t = 32 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65_536..=1024 * 1024 * 1024))]
    pub file_max_batch_bytes: u64,

    /// Where files found with no checkpoint at the first look are read from: `beginning` or
    /// `end`. Files that appear later are always read from their beginning.
    #[arg(long, env = "LOGSTREAM_FILE_START_AT", default_value = "beginning",
          value_parser = ["beginning", "end"])]
    pub file_start_at: String,

    /// Service of the events that name none. Unset: the file's name up to its first dot
    /// (`/var/log/payments.log` → `payments`).
    #[arg(long, env = "LOGSTREAM_FILE_SERVICE")]
    pub file_service: Option<String>,

    /// The file source's identity, kept across restarts: its Kafka transactional id
    /// (`logstream-ingest-<id>`), its checkpoint's key, and its records' `instance-id`
    /// (`files-<id>`). Unset: the host's name. Two ingest services must not share one.
    #[arg(long, env = "LOGSTREAM_FILE_SOURCE_ID")]
    pub file_source_id: Option<String>,

    /// Compacted topic holding the file source's checkpoints.
    #[arg(
        long,
        env = "LOGSTREAM_FILE_CHECKPOINT_TOPIC",
        default_value = "ingest.checkpoints"
    )]
    pub file_checkpoint_topic: String,

    /// A file gone (not named by the patterns, read to its end) this long is dropped from the
    /// checkpoint.
    #[arg(long, env = "LOGSTREAM_FILE_FORGET_AFTER_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub file_forget_after_seconds: u64,
}

impl FileArgs {
    fn enabled(&self) -> bool {
        !listed(&self.file_paths).is_empty()
    }

    fn source_id(&self) -> String {
        self.file_source_id.clone().unwrap_or_else(|| {
            logstream_service::settings::hostname().unwrap_or_else(|| "host".to_owned())
        })
    }

    /// The settings checked together; the error names the setting.
    fn settings(&self, max_line: usize) -> anyhow::Result<source::Settings> {
        let patterns =
            discover::Patterns::new(&listed(&self.file_paths), &listed(&self.file_exclude))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "LOGSTREAM_FILE_PATHS / LOGSTREAM_FILE_EXCLUDE: bad pattern {e}"
                    )
                })?;
        let format = LineFormat::parse(&self.file_format).ok_or_else(|| {
            anyhow::anyhow!(
                "LOGSTREAM_FILE_FORMAT: {:?} is not auto, json, apache, syslog5424 or syslog3164",
                self.file_format
            )
        })?;
        let start = match &self.file_multiline_start {
            None => StartRule::NotIndented,
            Some(pattern) => StartRule::Pattern(
                regex::bytes::Regex::new(pattern)
                    .map_err(|e| anyhow::anyhow!("LOGSTREAM_FILE_MULTILINE_START: {e}"))?,
            ),
        };
        if let Some(service) = &self.file_service {
            if service.trim().is_empty() || service.len() > 256 {
                anyhow::bail!("LOGSTREAM_FILE_SERVICE must be 1 to 256 bytes");
            }
        }
        let id = self.source_id();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            anyhow::bail!(
                "LOGSTREAM_FILE_SOURCE_ID must be letters, digits, '-', '_' or '.'; got {id:?}"
            );
        }
        Ok(source::Settings {
            patterns,
            format,
            start,
            max_line,
            multiline_idle_ms: self.file_multiline_timeout_ms as i64,
            poll: Duration::from_millis(self.file_poll_ms),
            commit_interval: Duration::from_millis(self.file_commit_ms),
            max_batch: self.file_max_batch as usize,
            max_batch_bytes: self.file_max_batch_bytes as usize,
            start_at_end: self.file_start_at == "end",
            service: self.file_service.clone(),
            forget_after: Duration::from_secs(self.file_forget_after_seconds),
        })
    }

    /// Checks the settings at start (the error names the setting).
    pub fn validate(&self, max_line: usize) -> anyhow::Result<()> {
        self.settings(max_line).map(|_| ())
    }
}

/// A comma-separated setting's items, trimmed, without empty ones.
fn listed(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// One tailed file's state, as `GET /api/v1/ingest/status` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FileStatus {
    /// Where it was last seen.
    pub path: String,
    /// Its identity: a checksum of its first line (hex).
    pub fingerprint: String,
    /// Open (read as it grows), or remembered in the checkpoint.
    pub open: bool,
    /// Its size when last read.
    pub size: u64,
    /// Bytes from its start whose events are committed to Kafka.
    pub committed_offset: u64,
    /// Events committed from it by this process.
    pub events: u64,
    /// The last thing it was warned about.
    pub last_warning: Option<String>,
}

/// The file source's metrics.
pub struct FileMetrics {
    committed: IntCounter,
    aborted: IntCounter,
    warnings: IntCounterVec,
    lag_bytes: IntGauge,
    files: IntGauge,
    commit_seconds: prometheus::Histogram,
}

impl FileMetrics {
    fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let r = logstream_service::metrics::Registrar(registry);
        let transactions = r.counter_vec(
            "ingest_file_transactions_total",
            "Kafka transactions of the file source (events and checkpoint), by outcome: committed, or aborted (its lines are read again)",
            &["outcome"],
        )?;
        Ok(Self {
            committed: transactions.with_label_values(&["committed"]),
            aborted: transactions.with_label_values(&["aborted"]),
            warnings: r.counter_vec(
                "ingest_file_warnings_total",
                "Things the file source met and went on from, by kind: truncated, unreadable_file, unreadable_path, read_error, not_utf8",
                &["kind"],
            )?,
            lag_bytes: r.gauge(
                "ingest_file_lag_bytes",
                "Bytes of the open tailed files not yet committed to Kafka",
            )?,
            files: r.gauge(
                "ingest_files_tracked",
                "Files the file source follows or remembers in its checkpoint",
            )?,
            commit_seconds: r.histogram(
                "ingest_file_commit_seconds",
                "Time the file source waits for one Kafka transaction to commit (its records acknowledged, then the commit)",
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            )?,
        })
    }

    fn warning(&self, kind: &str) {
        self.warnings.with_label_values(&[kind]).inc();
    }
}

/// Every tailed file's state.
pub struct Files {
    metrics: FileMetrics,
    state: Mutex<Vec<FileStatus>>,
}

impl Files {
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        Ok(Self {
            metrics: FileMetrics::register(registry)?,
            state: Mutex::new(Vec::new()),
        })
    }

    pub fn status(&self) -> Vec<FileStatus> {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, files: Vec<FileStatus>) {
        if let Ok(mut state) = self.state.lock() {
            *state = files;
        }
    }
}

/// What the file source needs from the rest of the service.
pub struct Context {
    pub kafka: KafkaSettings,
    pub compression: String,
    pub max_line: usize,
    pub accounting: Arc<Accounting>,
    pub files: Arc<Files>,
}

/// Starts the file source when paths are set: it makes its topic and producer and reads its
/// checkpoint (retrying while Kafka is not there), then tails until `shutdown`, committing what
/// it read before it returns.
pub fn start(
    args: &FileArgs,
    context: Context,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if !args.enabled() {
        return Ok(None);
    }
    let settings = args.settings(context.max_line)?;
    let id = args.source_id();
    let target = transaction::Target {
        brokers: context.kafka.kafka_brokers.clone(),
        topic: context.kafka.topic_raw.clone(),
        checkpoint_topic: args.file_checkpoint_topic.clone(),
        key: id.clone(),
        instance_id: format!("files-{id}"),
        compression: context.compression.clone(),
        timeout: Duration::from_secs(30),
    };
    tracing::info!(paths = ?args.file_paths, instance_id = %target.instance_id, "file source starting");
    Ok(Some(tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let (producer, checkpoint) = loop {
            match prepare(&context.kafka, &target).await {
                Ok(ready) => break ready,
                Err(e) => {
                    tracing::warn!(error = %e, "file source cannot start yet; trying again");
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                }
            }
        };
        let source = source::FileSource::new(
            settings,
            target,
            context.accounting,
            context.files,
            checkpoint,
        );
        let run = tokio::task::spawn_blocking(move || source.run(producer, shutdown));
        if let Err(e) = run.await {
            tracing::error!(error = %e, "file source stopped unexpectedly");
        }
    })))
}

/// The checkpoint topic, the transactional producer (fencing an earlier instance, whose open
/// transaction is aborted), then the last committed checkpoint.
async fn prepare(
    kafka: &KafkaSettings,
    target: &transaction::Target,
) -> anyhow::Result<(transaction::Transactions, Option<checkpoint::Checkpoint>)> {
    checkpoint::ensure_topic(kafka, &target.checkpoint_topic).await?;
    let target = target.clone();
    tokio::task::spawn_blocking(move || {
        let producer = transaction::Transactions::open(&target)?;
        let checkpoint = checkpoint::load(
            &target.brokers,
            &target.checkpoint_topic,
            &target.key,
            target.timeout,
        )?;
        anyhow::Ok((producer, checkpoint))
    })
    .await?
}
