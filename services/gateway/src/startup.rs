//! Wires the gateway together and serves until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use logstream_service::ops::{self, Check};
use logstream_service::{postgres, shutdown};

use crate::auth::{self, Tokens};
use crate::config::Config;
use crate::generators::Generators;
use crate::metrics::{self, Metrics};
use crate::openapi;
use crate::ratelimit::{self, Limits, RateLimiter};
use crate::routes;
use crate::state::AppState;
use crate::tail;

/// The bearer tokens; a token set but empty is refused.
fn tokens(config: &Config) -> anyhow::Result<Arc<Tokens>> {
    if config.api_token.as_deref() == Some("") {
        anyhow::bail!("LOGSTREAM_API_TOKEN / --api-token is set but empty");
    }
    if config.api_read_token.as_deref() == Some("") {
        anyhow::bail!("LOGSTREAM_API_READ_TOKEN / --api-read-token is set but empty");
    }
    Ok(Arc::new(Tokens {
        control: config.api_token.clone(),
        read: config.api_read_token.clone(),
    }))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let registry = ops::new_registry();
    let metrics = Metrics::register(&registry)?;
    let pool = postgres::lazy_pool(&config.database)?;
    let redis = redis::Client::open(config.redis_url.as_str())
        .map_err(|e| anyhow::anyhow!("invalid LOGSTREAM_REDIS_URL / --redis-url: {e}"))?;
    let limiter = Arc::new(RateLimiter::new(
        redis.clone(),
        Limits {
            control: config.rate_limit_control_per_minute,
            read: config.rate_limit_read_per_minute,
            per_route: config.rate_limits.clone(),
        },
        metrics.limiter_local.clone(),
    ));
    let generators = Generators::new(
        config.generator_urls.clone(),
        redis,
        Duration::from_secs(config.generator_timeout_seconds),
    )?;
    let tokens = tokens(&config)?;
    let tail = tail::start(&config, metrics.tail.clone(), shutdown.clone());
    let state = AppState {
        pool: pool.clone(),
        generators: generators.clone(),
        rules: Arc::new(config.rules.load().map_err(anyhow::Error::msg)?),
        tail,
    };

    let ready = move || {
        let (pool, generators) = (pool.clone(), generators.clone());
        async move {
            let generators = if generators.urls().await.is_empty() {
                Err("no generator instances registered".to_owned())
            } else {
                Ok(())
            };
            vec![
                Check::new("postgres", postgres::check(&pool).await),
                Check::new("generators", generators),
            ]
        }
    };
    let api = Router::new()
        .route("/api/v1/generator/start", post(routes::generator::start))
        .route("/api/v1/generator/stop", post(routes::generator::stop))
        .route("/api/v1/generator/status", get(routes::generator::status))
        .route("/api/v1/stats", get(routes::stats::all))
        .route("/api/v1/stats/{service}", get(routes::stats::one))
        .route("/api/v1/windows", get(routes::windows::list))
        .route("/api/v1/alerts", get(routes::alerts::list))
        .route("/api/v1/alerts/rules", get(routes::alerts::rules))
        .route("/api/v1/logs", get(routes::logs::search))
        .route("/api/v1/tail", get(routes::tail::follow))
        .route("/api/v1/openapi.json", get(openapi::document))
        // Layers run outside-in: the rate limit first (it also slows token guessing), then auth.
        .route_layer(axum::middleware::from_fn_with_state(tokens, auth::enforce))
        .route_layer(axum::middleware::from_fn_with_state(
            (limiter, metrics.clone()),
            ratelimit::enforce,
        ))
        .with_state(state);
    let app = ops::with_json_errors(api.merge(ops::router(registry, ready)))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::record,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
    tracing::info!(?config, "gateway starting");
    ops::serve(config.listen, "LOGSTREAM_GATEWAY_LISTEN", app, shutdown).await
}
