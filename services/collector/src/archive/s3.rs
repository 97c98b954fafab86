//! An S3-compatible bucket (AWS S3, MinIO, s3s-fs, ...): objects PUT whole, each request signed
//! (SigV4, by rusty-s3) with the standard AWS credentials variables, sent with reqwest.

use std::time::Duration;

use rusty_s3::{Credentials, S3Action, UrlStyle};

/// Where the bucket is served, from the settings (`LOGSTREAM_S3_*`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Empty: AWS (`https://s3.REGION.amazonaws.com`).
    pub url: String,
    pub region: String,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`), as most servers other than AWS want.
    pub path_style: bool,
    /// Longest a PUT may take.
    pub timeout: Duration,
    /// Access key, secret key, and session token (temporary credentials).
    pub credentials: Option<(String, String, Option<String>)>,
}

/// Why an object was not stored; retried by the caller.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("cannot reach the S3 endpoint: {0}")]
    Unreachable(String),
    #[error("the S3 server answered {status}: {body}")]
    Refused { status: u16, body: String },
}

impl PutError {
    /// The `reason` label of `sink_errors_total`.
    pub fn reason(&self) -> String {
        match self {
            PutError::Unreachable(_) => "s3_unreachable".to_owned(),
            PutError::Refused { status, .. } => format!("s3_status_{status}"),
        }
    }
}

pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

/// How long a signed request stays valid (a PUT starts right after signing).
const SIGNATURE_VALIDITY: Duration = Duration::from_secs(900);

impl Bucket {
    /// The bucket `name` at `endpoint`; fails naming the setting at fault.
    pub fn new(endpoint: &Endpoint, name: &str) -> anyhow::Result<Self> {
        let url = if endpoint.url.is_empty() {
            format!("https://s3.{}.amazonaws.com", endpoint.region)
        } else {
            endpoint.url.clone()
        };
        let url = url
            .parse()
            .map_err(|e| anyhow::anyhow!("LOGSTREAM_S3_ENDPOINT: {url:?} is not a URL: {e}"))?;
        let style = if endpoint.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(url, style, name.to_owned(), endpoint.region.clone())
            .map_err(|e| anyhow::anyhow!("LOGSTREAM_S3_ENDPOINT / LOGSTREAM_ROUTES: {e}"))?;
        let credentials = match endpoint.credentials.clone() {
            Some((key, secret, None)) => Credentials::new(key, secret),
            Some((key, secret, Some(token))) => Credentials::new_with_token(key, secret, token),
            None => anyhow::bail!(
                "an s3:// route needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (and AWS_SESSION_TOKEN for temporary ones)"
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(endpoint.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the S3 HTTP client: {e}"))?;
        Ok(Self {
            bucket,
            credentials,
            http,
        })
    }

    /// Stores `body` under `key`, replacing any object there.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PutError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNATURE_VALIDITY);
        let response = self
            .http
            .put(url)
            .header("content-type", "application/zstd")
            .body(body)
            .send()
            .await
            .map_err(|e| PutError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(PutError::Refused {
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
