//! One batch of consumed records on its way to storage: decoded events as `COPY` rows, window
//! counts, records to dead-letter, and the next offset per partition. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use logstream_core::copy::{push_int, push_opt_text, push_text};
use logstream_core::format::decode;
use logstream_core::json;
use logstream_core::window::WindowCounts;
use logstream_core::Level;

/// Dead-letter reason of a record without a value (the codec's reasons cover the rest).
pub const EMPTY_PAYLOAD: &str = "empty_payload";

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

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: Record,
    pub reason: &'static str,
    pub detail: String,
}

/// Most distinct trace contexts a batch remembers (its span links to them).
pub const MAX_TRACES: usize = 32;

/// The columns the `COPY` rows fill, in order.
pub const COPY_COLUMNS: &str =
    "event_time, level, service, component, host, message, trace_id, span_id, \
     parent_id, attributes, instance_id, seq, kafka_partition, kafka_offset";

pub struct Batch {
    pub rows: Vec<u8>,
    pub stored: u64,
    pub windows: WindowCounts,
    pub dead_letters: Vec<DeadLetter>,
    /// Partition → offset after the last record of the batch.
    pub next_offsets: BTreeMap<i32, i64>,
    pub records: u64,
    /// Stored events per service, indexed by level (in `Level::ALL` order), for the by-level metric.
    pub by_service_level: HashMap<String, [u64; 6]>,
    /// Distinct `traceparent` values of the batch's records, first seen first (at most
    /// [`MAX_TRACES`]).
    pub traces: Vec<String>,
}

impl Batch {
    pub fn new(window_sizes_ms: Vec<i64>) -> Self {
        Self {
            rows: Vec::with_capacity(1 << 20),
            stored: 0,
            windows: WindowCounts::new(window_sizes_ms),
            dead_letters: Vec::new(),
            next_offsets: BTreeMap::new(),
            records: 0,
            by_service_level: HashMap::new(),
            traces: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Empties the batch for reuse, keeping its buffers.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.stored = 0;
        self.windows.clear();
        self.dead_letters.clear();
        self.next_offsets.clear();
        self.records = 0;
        self.by_service_level.clear();
        self.traces.clear();
    }

    /// Adds one record: a storable event, or a dead letter with its reason. `now_ms` dates
    /// syslog lines that lack a time or a year.
    pub fn add(&mut self, record: Record, now_ms: i64) {
        self.records += 1;
        let next = self.next_offsets.entry(record.partition).or_insert(0);
        *next = (*next).max(record.offset + 1);
        if let Some(traceparent) = &record.traceparent {
            if self.traces.len() < MAX_TRACES && !self.traces.contains(traceparent) {
                self.traces.push(traceparent.clone());
            }
        }
        let decoded = match &record.payload {
            None => Err((EMPTY_PAYLOAD, "record has no value".to_owned())),
            Some(bytes) => decode::format_of(record.content_type.as_deref(), bytes)
                .and_then(|format| decode::decode(format, bytes, record.key.as_deref(), now_ms))
                .map_err(|e| (e.reason, e.detail)),
        };
        match decoded {
            Ok(event) => {
                self.windows
                    .add(event.timestamp_ms, &event.service, event.level);
                let slot = Level::ALL
                    .iter()
                    .position(|l| *l == event.level)
                    .unwrap_or(0);
                match self.by_service_level.get_mut(event.service.as_str()) {
                    Some(counts) => counts[slot] += 1,
                    None => {
                        let mut counts = [0; 6];
                        counts[slot] = 1;
                        self.by_service_level.insert(event.service.clone(), counts);
                    }
                }
                let row = &mut self.rows;
                push_text(row, &json::format_timestamp(event.timestamp_ms));
                row.push(b'\t');
                push_text(row, event.level.as_str());
                row.push(b'\t');
                push_text(row, &event.service);
                row.push(b'\t');
                push_opt_text(row, event.component.as_deref());
                row.push(b'\t');
                push_opt_text(row, event.host.as_deref());
                row.push(b'\t');
                push_text(row, &event.message);
                row.push(b'\t');
                push_opt_text(row, event.trace_id.as_deref());
                row.push(b'\t');
                push_opt_text(row, event.span_id.as_deref());
                row.push(b'\t');
                push_opt_text(row, event.parent_id.as_deref());
                row.push(b'\t');
                push_opt_text(row, event.attributes.as_deref());
                row.push(b'\t');
                push_opt_text(row, record.instance_id.as_deref());
                row.push(b'\t');
                match record.seq {
                    Some(seq) => push_int(row, seq),
                    None => row.extend_from_slice(b"\\N"),
                }
                row.push(b'\t');
                push_int(row, i64::from(record.partition));
                row.push(b'\t');
                push_int(row, record.offset);
                row.push(b'\n');
                self.stored += 1;
            }
            Err((reason, detail)) => self.dead_letters.push(DeadLetter {
                record,
                reason,
                detail,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, payload: &[u8]) -> Record {
        Record {
            partition: 2,
            offset,
            key: None,
            payload: Some(payload.to_vec()),
            instance_id: Some("gen-1".into()),
            seq: Some(offset + 1),
            traceparent: None,
            content_type: None,
        }
    }

    #[test]
    fn splits_good_and_bad_records_and_tracks_offsets() {
        let mut batch = Batch::new(vec![10_000]);
        batch.add(
            record(
                5,
                br#"{"timestamp":1000,"level":"INFO","service":"orders","message":"a\tb"}"#,
            ),
            0,
        );
        batch.add(record(6, b"{garbage"), 0);
        batch.add(
            Record {
                payload: None,
                ..record(7, b"")
            },
            0,
        );
        assert_eq!(batch.records, 3);
        assert_eq!(batch.stored, 1);
        assert_eq!(batch.dead_letters.len(), 2);
        assert_eq!(batch.dead_letters[0].reason, "invalid_json");
        assert_eq!(batch.dead_letters[1].reason, "empty_payload");
        assert_eq!(batch.next_offsets.get(&2), Some(&8));
        assert_eq!(
            batch.by_service_level.get("orders"),
            Some(&[0, 0, 1, 0, 0, 0])
        );
        let row = String::from_utf8(batch.rows.clone()).expect("utf8");
        assert_eq!(
            row,
            "1970-01-01T00:00:01.000Z\tINFO\torders\t\\N\t\\N\ta\\tb\t\\N\t\\N\t\\N\t\\N\tgen-1\t6\t2\t5\n"
        );
        assert_eq!(
            row.trim_end().split('\t').count(),
            COPY_COLUMNS.split(',').count()
        );
        batch.clear();
        assert!(batch.is_empty() && batch.rows.is_empty() && batch.windows.is_empty());
    }
}
