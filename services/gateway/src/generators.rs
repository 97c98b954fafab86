//! Finding and calling generator instances. The set is the static list plus every instance
//! registered in Redis (`logstream:generators:<id>` = URL), or, while Redis cannot be read, the
//! instances last read from it; calls fan out concurrently.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logstream_core::api::{InstanceStatus, Unreachable, GENERATOR_REGISTRY_PREFIX};
use logstream_service::sync::lock;
use logstream_service::trace_context;
use redis::AsyncCommands;

#[derive(Clone)]
pub struct Generators {
    static_urls: Vec<String>,
    redis: redis::Client,
    http: reqwest::Client,
    /// The registrations last read from Redis, used while it cannot be read.
    last_registered: Arc<Mutex<Vec<String>>>,
}

impl Generators {
    pub fn new(
        static_urls: Vec<String>,
        redis: redis::Client,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        let static_urls = static_urls
            .into_iter()
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        Ok(Self {
            static_urls,
            redis,
            http,
            last_registered: Arc::default(),
        })
    }

    /// The instances' base URLs: static ones plus those registered in Redis (while Redis cannot
    /// be read, those it held last time).
    pub async fn urls(&self) -> Vec<String> {
        let mut urls: BTreeSet<String> = self.static_urls.iter().cloned().collect();
        let registered = match tokio::time::timeout(Duration::from_secs(2), self.registered()).await
        {
            Ok(Ok(found)) => {
                let found: Vec<String> = found
                    .into_iter()
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect();
                *lock(&self.last_registered) = found.clone();
                found
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer within 2 s".to_owned(),
                };
                let last = lock(&self.last_registered).clone();
                tracing::warn!(%error, instances = last.len(),
                    "cannot read generator registrations from redis; using those read last");
                last
            }
        };
        urls.extend(registered);
        urls.into_iter().collect()
    }

    async fn registered(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.redis.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = {
            let mut iter = conn
                .scan_match::<_, String>(format!("{GENERATOR_REGISTRY_PREFIX}*"))
                .await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = conn.mget(&keys).await?;
        Ok(values.into_iter().flatten().collect())
    }

    /// Calls `path` on every instance (POST with `body`, or GET), in parallel, passing on the
    /// current trace context.
    pub async fn call_all(
        &self,
        path: &str,
        body: Option<bytes::Bytes>,
    ) -> (Vec<InstanceStatus>, Vec<Unreachable>) {
        let mut calls = tokio::task::JoinSet::new();
        let trace_headers = trace_context::http_headers(&tracing::Span::current());
        for url in self.urls().await {
            let http = self.http.clone();
            let body = body.clone();
            let target = format!("{url}{path}");
            let headers = trace_headers.clone();
            calls.spawn(async move {
                let request = match body {
                    Some(b) => http
                        .post(&target)
                        .header("content-type", "application/json")
                        .body(b),
                    None => http.get(&target),
                }
                .headers(headers);
                let result = async {
                    let response = request.send().await.map_err(|e| e.to_string())?;
                    let status = response.status();
                    if !status.is_success() {
                        let text = response.text().await.unwrap_or_default();
                        return Err(format!("{status}: {text}"));
                    }
                    response
                        .json::<InstanceStatus>()
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                (url, result)
            });
        }
        let mut statuses = Vec::new();
        let mut unreachable = Vec::new();
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((_, Ok(status))) => statuses.push(status),
                Ok((url, Err(error))) => unreachable.push(Unreachable { url, error }),
                Err(e) => tracing::error!(error = %e, "generator call task failed"),
            }
        }
        statuses.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        statuses.dedup_by(|a, b| a.instance_id == b.instance_id);
        unreachable.sort_by(|a, b| a.url.cmp(&b.url));
        (statuses, unreachable)
    }
}
