//! The gateway's API as the CLI calls it: JSON in, JSON out, the gateway's error message (and
//! the field it names) as the error.

use anyhow::{anyhow, Context};
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    /// Without a timeout: a tail lasts until interrupted.
    http_streaming: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(70))
            .build()
            .context("cannot build the HTTP client")?;
        let http_streaming = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            http_streaming,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn get(&self, path: &str, query: &[(String, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url_with(path, query)?)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// Follows a Server-Sent Events stream, calling `each(event name, data)` per event, until
    /// the gateway ends it.
    pub async fn follow(
        &self,
        path: &str,
        query: &[(String, String)],
        mut each: impl FnMut(&str, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let request = self
            .http_streaming
            .get(self.url_with(path, query)?)
            .header("accept", "text/event-stream");
        let mut response = self.check(request).await?;
        let mut buffer = String::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .context("the gateway ended the tail")?
        {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut name, mut data) = ("", String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !data.is_empty() {
                    each(name, &data)?;
                }
            }
        }
        Err(anyhow!("the gateway ended the tail"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of `path` with `query` (percent-encoded).
    fn url_with(&self, path: &str, query: &[(String, String)]) -> anyhow::Result<reqwest::Url> {
        reqwest::Url::parse_with_params(&self.url(path), query)
            .with_context(|| format!("{:?} is not a URL (--gateway)", self.base))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self.check(request).await?;
        let body = response
            .text()
            .await
            .context("the gateway's answer was cut off")?;
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// Sends `request` with the token; the response when it succeeded, else the gateway's error.
    async fn check(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the gateway at {} (set --gateway or LOGSTREAM_GATEWAY_URL)",
                self.base
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let message = value["error"].as_str().unwrap_or("no error message");
        let field = value["field"]
            .as_str()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            "; set --token or LOGSTREAM_API_TOKEN"
        } else {
            ""
        };
        Err(anyhow!(
            "the gateway answered {status}: {message}{field}{hint}"
        ))
    }
}
