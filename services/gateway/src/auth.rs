//! Bearer tokens, checked in constant time and never logged: the control token
//! (`LOGSTREAM_API_TOKEN`) guards start/stop; the optional read token
//! (`LOGSTREAM_API_READ_TOKEN`) guards the read endpoints, which also accept the control token.
//! The OpenAPI document stays open.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use logstream_service::ops::json_error;

/// Paths any client may read without a token.
const OPEN: [&str; 1] = ["/api/v1/openapi.json"];

/// The configured tokens; `None` leaves that kind of endpoint open.
#[derive(Clone, Default)]
pub struct Tokens {
    pub control: Option<String>,
    pub read: Option<String>,
}

impl Tokens {
    /// Whether `headers` may call `method route`.
    fn allows(
        &self,
        method: &Method,
        route: &str,
        headers: &HeaderMap,
    ) -> Result<(), Unauthorized> {
        if OPEN.contains(&route) {
            return Ok(());
        }
        if method == Method::POST {
            return require(self.control.as_deref(), headers);
        }
        match self.read.as_deref() {
            None => Ok(()),
            Some(read) => require(Some(read), headers).or_else(|e| match self.control.as_deref() {
                Some(control) => require(Some(control), headers),
                None => Err(e),
            }),
        }
    }
}

/// Middleware for the API routes: 401 unless the request carries the token its route needs.
pub async fn enforce(State(tokens): State<Arc<Tokens>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    match tokens.allows(request.method(), &route, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

/// The request lacks the right bearer token: answers 401.
#[derive(Debug)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        json_error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token",
            Some("Authorization"),
        )
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Ok when no token is configured or the request carries `Authorization: Bearer <token>`.
pub fn require(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Unauthorized> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = bearer_token(headers).unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_token() {
        let mut headers = HeaderMap::new();
        assert!(require(None, &headers).is_ok());
        assert!(require(Some("s3cret"), &headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            "Bearer s3cre".parse().expect("header"),
        );
        assert!(require(Some("s3cret"), &headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            "Bearer s3cret".parse().expect("header"),
        );
        assert!(require(Some("s3cret"), &headers).is_ok());
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn read_token_guards_reads_and_control_token_opens_everything() {
        let tokens = Tokens {
            control: Some("ctl".into()),
            read: Some("rd".into()),
        };
        let get = Method::GET;
        let post = Method::POST;
        let stats = "/api/v1/stats";
        let start = "/api/v1/generator/start";
        assert!(tokens.allows(&get, stats, &HeaderMap::new()).is_err());
        assert!(tokens.allows(&get, stats, &bearer("rd")).is_ok());
        assert!(tokens.allows(&get, stats, &bearer("ctl")).is_ok());
        assert!(tokens.allows(&get, stats, &bearer("nope")).is_err());
        assert!(tokens.allows(&post, start, &bearer("rd")).is_err());
        assert!(tokens.allows(&post, start, &bearer("ctl")).is_ok());
        assert!(tokens
            .allows(&get, "/api/v1/openapi.json", &HeaderMap::new())
            .is_ok());
        let control_only = Tokens {
            control: Some("ctl".into()),
            read: None,
        };
        assert!(control_only.allows(&get, stats, &HeaderMap::new()).is_ok());
        assert!(control_only
            .allows(&post, start, &HeaderMap::new())
            .is_err());
    }
}
