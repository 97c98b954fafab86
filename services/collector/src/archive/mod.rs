//! Archives: `s3://BUCKET/PREFIX=RULE` routes. Unlike the other routes, which go with each
//! stored batch, an archive reads the topic on its own (its own consumer group and progress in
//! PostgreSQL), so a slow or unreachable bucket pauses only the archive:
//!
//! 1. `source`: the archive's Kafka member, on its own thread, starting each partition where
//!    `progress` says; pauses while the archiver is behind.
//! 2. `archiver`: segments of offsets per partition (`logstream_core::archive`), closed by
//!    size or age: claim the span (`progress`), upload its objects (`s3`), complete the span.
//!
//! Exactly once in the archive: a span is claimed before its objects are uploaded, and objects
//! are named by their span, so whoever closes it again (after a crash, a rebalance) writes the
//! same objects under the same keys; the progress moves only after every upload succeeded.

pub mod archiver;
pub mod cluster;
pub mod progress;
pub mod s3;
pub mod source;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use logstream_core::archive::{key_segment, Limits};
use logstream_core::enrich::{Enricher, Sources};
use logstream_core::route::{Destination, Routing};
use logstream_service::retry::Backoff;
use logstream_service::shutdown::CancellationToken;

use crate::archive::archiver::{Archiver, Selection};
use crate::archive::cluster::Cluster;
use crate::archive::progress::Progress;
use crate::archive::s3::{Bucket, Endpoint};
use crate::archive::source::{Source, SourceSettings};
use crate::archive::store::Store;
use crate::broker::Broker;
use crate::config::Config;
use crate::metrics::Sinks;
use crate::pipeline::batch::TimeBounds;

/// One archive, built and not started.
pub struct Archive {
    name: String,
    store: Store,
    selection: Selection,
    progress: Arc<Progress>,
    limits: Limits,
    settings: SourceSettings,
    /// `LOGSTREAM_SINK_START=latest`: partitions never read start at the topic's end.
    start_at_end: bool,
}

/// The archives of `routing`, checked against the settings (endpoint, credentials); fails
/// naming what is wrong, before anything starts.
pub fn build(
    config: &Config,
    routing: &Arc<Routing>,
    enrichment: &Sources,
    pool: &sqlx::PgPool,
    metrics: &Sinks,
    bounds: TimeBounds,
) -> anyhow::Result<Vec<Archive>> {
    let endpoint = Endpoint {
        url: config.s3_endpoint.trim().to_owned(),
        region: config
            .s3_region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned()),
        path_style: config.s3_path_style,
        timeout: Duration::from_secs(120),
        credentials: config
            .s3_access_key_id
            .clone()
            .zip(config.s3_secret_access_key.clone())
            .map(|(key, secret)| (key, secret, config.s3_session_token.clone())),
    };
    let topic = &config.kafka.topic_raw;
    let mut archives = Vec::new();
    for (route, r) in routing.routes.iter().enumerate() {
        let Some((store, group, prefix)) = store_of(&r.destination, &endpoint, config)? else {
            continue;
        };
        let name = r.destination.to_string();
        metrics.sent.with_label_values(&[&name]);
        metrics.lag.with_label_values(&[&name]);
        for reason in store.reasons() {
            metrics.errors.with_label_values(&[name.as_str(), reason]);
        }
        let progress = Arc::new(Progress::new(pool.clone(), name.clone(), topic.clone()));
        let settings = SourceSettings {
            brokers: config.kafka.kafka_brokers.clone(),
            group: format!("{}-{group}", config.consumer_group),
            topic: topic.clone(),
            assignment_strategy: config.assignment_strategy.clone(),
            session_timeout_ms: config.session_timeout_ms,
            buffer_bytes: (config.archive_buffer_mb << 20) as usize,
        };
        archives.push(Archive {
            store,
            selection: Selection {
                routing: routing.clone(),
                enricher: (!enrichment.is_empty())
                    .then(|| std::sync::Mutex::new(Enricher::new(enrichment))),
                route,
                bounds,
                topic: topic.clone(),
                prefix,
            },
            progress,
            limits: Limits {
                max_bytes: (config.archive_max_mb << 20) as usize,
                max_age_ms: config.archive_max_seconds as i64 * 1000,
                max_open_bytes: (config.archive_buffer_mb << 20) as usize,
            },
            settings,
            start_at_end: config.sink_start == "latest",
            name,
        });
    }
    Ok(archives)
}

/// The store of a destination that reads the topic itself, the suffix of its consumer group,
/// and its key or index prefix; None for the other destinations.
fn store_of(
    destination: &Destination,
    endpoint: &Endpoint,
    config: &Config,
) -> anyhow::Result<Option<(Store, String, String)>> {
    Ok(match destination {
        Destination::S3 { bucket, prefix } => Some((
            Store::S3(Bucket::new(endpoint, bucket)?),
            format!("archive-{bucket}-{}", key_segment(prefix)),
            prefix.clone(),
        )),
        Destination::Search { url, index_prefix } => Some((
            Store::Search(Cluster::new(
                url,
                index_prefix,
                Duration::from_secs(60),
                (config.search_bulk_mb << 20) as usize,
            )?),
            format!("search-{}-{index_prefix}", key_segment(url)),
            index_prefix.clone(),
        )),
        _ => None,
    })
}

/// Each partition of `topic` and its high watermark (a blocking broker call, off the runtime).
async fn ends(broker: &Arc<Broker>, topic: &str) -> Result<Vec<(i32, i64)>, String> {
    let (broker, topic) = (broker.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || broker.high_watermarks(&topic))
        .await
        .map_err(|e| e.to_string())?
}

/// An archive's reader thread and archiver task, once started.
pub type Running = (std::thread::JoinHandle<()>, tokio::task::JoinHandle<()>);

/// Starts every archive (see [`Archive::start`]), each after recording where it starts when
/// it starts at the topic's end; stops starting them on shutdown.
pub async fn start_all(
    archives: Vec<Archive>,
    broker: &Arc<Broker>,
    metrics: &Sinks,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Running>> {
    let mut running = Vec::new();
    for archive in archives {
        if archive.start_at_end && !archive.pin_start(broker, shutdown).await {
            break;
        }
        running.push(archive.start(metrics, shutdown)?);
    }
    Ok(running)
}

/// Waits for started archives to stop (after shutdown).
pub async fn stopped(archives: Vec<Running>) {
    for (thread, task) in archives {
        let _ = task.await;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl Archive {
    /// Records the topic's end as the start of every partition the archive never read (those
    /// it read keep their progress), retrying while Kafka or PostgreSQL cannot answer; false
    /// on shutdown.
    async fn pin_start(&self, broker: &Arc<Broker>, shutdown: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            let recorded = match ends(broker, &self.settings.topic).await {
                Ok(ends) => self
                    .progress
                    .start_at(&ends)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match recorded {
                Ok(n) => {
                    tracing::info!(sink = %self.name, partitions = n, "partitions never read start at the topic's end");
                    return true;
                }
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, "cannot record where the route starts; retrying")
                }
            }
            if !backoff.wait(shutdown).await {
                return false;
            }
        }
    }

    /// Joins the archive's group and starts its reader thread and its archiver task (on the
    /// current runtime); both stop on `shutdown`.
    pub fn start(self, metrics: &Sinks, shutdown: &CancellationToken) -> anyhow::Result<Running> {
        let (source, rx, feedback) =
            Source::join(self.settings, self.progress.clone(), shutdown.clone())?;
        tracing::info!(sink = %self.name, "archive reading the topic");
        let archiver = Archiver {
            name: self.name,
            selection: self.selection,
            store: self.store,
            progress: self.progress,
            limits: self.limits,
            metrics: metrics.clone(),
            feedback,
            shutdown: shutdown.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("archive-source".into())
            .spawn(move || source.run())?;
        Ok((thread, tokio::spawn(archiver.run(rx))))
    }
}
