//! The values some query parameters take, as the OpenAPI document lists them (the handlers
//! parse the parameters themselves, and read some aliases too).

/// A level, as a query parameter names it (documents the values the handlers read).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum LevelName {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

/// An alert kind, as a query parameter names it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AlertKindName {
    ErrorRate,
    RateSpike,
    RateDrop,
    SqlInjection,
    Xss,
    PathTraversal,
    BruteForce,
    Scanner,
    Critical,
}

/// An alert episode's status, as a query parameter names it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AlertStatusName {
    Firing,
    Resolved,
}
