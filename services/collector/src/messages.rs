//! What the stages hand each other, in the order a record travels: the consumer thread's
//! [`Input`] (a [`Record`] or a change of assignment) to the writer; a [`DeadLetter`] or a
//! [`Routed`] copy out of a batch to the sinks; a partition's [`StoredPosition`] read back from
//! PostgreSQL. Plain data, no behaviour; the batch the writer hands the committer is in
//! `pipeline::handoff`.

use tokio::sync::oneshot;

/// A record as taken off the Kafka consumer.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub instance_id: Option<String>,
    pub seq: Option<i64>,
    /// The producer's W3C trace context (`traceparent` header), if it sent one.
    pub traceparent: Option<String>,
    /// The `content-type` header (the format); detected from the bytes when absent.
    pub content_type: Option<String>,
}

/// What PostgreSQL holds for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPosition {
    /// The next offset to consume.
    pub next_offset: i64,
    /// The highest event time stored from the partition (epoch ms), for the watermark.
    pub max_event_ms: Option<i64>,
}

/// What the consumer thread tells the writer, in order.
pub enum Input {
    Record(Record),
    /// Partitions now owned, with what is stored for each (None: nothing stored yet).
    Assigned(Vec<(i32, Option<StoredPosition>)>),
    /// Partitions being taken away: flush, then acknowledge.
    Revoked(Vec<i32>, oneshot::Sender<()>),
    /// The partition was rewound to this stored offset (None: the beginning); records after this
    /// message follow it.
    Seeked(i32, Option<i64>),
}

/// A request from the writer to the consumer thread: rewind the partition to this stored
/// offset (None: the beginning).
pub type Rewind = (i32, Option<i64>);

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: Record,
    pub reason: &'static str,
    pub detail: String,
}

/// Dead-letter reason of a record without a value (the codec's reasons cover the rest).
pub const EMPTY_PAYLOAD: &str = "empty_payload";

/// Dead-letter reason of a record PostgreSQL refused to store (the server's message follows).
pub const STORAGE_REJECTED: &str = "storage_rejected";

/// A stored event that a route also sends elsewhere: the event as JSON (one NDJSON line).
#[derive(Debug, Clone)]
pub struct Routed {
    pub route: usize,
    pub key: Option<Vec<u8>>,
    pub json: Vec<u8>,
}
