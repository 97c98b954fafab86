//! What the stages hand each other, in the order a record travels: the consumer thread's
//! [`Input`] (a [`Record`] or a change of assignment) to the writer; a [`DeadLetter`], a
//! [`Routed`] copy, an [`AlertChange`] and a [`DetectorSnapshot`] out of a batch to the sinks;
//! a partition's [`StoredPosition`] read back from PostgreSQL. Plain data, no behaviour; the
//! batch the writer hands the committer is in `pipeline::handoff`.

use std::sync::Arc;

use logstream_core::detect::episodes::Change;
use tokio::sync::oneshot;

/// A record as taken off the Kafka consumer.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub instance_id: Option<Arc<str>>,
    pub seq: Option<i64>,
    /// The producer's W3C trace context (`traceparent` header), if it sent one.
    pub traceparent: Option<String>,
    /// The `content-type` header (the format); detected from the bytes when absent.
    pub content_type: Option<Arc<str>>,
    /// Kafka's timestamp of the record (ms; the producer's or the broker's), for the lag.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// About how many bytes of memory the record holds (its buffers and itself).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.payload.as_ref().map_or(0, Vec::capacity)
            + self.key.as_ref().map_or(0, Vec::capacity)
            + self.traceparent.as_ref().map_or(0, String::capacity)
    }
}

/// What PostgreSQL holds for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    /// The next offset to consume.
    pub next_offset: i64,
    /// The highest event time stored from the partition (epoch ms), for the watermark.
    pub max_event_ms: Option<i64>,
    /// The partition's detector state as of an offset at or before `next_offset`.
    pub detectors: Option<DetectorSnapshot>,
}

impl StoredPosition {
    /// Where reading must start again: the detector snapshot's offset (the records from there
    /// to `next_offset` are stored, and only replayed through the detectors), else
    /// `next_offset`.
    pub fn read_from(&self) -> i64 {
        self.detectors
            .as_ref()
            .map_or(self.next_offset, |s| s.next_offset.min(self.next_offset))
    }
}

/// One partition's detector state (JSON) as of `next_offset`: every record before it seen.
#[derive(Clone, PartialEq, Eq)]
pub struct DetectorSnapshot {
    pub partition: i32,
    pub next_offset: i64,
    pub state: String,
}

impl std::fmt::Debug for DetectorSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorSnapshot")
            .field("partition", &self.partition)
            .field("next_offset", &self.next_offset)
            .field("state_bytes", &self.state.len())
            .finish()
    }
}

/// A change of an alert episode, kept by the detectors of `partition`.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub partition: i32,
    pub change: Change,
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
