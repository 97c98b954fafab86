//! An OpenSearch or Elasticsearch cluster: events indexed through the `_bulk` API into daily
//! indices (`PREFIX-YYYY.MM.DD`, their template `monitoring/opensearch/index-template.json`
//! installed at start), each document's id its topic, partition and offset, so indexing it
//! again replaces it. Only the items the cluster could not take now (429, 5xx) are sent again;
//! an item it refuses for good (a mapping conflict) is counted and logged, never retried.

use std::time::Duration;

use logstream_core::archive::Object;
use serde::Deserialize;

/// The shipped template; its pattern `logstream-*` becomes `PREFIX-*`.
const TEMPLATE: &str = include_str!("../../../../monitoring/opensearch/index-template.json");

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the search cluster: {0}")]
    Unreachable(String),
    #[error("the search cluster answered {status}: {body}")]
    Refused { status: u16, body: String },
}

impl ClusterError {
    /// The `reason` label of `sink_errors_total`.
    pub fn reason(&self) -> String {
        match self {
            ClusterError::Unreachable(_) => "search_unreachable".to_owned(),
            ClusterError::Refused { status, .. } => format!("search_status_{status}"),
        }
    }
}

/// What a `_bulk` request did: the documents refused for good, and how many are left to send
/// again (429 or 5xx per item; 0: done).
#[derive(Debug, Default)]
pub struct Bulk {
    pub refused: Vec<Refused>,
    pub left: usize,
}

/// A document the cluster refused for good.
#[derive(Debug)]
pub struct Refused {
    pub id: String,
    pub status: u16,
    pub reason: String,
}

pub struct Cluster {
    url: String,
    index_prefix: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl Cluster {
    pub fn new(url: &str, index_prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the search cluster's HTTP client: {e}"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            index_prefix: index_prefix.to_owned(),
            http,
        })
    }

    /// Installs (or replaces) the index template of the daily indices.
    pub async fn install_template(&self) -> Result<(), ClusterError> {
        let template = TEMPLATE.replace("\"logstream-*\"", &format!("\"{}-*\"", self.index_prefix));
        let response = self
            .http
            .put(format!(
                "{}/_index_template/{}",
                self.url, self.index_prefix
            ))
            .header("content-type", "application/json")
            .body(template)
            .send()
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        check(response).await.map(|_| ())
    }

    /// Indexes `object`'s lines into its index, each under `id(offset)`. What is left to index
    /// (items the cluster could not take now) stays in `object`.
    pub async fn bulk(
        &self,
        object: &mut Object,
        id: impl Fn(i64) -> String,
    ) -> Result<Bulk, ClusterError> {
        let lines: Vec<&[u8]> = object
            .ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut body = Vec::with_capacity(object.ndjson.len() + lines.len() * 96);
        for (line, offset) in lines.iter().zip(&object.offsets) {
            let action = serde_json::json!({"index": {"_index": object.key, "_id": id(*offset)}});
            serde_json::to_writer(&mut body, &action)
                .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
            body.push(b'\n');
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let response = self
            .http
            .post(format!("{}/_bulk", self.url))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        let text = check(response).await?;
        let answer: BulkAnswer =
            serde_json::from_str(&text).map_err(|e| ClusterError::Refused {
                status: 200,
                body: format!("unreadable _bulk answer: {e}"),
            })?;
        if !answer.errors {
            return Ok(Bulk::default());
        }
        let mut refused = Vec::new();
        let (mut ndjson, mut offsets) = (Vec::new(), Vec::new());
        for ((line, offset), item) in lines.iter().zip(&object.offsets).zip(&answer.items) {
            let Some(item) = item.values().next() else {
                continue;
            };
            match item.status {
                200..=299 => {}
                429 | 500..=599 => {
                    ndjson.extend_from_slice(line);
                    ndjson.push(b'\n');
                    offsets.push(*offset);
                }
                status => refused.push(Refused {
                    id: id(*offset),
                    status,
                    reason: item
                        .error
                        .as_ref()
                        .map_or_else(String::new, |e| e.to_string()),
                }),
            }
        }
        let left = offsets.len();
        object.events = left as u64;
        object.ndjson = ndjson;
        object.offsets = offsets;
        Ok(Bulk { refused, left })
    }
}

/// The body of a successful answer; 429 and other failures as errors.
async fn check(response: reqwest::Response) -> Result<String, ClusterError> {
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(ClusterError::Refused {
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }
}
