//! Per-client rate limiting of the API: a sliding window of one minute per (client, route),
//! in Redis with a local fallback (`logstream_service::ratelimit`). The client is its bearer
//! token (hashed, never stored) or else its IP address. Answers carry `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining`, `X-RateLimit-Reset`; refusals are 429 with `Retry-After` and are
//! counted in `gateway_rate_limited_total`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use logstream_service::ratelimit::{client_of, Decision, SlidingWindows};
use prometheus::IntGauge;

use crate::metrics::Metrics;

/// Requests per minute: a default for control routes, one for read routes, and overrides by
/// route template.
#[derive(Debug, Clone)]
pub struct Limits {
    pub control: u32,
    pub read: u32,
    pub per_route: HashMap<String, u32>,
}

impl Limits {
    pub fn for_route(&self, route: &str, is_control: bool) -> u32 {
        self.per_route.get(route).copied().unwrap_or(if is_control {
            self.control
        } else {
            self.read
        })
    }
}

/// Parses `LOGSTREAM_RATE_LIMITS`: `ROUTE=N` pairs separated by commas.
pub fn parse_overrides(text: &str) -> Result<HashMap<String, u32>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (route, n) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not ROUTE=N"))?;
            let n = n
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{pair:?}: N must be a whole number"))?;
            Ok((route.trim().to_owned(), n))
        })
        .collect()
}

pub struct RateLimiter {
    windows: SlidingWindows,
    limits: Limits,
}

impl RateLimiter {
    pub fn new(redis: redis::Client, limits: Limits, using_local: IntGauge) -> Self {
        Self {
            windows: SlidingWindows::new(redis, using_local),
            limits,
        }
    }

    pub async fn check(&self, client: &str, route: &str, is_control: bool) -> Decision {
        let limit = self.limits.for_route(route, is_control);
        let key = format!("logstream:ratelimit:{route}:{client}");
        self.windows.check(&key, limit).await
    }
}

/// Middleware for the API routes.
pub async fn enforce(
    State((limiter, metrics)): State<(Arc<RateLimiter>, Metrics)>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let is_control = request.method() == axum::http::Method::POST;
    let client = client_of(&request, crate::auth::bearer_token(request.headers()));
    let decision = limiter.check(&client, &route, is_control).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        metrics.rate_limited.inc();
        decision.refusal(&format!("on {route}"))
    };
    decision.describe(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse() {
        let o = parse_overrides("/api/v1/stats=5, /api/v1/generator/start=2").expect("valid");
        assert_eq!(o.get("/api/v1/stats"), Some(&5));
        assert!(parse_overrides("x").is_err());
        let limits = Limits {
            control: 1,
            read: 2,
            per_route: o,
        };
        assert_eq!(limits.for_route("/api/v1/stats", false), 5);
        assert_eq!(limits.for_route("/api/v1/windows", false), 2);
        assert_eq!(limits.for_route("/api/v1/generator/stop", true), 1);
    }
}
