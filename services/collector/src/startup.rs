//! Wires the collector together: migrations, topics, the consumer thread, the writer, the HTTP
//! surface; on SIGINT/SIGTERM the consumer leaves the group (flushing its partitions) and the
//! writer commits what it holds, within the shutdown deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use logstream_service::ops::{self, Check};
use logstream_service::sync::lock;
use logstream_service::{kafka, postgres, shutdown};
use tokio::sync::mpsc;

use crate::backpressure::Valve;
use crate::batch::TimeBounds;
use crate::broker::Broker;
use crate::committer::{Committed, Stuck};
use crate::config::Config;
use crate::consumer::{self, ConsumerSettings};
use crate::dlq::DlqSink;
use crate::housekeeping::{self, GroupHealth, LagSampler};
use crate::metrics::Metrics;
use crate::routes::{self, StatusState};
use crate::sinks::RouteSinks;
use crate::store::Store;
use crate::writer::Writer;
use logstream_core::route::{Destination, Routing};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies migrations, retrying while PostgreSQL is unreachable.
async fn migrate(
    pool: &sqlx::PgPool,
    shutdown: &shutdown::CancellationToken,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(500);
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e)) if e.as_database_error().is_none() => {
                tracing::warn!(error = %e, retry_in = ?delay, "postgres not reachable yet");
            }
            Err(e) => return Err(anyhow::anyhow!("database migration failed: {e}")),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down before the database was reachable"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let registry = ops::new_registry();
    let metrics = Metrics::register(&registry)?;
    let pool = postgres::lazy_pool(&config.database)?;
    let window_specs = config.window_specs().map_err(anyhow::Error::msg)?;
    let routing = Arc::new(
        Routing::parse(&config.filter_drop, &config.routes)
            .map_err(|e| anyhow::anyhow!("LOGSTREAM_FILTER_DROP / LOGSTREAM_ROUTES: {e}"))?,
    );
    let sinks = Arc::new(RouteSinks::open(&routing, &config.kafka.kafka_brokers)?);
    let route_topics: Vec<String> = routing
        .routes
        .iter()
        .filter_map(|r| match &r.destination {
            Destination::Kafka(topic) => Some(topic.clone()),
            _ => None,
        })
        .collect();
    for (i, route) in routing.routes.iter().enumerate() {
        tracing::info!(route = i, destination = %route.destination, rule = %route.rule, "route");
    }
    for (i, rule) in routing.drop.iter().enumerate() {
        tracing::info!(rule = i, %rule, "drop rule");
    }

    let topic = config.kafka.topic_raw.clone();
    let group = config.consumer_group.clone();
    let dlq = Arc::new(DlqSink::new(
        &config.kafka.kafka_brokers,
        config.kafka.topic_dlq.clone(),
        topic.clone(),
    )?);
    let broker = Arc::new(Broker::new(&config.kafka.kafka_brokers)?);
    let committed: Committed = Arc::new(Mutex::new(Default::default()));
    let fatal: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let health: GroupHealth = Arc::new(Mutex::new(None));
    let stuck: Stuck = Arc::new(Mutex::new(None));
    let store = Arc::new(Store::new(pool.clone(), group.clone(), topic.clone()));
    let sampler = LagSampler {
        broker: broker.clone(),
        store: store.clone(),
        topic: topic.clone(),
        committed: committed.clone(),
        metrics: metrics.clone(),
    };

    let ready = {
        let (pool, broker, topic, fatal, health, stuck) = (
            pool.clone(),
            broker.clone(),
            topic.clone(),
            fatal.clone(),
            health.clone(),
            stuck.clone(),
        );
        move || {
            let (pool, broker, topic) = (pool.clone(), broker.clone(), topic.clone());
            let consumer = match (lock(&fatal).clone(), lock(&health).clone()) {
                (Some(error), _) => Err(format!("kafka consumer failed: {error}")),
                (None, Some(problem)) => Err(problem),
                (None, None) => Ok(()),
            };
            let storage = match lock(&stuck).clone() {
                Some(problem) => Err(problem),
                None => Ok(()),
            };
            async move {
                let kafka = tokio::task::spawn_blocking(move || broker.check_topic(&topic))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                vec![
                    Check::new("postgres", postgres::check(&pool).await),
                    Check::new("kafka", kafka),
                    Check::new("consumer", consumer),
                    Check::new("storage", storage),
                ]
            }
        }
    };
    let app = ops::with_json_errors(
        routes::router(StatusState {
            sampler: sampler.clone(),
            group: group.clone(),
            metrics: metrics.clone(),
            batch_max_events: config.batch_max_events,
            batch_max_wait_ms: config.batch_max_wait_ms,
        })
        .merge(ops::router(registry, ready)),
    );
    let server = tokio::spawn(ops::serve(
        config.listen,
        "LOGSTREAM_COLLECTOR_LISTEN",
        app,
        shutdown.clone(),
    ));

    migrate(&pool, &shutdown).await?;
    tracing::info!("database schema up to date");
    kafka::ensure_topics_with_retry(config.kafka.clone(), route_topics, shutdown.clone()).await;

    let partitions_store = store.clone();
    let (tx, rx) = mpsc::channel(config.queue_capacity as usize);
    let (rewind_tx, rewind_rx) = std::sync::mpsc::channel();
    let writer = Writer {
        store: store.clone(),
        dlq: dlq.clone(),
        broker,
        topic: topic.clone(),
        sinks,
        routing,
        metrics: metrics.clone(),
        max_events: config.batch_max_events,
        max_wait: Duration::from_millis(config.batch_max_wait_ms),
        window_specs,
        time_bounds: TimeBounds {
            max_past_ms: config.retention_hours as i64 * 3_600_000,
            max_future_ms: config.max_future_seconds as i64 * 1000,
        },
        allowed_lateness_ms: config.allowed_lateness_seconds as i64 * 1000,
        rewinds: rewind_tx,
        committed: committed.clone(),
        stuck,
        stuck_after: Duration::from_secs(config.stuck_batch_seconds),
    };
    let writer = tokio::spawn(writer.run(rx));
    let kafka_consumer = consumer::subscribe(
        &ConsumerSettings {
            brokers: &config.kafka.kafka_brokers,
            group: &group,
            topic: &topic,
            session_timeout_ms: config.session_timeout_ms,
            group_instance_id: config
                .group_instance_id
                .as_deref()
                .filter(|id| !id.is_empty()),
            assignment_strategy: &config.assignment_strategy,
            // A quarter of the memory limit, within librdkafka's range.
            prefetch_kbytes: (config.memory_limit_mb * 1024 / 4).clamp(1024, 2_097_151),
        },
        tx,
        store,
        shutdown.clone(),
    )?;
    let valve = Valve::new(
        config.queue_capacity as usize,
        Duration::from_millis(config.pause_after_ms),
        config.memory_limit_mb * 1024 * 1024,
        metrics.clone(),
    );
    let consumer_thread = {
        let (topic, metrics, fatal, shutdown) = (
            topic.clone(),
            metrics.clone(),
            fatal.clone(),
            shutdown.clone(),
        );
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || {
                consumer::run(
                    kafka_consumer,
                    rewind_rx,
                    topic,
                    valve,
                    metrics,
                    fatal,
                    shutdown,
                )
            })?
    };
    tracing::info!(%topic, %group, "collector consuming");

    tokio::spawn(housekeeping::lag_loop(
        sampler,
        group,
        Duration::from_millis(config.session_timeout_ms),
        health,
        shutdown.clone(),
    ));
    tokio::spawn(housekeeping::partition_loop(
        partitions_store,
        config.retention_hours,
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    let deadline = Duration::from_secs(config.common.shutdown_timeout_seconds);
    let drained = async {
        let _ = tokio::task::spawn_blocking(move || consumer_thread.join()).await;
        let _ = writer.await;
    };
    match tokio::time::timeout(deadline, drained).await {
        Ok(()) => tracing::info!("all consumed records committed; bye"),
        Err(_) => tracing::warn!(
            ?deadline,
            "shutdown deadline passed; uncommitted records will be re-read"
        ),
    }
    let _ = server.await;
    if let Ok(Some(error)) = fatal.lock().map(|f| f.clone()) {
        anyhow::bail!("kafka consumer failed: {error}");
    }
    Ok(())
}
