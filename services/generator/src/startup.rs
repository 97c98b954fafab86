//! Wires the generator together and runs it until SIGINT/SIGTERM, then stops generation and
//! waits for Kafka to acknowledge what was generated (bounded by the shutdown timeout).

use std::sync::Arc;
use std::time::Duration;

use logstream_service::ops::{self, Check, ReadyChecks};
use logstream_service::{kafka, shutdown};

use crate::config::{hostname, Config};
use crate::delivery;
use crate::engine::Engine;
use crate::engine::EngineSettings;
use crate::global_limit::{self, Allowance};
use crate::live::{self, LiveState};
use crate::metrics::Metrics;
use crate::registration;
use crate::routes;
use axum::routing::get;
use axum::Router;
use logstream_service::breaker::Breaker;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let registry = ops::new_registry();
    let metrics = Metrics::register(&registry)?;
    let live_clients = metrics.live_clients.clone();
    let limiter_local = metrics.limiter_local.clone();
    let instance_id = config.instance_id();
    let allowance = Arc::new(Allowance::default());
    let engine = engine(&config, metrics, allowance.clone(), &instance_id)?;
    tracing::info!(%instance_id, topic = %config.kafka.topic_raw, "generator starting");

    tokio::spawn(kafka::ensure_topics_with_retry(
        config.kafka.clone(),
        Vec::new(),
        shutdown.clone(),
    ));
    tokio::spawn(engine.clone().sample_rate(shutdown.clone()));
    tokio::spawn(engine.clone().watch_breaker(shutdown.clone()));
    let redis = redis::Client::open(config.redis_url.as_str())
        .map_err(|e| anyhow::anyhow!("invalid LOGSTREAM_REDIS_URL / --redis-url: {e}"))?;
    tokio::spawn(global_limit::run(
        allowance.clone(),
        redis.clone(),
        limiter_local,
        shutdown.clone(),
    ));
    let heartbeat = tokio::spawn(registration::heartbeat(
        redis,
        allowance,
        instance_id,
        config.advertise_url(),
        shutdown.clone(),
    ));

    let live = Router::new()
        .route("/ws/logs", get(live::handler))
        .with_state(LiveState {
            host: hostname(),
            clients: live_clients,
            shutdown: shutdown.clone(),
        });
    let app = ops::with_json_errors(
        routes::router(engine.clone(), config.rate_per_second)
            .merge(live)
            .merge(ops::router(registry, readiness(&engine, &config))),
    );
    ops::serve(
        config.listen,
        "LOGSTREAM_GENERATOR_LISTEN",
        app,
        shutdown.clone(),
    )
    .await?;

    let deadline = Duration::from_secs(config.common.shutdown_timeout_seconds);
    let stopping = tokio::task::spawn_blocking(move || engine.stop());
    match tokio::time::timeout(deadline, stopping).await {
        Ok(Ok(true)) => tracing::info!("all generated events acknowledged; bye"),
        Ok(_) => tracing::warn!("some events were not acknowledged before shutdown"),
        Err(_) => tracing::warn!(?deadline, "shutdown deadline passed"),
    }
    let _ = heartbeat.await;
    Ok(())
}

/// The generation engine over its Kafka producer and circuit breaker.
fn engine(
    config: &Config,
    metrics: Metrics,
    allowance: Arc<Allowance>,
    instance_id: &str,
) -> anyhow::Result<Arc<Engine>> {
    let breaker = Arc::new(Breaker::new(
        config.breaker.settings().map_err(anyhow::Error::msg)?,
        metrics.breaker_state.clone(),
    ));
    let producer = delivery::producer(config, metrics.clone(), breaker.clone(), instance_id)?;
    Ok(Arc::new(Engine::new(
        producer,
        breaker,
        allowance,
        metrics,
        EngineSettings {
            topic: config.kafka.topic_raw.clone(),
            instance_id: instance_id.to_owned(),
            host: hostname(),
            flush_timeout: Duration::from_millis(config.kafka_message_timeout_ms + 5_000),
            threads: config.threads,
            batch_size: config.batch_size,
            global_rate: config.global_rate_per_second,
        },
    )))
}

/// Readiness: the topic exists on the brokers the producer talks to.
fn readiness(
    engine: &Arc<Engine>,
    config: &Config,
) -> impl Fn() -> ReadyChecks + Clone + Send + Sync + 'static {
    let engine = engine.clone();
    let topic = config.kafka.topic_raw.clone();
    move || {
        let engine = engine.clone();
        let topic = topic.clone();
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || {
                kafka::check_topic(engine.producer_client(), &topic)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            vec![Check::new("kafka", result)]
        })
    }
}
