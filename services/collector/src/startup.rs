//! Wires the collector together, in the order a record travels: the sinks (PostgreSQL, the
//! dead-letter topic, routed destinations), the pipeline's writer, then the Kafka source on its
//! own thread; the HTTP surface and the periodic chores beside them. On SIGINT/SIGTERM the
//! consumer leaves the group (flushing its partitions) and the writer commits what it holds,
//! within the shutdown deadline.

use std::sync::Arc;
use std::time::Duration;

use logstream_core::enrich::geo::GeoDatabase;
use logstream_core::enrich::{user_agent, Enricher, Sources};
use logstream_core::route::{Destination, Routing};
use logstream_service::ops::{self, Check, ReadyChecks};
use logstream_service::retry::Backoff;
use logstream_service::sync::lock;
use logstream_service::{kafka, postgres, shutdown};
use tokio::sync::mpsc;

use crate::archive;
use crate::broker::Broker;
use crate::config::Config;
use crate::consume::backpressure::Valve;
use crate::consume::consumer::{ConsumerSettings, ConsumerThread, Membership};
use crate::messages::{AlertChange, Input, Rewind};
use crate::metrics::Metrics;
use crate::pipeline::batch::TimeBounds;
use crate::pipeline::handoff;
use crate::pipeline::writer::Writer;
use crate::shared::Shared;
use crate::sink::alert_fast_lane::{self, FastLane};
use crate::sink::alert_publisher::AlertPublisher;
use crate::sink::committer::Committer;
use crate::sink::dlq::DlqSink;
use crate::sink::notifier::Notifier;
use crate::sink::routed::RouteSinks;
use crate::sink::store::Store;
use crate::stored_offsets::StoredOffsets;
use crate::upkeep::housekeeping::{self, LagSampler};
use crate::upkeep::status::{self, StatusState};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// What every part is built from.
struct Parts {
    config: Config,
    shutdown: shutdown::CancellationToken,
    metrics: Metrics,
    pool: sqlx::PgPool,
    store: Arc<Store>,
    offsets: Arc<StoredOffsets>,
    broker: Arc<Broker>,
    shared: Shared,
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let registry = ops::new_registry();
    let parts = parts(config, &registry)?;
    // Everything the settings can make fail is built before anything is waited for.
    let routing = routing(&parts.config)?;
    let (tx, rx) = mpsc::channel(parts.config.queue_capacity as usize);
    let (rewind_tx, rewind_rx) = std::sync::mpsc::channel();
    let committer = committer(&parts, &routing)?;
    let topics = route_topics(&routing);
    let (fast_tx, fast_rx) = mpsc::channel(alert_fast_lane::QUEUE);
    let enrichment = enrichment(&parts.config)?;
    let archives = archives(&parts, &routing, &enrichment)?;
    let writer = writer(&parts, routing, &enrichment, rewind_tx, fast_tx)?;
    let sampler = LagSampler {
        broker: parts.broker.clone(),
        offsets: parts.offsets.clone(),
        topic: parts.config.kafka.topic_raw.clone(),
        committed: parts.shared.committed.clone(),
        metrics: parts.metrics.clone(),
    };
    let server = serve(&parts, registry, sampler.clone());

    migrate(&parts.pool, &parts.shutdown).await?;
    if parts.config.search_text_index {
        text_index(&parts.pool).await?;
    }
    tracing::info!("database schema up to date");
    kafka::ensure_topics_with_retry(parts.config.kafka.clone(), topics, parts.shutdown.clone())
        .await;

    let (writer_ends, committer_ends) = handoff::channel();
    let committer = tokio::spawn(committer.run(committer_ends));
    let writer = tokio::spawn(writer.run(rx, writer_ends));
    alerts(&parts, fast_rx)?;
    let consumer_thread = consume(&parts, tx, rewind_rx)?;
    upkeep(&parts, sampler);
    let archives = archive::start_all(
        archives,
        &parts.broker,
        &parts.metrics.sinks,
        &parts.shutdown,
    )
    .await?;

    parts.shutdown.cancelled().await;
    let deadline = Duration::from_secs(parts.config.common.shutdown_timeout_seconds);
    let drained = async {
        let _ = tokio::task::spawn_blocking(move || consumer_thread.join()).await;
        let _ = writer.await;
        let _ = committer.await;
        archive::stopped(archives).await;
    };
    if tokio::time::timeout(deadline, drained).await.is_ok() {
        tracing::info!("all consumed records committed; bye");
    } else {
        tracing::warn!(
            ?deadline,
            "shutdown deadline passed; uncommitted records will be re-read"
        );
    }
    let _ = server.await;
    if let Some(error) = lock(&parts.shared.fatal).clone() {
        anyhow::bail!("kafka consumer failed: {error}");
    }
    Ok(())
}

/// The enrichment's sources: the built-in user-agent rules (unless turned off) and the
/// MaxMind-format databases configured; fails naming the setting.
fn enrichment(config: &Config) -> anyhow::Result<Sources> {
    let agents = if config.enrich_user_agent {
        Some(
            user_agent::builtin_rules()
                .map_err(|e| anyhow::anyhow!("LOGSTREAM_ENRICH_USER_AGENT: {e}"))?,
        )
    } else {
        None
    };
    let mut geo = Vec::new();
    for path in config
        .geoip_databases
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("LOGSTREAM_GEOIP_DATABASES: cannot read {path}: {e}"))?;
        let db = GeoDatabase::from_bytes(bytes)
            .map_err(|e| anyhow::anyhow!("LOGSTREAM_GEOIP_DATABASES: {path}: {e}"))?;
        tracing::info!(%path, kind = db.kind(), "client addresses located with this database");
        geo.push(db);
    }
    Ok(Sources {
        agents,
        geo: Arc::new(geo),
    })
}

/// The collector's shared parts: settings, metrics, stores, broker client, shutdown.
fn parts(config: Config, registry: &prometheus::Registry) -> anyhow::Result<Parts> {
    let pool = postgres::lazy_pool(&config.database)?;
    Ok(Parts {
        shutdown: shutdown::on_signal(),
        metrics: Metrics::register(registry, config.metrics_max_services as usize)?,
        store: Arc::new(Store::new(
            pool.clone(),
            config.consumer_group.clone(),
            config.kafka.topic_raw.clone(),
        )),
        offsets: Arc::new(StoredOffsets::new(
            pool.clone(),
            config.consumer_group.clone(),
            config.kafka.topic_raw.clone(),
        )),
        pool,
        broker: Arc::new(Broker::new(&config.kafka.kafka_brokers)?),
        shared: Shared::default(),
        config,
    })
}

/// The archive (s3://) routes, checked against their settings; not started.
fn archives(
    parts: &Parts,
    routing: &Arc<Routing>,
    enrichment: &Sources,
) -> anyhow::Result<Vec<archive::Archive>> {
    archive::build(
        &parts.config,
        routing,
        enrichment,
        &parts.pool,
        &parts.metrics.sinks,
        time_bounds(&parts.config),
    )
}

/// Event times accepted around the clock: the retention behind, LOGSTREAM_MAX_FUTURE_SECONDS
/// ahead.
fn time_bounds(config: &Config) -> TimeBounds {
    TimeBounds {
        max_past_ms: config.retention_hours as i64 * 3_600_000,
        max_future_ms: config.max_future_seconds as i64 * 1000,
    }
}

/// The drop rules and routes, logged; fails naming the settings.
fn routing(config: &Config) -> anyhow::Result<Arc<Routing>> {
    let routing = Routing::parse(&config.filter_drop, &config.routes)
        .map_err(|e| anyhow::anyhow!("LOGSTREAM_FILTER_DROP / LOGSTREAM_ROUTES: {e}"))?;
    for (i, route) in routing.routes.iter().enumerate() {
        tracing::info!(route = i, destination = %route.destination, rule = %route.rule, "route");
    }
    for (i, rule) in routing.drop.iter().enumerate() {
        tracing::info!(rule = i, %rule, "drop rule");
    }
    Ok(Arc::new(routing))
}

/// The Kafka topics routes send to (created at start with the others).
fn route_topics(routing: &Routing) -> Vec<String> {
    routing
        .routes
        .iter()
        .filter_map(|r| match &r.destination {
            Destination::Kafka(topic) => Some(topic.clone()),
            _ => None,
        })
        .collect()
}

/// The full-text index of the messages' words (LOGSTREAM_SEARCH_TEXT_INDEX), built when missing.
async fn text_index(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    tracing::info!(
        "creating the full-text index of stored messages if missing (LOGSTREAM_SEARCH_TEXT_INDEX)"
    );
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS log_events_message_words ON log_events \
         USING gin (to_tsvector('simple'::regconfig, message))",
    )
    .execute(pool)
    .await
    .map_err(|e| anyhow::anyhow!("LOGSTREAM_SEARCH_TEXT_INDEX: cannot create the index: {e}"))?;
    Ok(())
}

/// Applies migrations, retrying while PostgreSQL is unreachable.
async fn migrate(
    pool: &sqlx::PgPool,
    shutdown: &shutdown::CancellationToken,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e)) if e.as_database_error().is_none() => {
                tracing::warn!(error = %e, "postgres not reachable yet; retrying");
            }
            Err(e) => return Err(anyhow::anyhow!("database migration failed: {e}")),
        }
        if !backoff.wait(shutdown).await {
            anyhow::bail!("shut down before the database was reachable");
        }
    }
}

/// The HTTP surface: status, metrics, health and readiness.
fn serve(
    parts: &Parts,
    registry: prometheus::Registry,
    sampler: LagSampler,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let config = &parts.config;
    let app = ops::with_json_errors(
        status::router(StatusState {
            sampler,
            group: config.consumer_group.clone(),
            metrics: parts.metrics.clone(),
            batch_max_events: config.batch_max_events,
            batch_early_events: config.batch_early_events(),
            batch_max_wait_ms: config.batch_max_wait_ms,
        })
        .merge(ops::router(registry, readiness(parts))),
    );
    tokio::spawn(ops::serve(
        config.listen,
        "LOGSTREAM_COLLECTOR_LISTEN",
        app,
        parts.shutdown.clone(),
    ))
}

/// The readiness checks: PostgreSQL, the topic, the consumer (no fatal error, not left idle
/// while partitions have no owner), storage (no batch stuck).
fn readiness(parts: &Parts) -> impl Fn() -> ReadyChecks + Clone + Send + Sync + 'static {
    let (pool, broker, topic, shared) = (
        parts.pool.clone(),
        parts.broker.clone(),
        parts.config.kafka.topic_raw.clone(),
        parts.shared.clone(),
    );
    move || {
        let (pool, broker, topic) = (pool.clone(), broker.clone(), topic.clone());
        let consumer = match (lock(&shared.fatal).clone(), lock(&shared.idle).clone()) {
            (Some(error), _) => Err(format!("kafka consumer failed: {error}")),
            (None, Some(problem)) => Err(problem),
            (None, None) => Ok(()),
        };
        let storage = match lock(&shared.stuck).clone() {
            Some(problem) => Err(problem),
            None => Ok(()),
        };
        Box::pin(async move {
            let kafka = tokio::task::spawn_blocking(move || broker.check_topic(&topic))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            vec![
                Check::new("postgres", postgres::check(&pool).await),
                Check::new("kafka", kafka),
                Check::new("consumer", consumer),
                Check::new("storage", storage),
            ]
        })
    }
}

/// The committer, over the sinks it writes to.
fn committer(parts: &Parts, routing: &Routing) -> anyhow::Result<Committer> {
    let config = &parts.config;
    Ok(Committer {
        store: parts.store.clone(),
        dlq: DlqSink::new(
            &config.kafka.kafka_brokers,
            config.kafka.topic_dlq.clone(),
            config.kafka.topic_raw.clone(),
        )?,
        sinks: RouteSinks::open(routing, &config.kafka.kafka_brokers)?,
        metrics: parts.metrics.clone(),
        committed: parts.shared.committed.clone(),
        stuck: parts.shared.stuck.clone(),
        stuck_after: Duration::from_secs(config.stuck_batch_seconds),
        alerts_queued: parts.shared.alerts_queued.clone(),
    })
}

/// The pipeline's writer.
fn writer(
    parts: &Parts,
    routing: Arc<Routing>,
    enrichment: &Sources,
    rewinds: std::sync::mpsc::Sender<Rewind>,
    fast_lane: mpsc::Sender<AlertChange>,
) -> anyhow::Result<Writer> {
    let config = &parts.config;
    Ok(Writer {
        offsets: parts.offsets.clone(),
        broker: parts.broker.clone(),
        topic: config.kafka.topic_raw.clone(),
        routing,
        enricher: (!enrichment.is_empty())
            .then(|| Arc::new(std::sync::Mutex::new(Enricher::new(enrichment)))),
        metrics: parts.metrics.clone(),
        max_events: config.batch_max_events,
        early_events: config.batch_early_events(),
        max_wait: Duration::from_millis(config.batch_max_wait_ms),
        window_specs: config.window_specs().map_err(anyhow::Error::msg)?,
        time_bounds: time_bounds(config),
        allowed_lateness_ms: config.allowed_lateness_seconds as i64 * 1000,
        rewinds,
        committed: parts.shared.committed.clone(),
        rules: config.rules.load().map_err(anyhow::Error::msg)?,
        snapshot_every: Duration::from_secs(config.detector_snapshot_seconds),
        fast_lane,
        sample_rule: config.sample_rule(),
    })
}

/// Joins the consumer group and starts the consumer thread, which feeds `tx`.
fn consume(
    parts: &Parts,
    tx: mpsc::Sender<Input>,
    rewinds: std::sync::mpsc::Receiver<Rewind>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let config = &parts.config;
    let membership = Membership {
        settings: ConsumerSettings {
            brokers: config.kafka.kafka_brokers.clone(),
            group: config.consumer_group.clone(),
            topic: config.kafka.topic_raw.clone(),
            session_timeout_ms: config.session_timeout_ms,
            group_instance_id: config.group_instance_id.clone().filter(|id| !id.is_empty()),
            assignment_strategy: config.assignment_strategy.clone(),
            // A quarter of the memory limit, within librdkafka's range.
            prefetch_kbytes: (config.memory_limit_mb * 1024 / 4).clamp(1024, 2_097_151),
        },
        tx,
        offsets: parts.offsets.clone(),
        shutdown: parts.shutdown.clone(),
        lost: Default::default(),
        rejoin: parts.shared.rejoin.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let consumer = membership.join()?;
    let thread = ConsumerThread {
        consumer,
        membership,
        rewinds,
        topic: config.kafka.topic_raw.clone(),
        valve: Valve::new(
            config.queue_capacity as usize,
            Duration::from_millis(config.pause_after_ms),
            config.memory_limit_mb * 1024 * 1024,
            parts.metrics.clone(),
        ),
        metrics: parts.metrics.clone(),
        fatal: parts.shared.fatal.clone(),
        shutdown: parts.shutdown.clone(),
    };
    // A panic there must not leave a process that consumes nothing: it stops the service, like
    // a fatal consumer error (and the exit status says so).
    let (fatal, shutdown) = (thread.fatal.clone(), thread.shutdown.clone());
    let (topic, group) = (&config.kafka.topic_raw, &config.consumer_group);
    tracing::info!(%topic, %group, "collector consuming");
    Ok(std::thread::Builder::new()
        .name("kafka-consumer".into())
        .spawn(move || {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread.run())).is_err() {
                *lock(&fatal) = Some("the Kafka consumer thread panicked".to_owned());
                shutdown.cancel();
            }
        })?)
}

/// The alert publisher (outbox → logs.alerts, when this collector holds the lock), the fast
/// lane of critical alerts (fed by the writer through `fast`), and the notifier (Alertmanager,
/// webhook).
fn alerts(parts: &Parts, fast: mpsc::Receiver<AlertChange>) -> anyhow::Result<()> {
    let config = &parts.config;
    let notify = if config.alertmanager_url.is_some() || config.alert_webhook_url.is_some() {
        let (tx, rx) = mpsc::channel(10_000);
        let notifier = Notifier {
            http: reqwest::Client::builder()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for alerts: {e}"))?,
            alertmanager: config.alertmanager_url.clone(),
            webhook: config.alert_webhook_url.clone(),
            pool: parts.pool.clone(),
            repeat: Duration::from_secs(config.alert_repeat_seconds),
            metrics: parts.metrics.clone(),
        };
        tokio::spawn(notifier.run(rx, parts.shutdown.clone()));
        Some(tx)
    } else {
        None
    };
    // A connection of its own: a critical alert never waits for one the batches hold.
    let mut lane_database = config.database.clone();
    lane_database.database_max_connections = 1;
    let lane = FastLane::new(
        postgres::lazy_pool(&lane_database)?,
        &config.kafka.kafka_brokers,
        config.kafka.topic_alerts.clone(),
        parts.metrics.clone(),
        notify.clone(),
        parts.shared.alerts_queued.clone(),
    )?;
    tokio::spawn(lane.run(fast));
    let publisher = AlertPublisher {
        pool: parts.pool.clone(),
        brokers: config.kafka.kafka_brokers.clone(),
        topic: config.kafka.topic_alerts.clone(),
        transactional_id: format!("logstream-alerts-{}", config.consumer_group),
        poll: Duration::from_millis(config.alert_publish_poll_ms),
        wake: parts.shared.alerts_queued.clone(),
        metrics: parts.metrics.clone(),
        notify,
    };
    tokio::spawn(publisher.run(parts.shutdown.clone()));
    Ok(())
}

/// The periodic chores: lag and group health, `log_events` partitions and their time index.
fn upkeep(parts: &Parts, sampler: LagSampler) {
    tokio::spawn(housekeeping::lag_loop(
        sampler,
        parts.config.consumer_group.clone(),
        Duration::from_millis(parts.config.session_timeout_ms),
        parts.shared.idle.clone(),
        parts.shared.rejoin.clone(),
        parts.shutdown.clone(),
    ));
    tokio::spawn(housekeeping::partition_loop(
        parts.store.clone(),
        parts.config.retention_hours,
        parts.shutdown.clone(),
    ));
    tokio::spawn(housekeeping::time_index_loop(
        parts.store.clone(),
        parts.shutdown.clone(),
    ));
}
