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
    /// Largest `_bulk` body (at least one document each).
    max_body: usize,
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
    pub fn new(
        url: &str,
        index_prefix: &str,
        timeout: Duration,
        max_body: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the search cluster's HTTP client: {e}"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            index_prefix: index_prefix.to_owned(),
            http,
            max_body,
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

    /// Indexes `object`'s lines into its index, each under `id(offset)`, in `_bulk` requests of
    /// at most about `max_body` bytes (at least one document each). Documents refused for good
    /// are appended to `refused` (also when a later request fails); what is left to index (items
    /// the cluster could not take now, and every document of a failed request and after it)
    /// stays in `object`, and their number is returned.
    pub async fn bulk(
        &self,
        object: &mut Object,
        id: impl Fn(i64) -> String,
        refused: &mut Vec<Refused>,
    ) -> Result<usize, ClusterError> {
        let ndjson = std::mem::take(&mut object.ndjson);
        let offsets = std::mem::take(&mut object.offsets);
        let lines: Vec<&[u8]> = ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if lines.len() != offsets.len() {
            // Lines are single-line JSON (`archive::line`): never expected. Nothing is sent, so
            // nothing is indexed under another document's id; the segment stays unstored.
            let error = format!("{} lines for {} offsets", lines.len(), offsets.len());
            object.ndjson = ndjson;
            object.offsets = offsets;
            return Err(ClusterError::Refused {
                status: 0,
                body: error,
            });
        }
        let documents: Vec<(&[u8], i64)> = lines.into_iter().zip(offsets.iter().copied()).collect();
        let mut left = Left::default();
        let mut failure = None;
        for chunk in chunks(&documents, &object.key, &id, self.max_body) {
            if failure.is_some() {
                left.extend(chunk);
                continue;
            }
            match self.send(body(chunk, &object.key, &id)).await {
                Ok(None) => {}
                Ok(Some(statuses)) => refused.extend(sort(chunk, &statuses, &id, &mut left)),
                Err(e) => {
                    left.extend(chunk);
                    failure = Some(e);
                }
            }
        }
        let count = left.offsets.len();
        object.events = count as u64;
        object.ndjson = left.ndjson;
        object.offsets = left.offsets;
        match failure {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    /// One `_bulk` request; the status (and error, if any) of each item, in order (None: every
    /// item indexed).
    async fn send(&self, body: Vec<u8>) -> Result<Option<Vec<Item>>, ClusterError> {
        let response = self
            .http
            .post(format!("{}/_bulk?filter_path={FILTER}", self.url))
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
            return Ok(None);
        }
        Ok(Some(
            answer
                .items
                .into_iter()
                .map(|mut item| {
                    // An item without a status is sent again, as a 5xx would be.
                    item.drain().map(|(_, v)| v).next().unwrap_or(Item {
                        status: 500,
                        error: None,
                    })
                })
                .collect(),
        ))
    }
}

/// Only what the sink reads of a `_bulk` answer: whether any item failed, and each item's status
/// and error (a full answer is ~200 bytes per document).
const FILTER: &str = "errors,items.*.status,items.*.error.type,items.*.error.reason";

/// `documents` cut into runs whose `_bulk` body is at most about `max_body` bytes (a larger
/// document alone).
fn chunks<'a>(
    documents: &'a [(&'a [u8], i64)],
    index: &str,
    id: &impl Fn(i64) -> String,
    max_body: usize,
) -> Vec<&'a [(&'a [u8], i64)]> {
    let mut chunks = Vec::new();
    let (mut from, mut size) = (0, 0);
    for (i, (line, offset)) in documents.iter().enumerate() {
        // The action line `{"index":{"_index":"…","_id":"…"}}`, the document, two newlines.
        let bytes = 32 + index.len() + id(*offset).len() + line.len() + 2;
        if size > 0 && size + bytes > max_body {
            chunks.push(&documents[from..i]);
            (from, size) = (i, 0);
        }
        size += bytes;
    }
    if from < documents.len() {
        chunks.push(&documents[from..]);
    }
    chunks
}

/// The `_bulk` body indexing `documents` into `index`.
fn body(documents: &[(&[u8], i64)], index: &str, id: &impl Fn(i64) -> String) -> Vec<u8> {
    let size: usize = documents.iter().map(|(l, _)| l.len() + 96).sum();
    let mut body = Vec::with_capacity(size);
    for (line, offset) in documents {
        let action = serde_json::json!({"index": {"_index": index, "_id": id(*offset)}});
        // A map of strings always serialises.
        let _ = serde_json::to_writer(&mut body, &action);
        body.push(b'\n');
        body.extend_from_slice(line);
        body.push(b'\n');
    }
    body
}

/// Documents to send again.
#[derive(Default)]
struct Left {
    ndjson: Vec<u8>,
    offsets: Vec<i64>,
}

impl Left {
    fn extend(&mut self, documents: &[(&[u8], i64)]) {
        for (line, offset) in documents {
            self.ndjson.extend_from_slice(line);
            self.ndjson.push(b'\n');
            self.offsets.push(*offset);
        }
    }
}

/// Sorts a request's documents by their item's status (none: all indexed): 429 and 5xx to send
/// again into `left`, other failures refused for good (returned).
fn sort(
    documents: &[(&[u8], i64)],
    statuses: &[Item],
    id: &impl Fn(i64) -> String,
    left: &mut Left,
) -> Vec<Refused> {
    let mut refused = Vec::new();
    if statuses.len() != documents.len() {
        // Not one item per document: send them all again (their ids make that harmless).
        left.extend(documents);
        return refused;
    }
    for (document, item) in documents.iter().zip(statuses) {
        match item.status {
            200..=299 => {}
            429 | 500..=599 => left.extend(std::slice::from_ref(document)),
            status => refused.push(Refused {
                id: id(document.1),
                status,
                reason: item
                    .error
                    .as_ref()
                    .map_or_else(String::new, |e| e.to_string()),
            }),
        }
    }
    refused
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;

    use super::*;

    /// An answer of the test's `_bulk` endpoint to a whole request: 503.
    const UNAVAILABLE: u16 = u16::MAX;

    /// A `_bulk` endpoint answering each request with the next of `answers` (item statuses;
    /// empty: no error; [`UNAVAILABLE`]: the whole request refused), recording each request's
    /// ids.
    async fn server(answers: Vec<Vec<u16>>) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
        type Shared = (Arc<Mutex<Vec<Vec<u16>>>>, Arc<Mutex<Vec<Vec<String>>>>);
        async fn bulk(State((answers, seen)): State<Shared>, body: String) -> (StatusCode, String) {
            let ids: Vec<String> = body
                .lines()
                .step_by(2)
                .map(|l| {
                    let action: serde_json::Value = serde_json::from_str(l).expect("action");
                    action["index"]["_id"].as_str().expect("id").to_owned()
                })
                .collect();
            let statuses = {
                let mut answers = answers.lock().expect("answers");
                if answers.is_empty() {
                    Vec::new()
                } else {
                    answers.remove(0)
                }
            };
            seen.lock().expect("seen").push(ids);
            if statuses == [UNAVAILABLE] {
                return (StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned());
            }
            if statuses.is_empty() {
                return (StatusCode::OK, r#"{"errors":false}"#.to_owned());
            }
            let items: Vec<serde_json::Value> = statuses
                .iter()
                .map(|s| match s {
                    200..=299 => serde_json::json!({"index": {"status": s}}),
                    s => serde_json::json!({"index": {"status": s, "error": {"type": "t"}}}),
                })
                .collect();
            let answer = serde_json::json!({"errors": true, "items": items});
            (StatusCode::OK, answer.to_string())
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/_bulk", post(bulk))
            .with_state((Arc::new(Mutex::new(answers)), seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn documents(offsets: std::ops::Range<i64>) -> Object {
        let mut ndjson = Vec::new();
        for o in offsets.clone() {
            ndjson.extend_from_slice(format!(r#"{{"message":"event {o}"}}"#).as_bytes());
            ndjson.push(b'\n');
        }
        Object {
            key: "logstream-2026.12.04".to_owned(),
            ndjson,
            events: offsets.clone().count() as u64,
            offsets: offsets.collect(),
        }
    }

    fn id(offset: i64) -> String {
        format!("logs.raw-0-{offset}")
    }

    fn cluster(url: &str, max_body: usize) -> Cluster {
        Cluster::new(url, "logstream", Duration::from_secs(5), max_body).expect("client")
    }

    #[tokio::test]
    async fn only_the_items_not_taken_now_are_sent_again_and_refusals_are_reported() {
        let (url, seen) = server(vec![vec![201, 429, 400, 503, 200], vec![]]).await;
        let cluster = cluster(&url, 1 << 20);
        let mut object = documents(10..15);
        let mut refused = Vec::new();
        let left = cluster.bulk(&mut object, id, &mut refused).await;
        assert_eq!(left.expect("first request"), 2);
        assert_eq!((object.offsets.clone(), object.events), (vec![11, 13], 2));
        let refused: Vec<_> = refused.iter().map(|r| (r.id.as_str(), r.status)).collect();
        assert_eq!(refused, vec![("logs.raw-0-12", 400)]);
        let mut none = Vec::new();
        let left = cluster.bulk(&mut object, id, &mut none).await;
        assert_eq!((left.expect("second request"), none.len()), (0, 0));
        assert!(object.offsets.is_empty());
        let seen = seen.lock().expect("seen").clone();
        assert_eq!(seen[1], vec!["logs.raw-0-11", "logs.raw-0-13"]);
    }

    #[tokio::test]
    async fn large_objects_go_in_several_requests_and_a_failed_request_keeps_the_rest() {
        // Each document's request bytes are about 100: 250 bytes hold two.
        let (url, seen) = server(vec![vec![], vec![200, 429], vec![]]).await;
        let mut object = documents(0..7);
        let left = cluster(&url, 250)
            .bulk(&mut object, id, &mut Vec::new())
            .await;
        let sizes: Vec<usize> = seen.lock().expect("seen").iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 2, 1]);
        assert_eq!(left.expect("requests"), 1);
        assert_eq!(object.offsets, vec![3]);

        // The second request refused whole: it and every later document stay to be sent again,
        // and the first request's refusal is still reported.
        let (url, seen) = server(vec![vec![200, 409], vec![UNAVAILABLE]]).await;
        let mut object = documents(0..7);
        let mut refused = Vec::new();
        let failed = cluster(&url, 250).bulk(&mut object, id, &mut refused).await;
        assert!(matches!(
            failed,
            Err(ClusterError::Refused { status: 503, .. })
        ));
        assert_eq!(
            seen.lock().expect("seen").len(),
            2,
            "no request after the failed one"
        );
        assert_eq!(object.offsets, vec![2, 3, 4, 5, 6]);
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (refused[0].id.as_str(), refused[0].status),
            ("logs.raw-0-1", 409)
        );

        // An unreachable cluster: every document stays to be sent again.
        let mut object = documents(0..7);
        let gone = cluster("http://127.0.0.1:9", 250);
        let failed = gone.bulk(&mut object, id, &mut Vec::new()).await;
        assert!(matches!(failed, Err(ClusterError::Unreachable(_))));
        assert_eq!(object.offsets, (0..7).collect::<Vec<_>>());
    }
}
