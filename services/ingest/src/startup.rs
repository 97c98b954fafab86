//! Wires the ingest service together and runs it until SIGINT/SIGTERM: then it stops accepting
//! (HTTP, syslog), answers the requests in flight, and waits for Kafka to acknowledge what it
//! took (bounded by the shutdown timeout).

use std::sync::Arc;
use std::time::Duration;

use logstream_service::breaker::Breaker;
use logstream_service::ops::{self, Check};
use logstream_service::ratelimit::SlidingWindows;
use logstream_service::{kafka, shutdown};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accounting::Accounting;
use crate::config::Config;
use crate::http::{self, HttpSettings, Ingest};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::syslog::tcp::TcpLimits;
use crate::syslog::{self as syslog_in, Syslog};
use crate::{file, websocket};

pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let shutdown = shutdown::on_signal();
    let registry = ops::new_registry();
    let metrics = Metrics::register(&registry)?;
    let accounting = Arc::new(Accounting::new(metrics.clone()));
    let breaker = Arc::new(Breaker::new(
        config.breaker.settings().map_err(anyhow::Error::msg)?,
        metrics.breaker_state.clone(),
    ));
    let instance_id = config.instance_id();
    let publisher = Arc::new(Publisher::new(
        &config,
        accounting.clone(),
        breaker,
        instance_id.clone(),
    )?);
    tracing::info!(%instance_id, topic = %config.kafka.topic_raw, "ingest starting");
    tokio::spawn(kafka::ensure_topics_with_retry(
        config.kafka.clone(),
        Vec::new(),
        shutdown.clone(),
    ));
    tokio::spawn(publisher.clone().watch_breaker(shutdown.clone()));

    let ack_timeout = HttpSettings::ack_timeout_for(config.kafka_message_timeout_ms);
    let syslog = Arc::new(Syslog {
        publisher: publisher.clone(),
        accounting: accounting.clone(),
        default_service: config.default_service.clone(),
        max_message_bytes: config.max_line_bytes as usize,
    });
    let mut listeners = listen_syslog(&config, syslog, ack_timeout, &shutdown).await?;
    let (files, upstreams, mut streams) =
        start_streams(&config, &registry, &publisher, &accounting, &shutdown)?;

    let ingest = Arc::new(Ingest {
        publisher: publisher.clone(),
        requests: tokio::sync::Semaphore::new(config.max_concurrent_requests as usize),
        accounting,
        settings: HttpSettings {
            token: config.ingest_token.clone(),
            max_body_bytes: config.max_body_bytes,
            limits: http::parse::Limits {
                max_line: config.max_line_bytes as usize,
                max_events: config.max_events_per_request as usize,
            },
            default_service: config.default_service.clone(),
            body_timeout: Duration::from_secs(30),
            ack_timeout,
        },
        instance_id,
        files,
        upstreams,
    });
    let limiter = rate_limiter(&config, &metrics)?;
    let app = ops::with_json_errors(
        http::router(ingest, limiter).merge(ops::router(registry, readiness(&publisher, &config))),
    );
    ops::serve(
        config.listen,
        "LOGSTREAM_INGEST_LISTEN",
        app,
        shutdown.clone(),
    )
    .await?;
    while listeners.join_next().await.is_some() {}
    while streams.join_next().await.is_some() {}

    let deadline = Duration::from_secs(config.common.shutdown_timeout_seconds);
    let draining = publisher.clone();
    match tokio::task::spawn_blocking(move || draining.drain(deadline)).await {
        Ok(true) => tracing::info!("every event taken is acknowledged; bye"),
        _ => tracing::warn!("some events were not acknowledged before shutdown"),
    }
    Ok(())
}

/// The sources that read on their own (tailed files, WebSocket upstreams): their state, and
/// their tasks, which end after `shutdown` once what they read is in Kafka.
fn start_streams(
    config: &Config,
    registry: &prometheus::Registry,
    publisher: &Arc<Publisher>,
    accounting: &Arc<Accounting>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<file::Files>, Arc<websocket::Upstreams>, JoinSet<()>)> {
    let files = Arc::new(file::Files::new(registry)?);
    let context = file::Context {
        kafka: config.kafka.clone(),
        compression: config.kafka_compression.clone(),
        max_line: config.max_line_bytes as usize,
        accounting: accounting.clone(),
        files: files.clone(),
    };
    let file_source = file::start(&config.files, context, shutdown.clone())?;
    let fan_in = websocket::FanIn {
        publisher: publisher.clone(),
        accounting: accounting.clone(),
        default_service: config.default_service.clone(),
        max_line_bytes: config.max_line_bytes as usize,
    };
    let (upstreams, mut tasks) = websocket::start(&config.websocket, fan_in, shutdown.clone())?;
    if let Some(file_source) = file_source {
        tasks.spawn(async move {
            file_source.await.ok();
        });
    }
    Ok((files, upstreams, tasks))
}

/// The per-client rate limit of the event endpoints, when one is set.
fn rate_limiter(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Option<Arc<http::ratelimit::Limiter>>> {
    if config.rate_limit_per_minute == 0 {
        return Ok(None);
    }
    let redis = redis::Client::open(config.redis_url.as_str())
        .map_err(|e| anyhow::anyhow!("invalid LOGSTREAM_REDIS_URL / --redis-url: {e}"))?;
    Ok(Some(Arc::new(http::ratelimit::Limiter {
        windows: SlidingWindows::new(redis, metrics.limiter_local.clone()),
        per_minute: config.rate_limit_per_minute,
        refused: metrics.rate_limited.clone(),
    })))
}

/// Binds the syslog listeners that are not `off` and runs them until `shutdown`.
async fn listen_syslog(
    config: &Config,
    syslog: Arc<Syslog>,
    ack_timeout: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<JoinSet<()>> {
    let mut listeners = JoinSet::new();
    let limits = tcp_limits(config, ack_timeout);
    let permits = syslog_in::tcp::connection_permits(&limits);
    if let Some(addr) = config.syslog_tcp_listen.0 {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} (LOGSTREAM_SYSLOG_TCP_LISTEN): {e}")
        })?;
        tracing::info!(%addr, "syslog tcp listening");
        listeners.spawn(syslog_in::tcp::serve(
            listener,
            syslog.clone(),
            (limits, permits.clone()),
            None,
            shutdown.clone(),
        ));
    }
    if let (Some(addr), Some(cert), Some(key)) = (
        config.syslog_tls_listen.0,
        &config.syslog_tls_cert,
        &config.syslog_tls_key,
    ) {
        let acceptor = syslog_in::tls::acceptor(cert, key)?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} (LOGSTREAM_SYSLOG_TLS_LISTEN): {e}")
        })?;
        tracing::info!(%addr, "syslog tls listening");
        listeners.spawn(syslog_in::tcp::serve(
            listener,
            syslog.clone(),
            (limits, permits.clone()),
            Some(acceptor),
            shutdown.clone(),
        ));
    }
    if let Some(addr) = config.syslog_udp_listen.0 {
        let recv_buffer = config.syslog_udp_recv_buffer_bytes as usize;
        let socket = syslog_in::udp::bind(addr, recv_buffer).map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} (LOGSTREAM_SYSLOG_UDP_LISTEN): {e}")
        })?;
        tracing::info!(%addr, "syslog udp listening");
        listeners.spawn(syslog_in::udp::run(
            socket,
            syslog.clone(),
            shutdown.clone(),
        ));
    }
    Ok(listeners)
}

fn tcp_limits(config: &Config, ack_timeout: Duration) -> TcpLimits {
    TcpLimits {
        max_connections: config.syslog_max_connections as usize,
        in_flight: config.syslog_tcp_in_flight as usize,
        ack_timeout,
    }
}

/// Readiness: the topic exists on the brokers the producer talks to, and the breaker is not
/// open.
fn readiness(
    publisher: &Arc<Publisher>,
    config: &Config,
) -> impl Fn() -> ops::ReadyChecks + Clone + Send + Sync + 'static {
    let publisher = publisher.clone();
    let topic = config.kafka.topic_raw.clone();
    move || {
        let publisher = publisher.clone();
        let topic = topic.clone();
        Box::pin(async move {
            let open = !publisher.available();
            let result =
                tokio::task::spawn_blocking(move || kafka::check_topic(publisher.client(), &topic))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            let breaker = if open {
                Err("circuit breaker open: Kafka does not acknowledge".to_owned())
            } else {
                Ok(())
            };
            vec![Check::new("kafka", result), Check::new("breaker", breaker)]
        })
    }
}
