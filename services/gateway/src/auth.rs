//! Bearer-token check for control endpoints, in constant time. The token is never logged.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use logstream_service::ops::json_error;

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
}
