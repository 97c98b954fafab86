//! Per-client rate limiting shared by the services that take requests from outside (the
//! gateway's API, the ingest service's event endpoints): a sliding window of one minute per key,
//! kept in Redis by one atomic Lua script that uses Redis server time, so every instance shares
//! the same count. When Redis is unreachable each instance falls back to an in-process sliding
//! window (and says so in its `*_rate_limiter_local` gauge), returning to Redis when it answers.
//!
//! The client is its token (hashed, never stored) or else its IP address. Answers carry
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`; refusals are 429 with
//! `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use prometheus::IntGauge;
use redis::aio::MultiplexedConnection;

use crate::ops::json_error;
use crate::sync::lock;

/// The window every limit is counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

const SLIDING_WINDOW: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', key, window_ms)
  return {1, limit - count - 1, window_ms}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window_ms - now}
";

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until a slot frees (refused) or the window ends (allowed).
    pub reset: Duration,
}

impl Decision {
    /// Whole seconds until [`Decision::reset`], rounded up.
    pub fn reset_seconds(&self) -> u64 {
        self.reset.as_millis().div_ceil(1000) as u64
    }

    /// The 429 answer to a refused request: `what` says which limit.
    pub fn refusal(&self, what: &str) -> Response {
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests per minute exceeded {what}",
                self.limit
            ),
            None,
        );
        set_header(&mut r, "retry-after", self.reset_seconds().max(1));
        r
    }

    /// Adds the `X-RateLimit-*` headers to an answer.
    pub fn describe(&self, response: &mut Response) {
        set_header(response, "x-ratelimit-limit", u64::from(self.limit));
        set_header(response, "x-ratelimit-remaining", u64::from(self.remaining));
        set_header(response, "x-ratelimit-reset", self.reset_seconds());
    }
}

fn set_header(response: &mut Response, name: &'static str, value: u64) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        response.headers_mut().insert(name, v);
    }
}

/// A sliding window per key, in this process (the fallback).
#[derive(Default)]
pub struct LocalWindows {
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LocalWindows {
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Decision {
        let mut hits = lock(&self.hits);
        if hits.len() > 100_000 {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let queue = hits.entry(key.to_owned()).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            queue.pop_front();
        }
        if (queue.len() as u32) < limit {
            queue.push_back(now);
            Decision {
                allowed: true,
                limit,
                remaining: limit - queue.len() as u32,
                reset: WINDOW,
            }
        } else {
            let oldest = queue.front().copied().unwrap_or(now);
            Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset: WINDOW.saturating_sub(now.duration_since(oldest)),
            }
        }
    }
}

/// After Redis failed, how long requests go straight to the local windows before Redis is tried
/// again (so an unreachable Redis costs one attempt per interval, not one per request).
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// Sliding windows in Redis, with the local fallback.
pub struct SlidingWindows {
    redis: redis::Client,
    /// One multiplexed connection, shared by all requests; dropped on error and made anew.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// While set and in the future, Redis is not tried.
    retry_at: Mutex<Option<Instant>>,
    script: redis::Script,
    local: LocalWindows,
    /// 1 while the local windows stand in for Redis.
    using_local: IntGauge,
}

impl SlidingWindows {
    pub fn new(redis: redis::Client, using_local: IntGauge) -> Self {
        Self {
            redis,
            connection: tokio::sync::Mutex::new(None),
            retry_at: Mutex::new(None),
            script: redis::Script::new(SLIDING_WINDOW),
            local: LocalWindows::default(),
            using_local,
        }
    }

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.redis.get_multiplexed_async_connection().await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn check_redis(&self, key: &str, limit: u32) -> redis::RedisResult<Decision> {
        let mut conn = self.connection().await?;
        let (allowed, remaining, reset_ms): (i64, i64, i64) = self
            .script
            .key(key)
            .arg(limit)
            .arg(WINDOW.as_millis() as u64)
            .arg(rand_suffix())
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: remaining.max(0) as u32,
            reset: Duration::from_millis(reset_ms.max(0) as u64),
        })
    }

    /// Counts one request under `key` against `limit` per [`WINDOW`].
    pub async fn check(&self, key: &str, limit: u32) -> Decision {
        let backing_off = lock(&self.retry_at).is_some_and(|at| Instant::now() < at);
        if backing_off {
            return self.local.check(key, limit, Instant::now());
        }
        match tokio::time::timeout(Duration::from_millis(500), self.check_redis(key, limit)).await {
            Ok(Ok(decision)) => {
                *lock(&self.retry_at) = None;
                if self.using_local.get() == 1 {
                    tracing::info!("rate limiter back on redis");
                    self.using_local.set(0);
                }
                decision
            }
            outcome => {
                *self.connection.lock().await = None;
                *lock(&self.retry_at) = Some(Instant::now() + RETRY_REDIS_AFTER);
                if self.using_local.get() == 0 {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(%error, "rate limiter falls back to local windows (redis unreachable)");
                    self.using_local.set(1);
                }
                self.local.check(key, limit, Instant::now())
            }
        }
    }
}

/// A member name no other request of any instance uses: a random per-process salt (two
/// containers can both be pid 1) and a counter.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SALT: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let salt = *SALT.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    salt.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// FNV-1a: a stable, non-reversible-enough short id for a token in a Redis key (never the token).
pub fn token_id(token: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("t{hash:016x}")
}

/// The client a request counts for: its token's id when it has one, else its IP address.
pub fn client_of(request: &Request, token: Option<&str>) -> String {
    match token {
        Some(t) if !t.is_empty() => token_id(t),
        _ => request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_window_refuses_above_limit_and_frees_slots() {
        let local = LocalWindows::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let d = local.check("k", 3, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = local.check("k", 3, t0 + Duration::from_secs(10));
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_secs(50));
        assert_eq!(refused.reset_seconds(), 50);
        assert!(local.check("other", 3, t0).allowed);
        assert!(local.check("k", 3, t0 + WINDOW).allowed);
        assert_ne!(token_id("a"), token_id("b"));
    }
}
