//! The dead-letter sink: records the collector cannot accept go to `logs.dlq` with their value
//! and key unchanged, plus `dlq-reason`, `dlq-source-topic`, `dlq-source-partition` and
//! `dlq-source-offset` headers (and the original `instance-id`/`seq` when present).
//! A batch is committed only after its dead letters were acknowledged, so none is lost
//! (a crash in between can repeat one: at least once). A dead letter too large for Kafka (key
//! and value over 900,000 bytes) is cut to fit, with `dlq-truncated: true` and
//! `dlq-original-size` (bytes of key and value) headers.

use logstream_core::storable::cut;
use logstream_service::trace_context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::messages::DeadLetter;

/// The `dlq-reason` header carries at most this much of the error detail (which may quote input).
const MAX_DETAIL_BYTES: usize = 200;
/// Headers copied from the record keep at most this much (with the value cut to 900,000 bytes,
/// a dead letter stays under Kafka's 1,000,000).
const MAX_HEADER_BYTES: usize = 1024;

pub struct DlqSink {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
}

impl DlqSink {
    pub fn new(brokers: &str, topic: String, source_topic: String) -> anyhow::Result<Self> {
        let producer =
            logstream_service::kafka::acknowledged_config(brokers, "logstream-collector-dlq")
                .create()
                .map_err(|e| {
                    anyhow::anyhow!("cannot create DLQ producer (LOGSTREAM_KAFKA_BROKERS): {e}")
                })?;
        Ok(Self {
            producer,
            topic,
            source_topic,
        })
    }

    /// Sends every dead letter and waits for all acknowledgements.
    pub async fn send_all(&self, letters: &[DeadLetter]) -> Result<(), String> {
        let mut pending = Vec::with_capacity(letters.len());
        for letter in letters {
            let detail = cut(&letter.detail, MAX_DETAIL_BYTES);
            let reason = format!("{}: {detail}", letter.reason);
            let partition = letter.record.partition.to_string();
            let offset = letter.record.offset.to_string();
            let seq = letter.record.seq.map(|s| s.to_string());
            let mut headers = OwnedHeaders::new_with_capacity(6)
                .insert(Header {
                    key: "dlq-reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-topic",
                    value: Some(self.source_topic.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "dlq-source-offset",
                    value: Some(offset.as_str()),
                });
            if let Some(id) = &letter.record.instance_id {
                headers = headers.insert(Header {
                    key: "instance-id",
                    value: Some(cut(id, MAX_HEADER_BYTES)),
                });
            }
            if let Some(seq) = &seq {
                headers = headers.insert(Header {
                    key: "seq",
                    value: Some(seq.as_str()),
                });
            }
            if let Some(traceparent) = &letter.record.traceparent {
                headers = headers.insert(Header {
                    key: trace_context::TRACEPARENT,
                    value: Some(cut(traceparent, MAX_HEADER_BYTES)),
                });
            }
            let (key, payload, original) = logstream_service::kafka::fit(
                letter.record.key.as_deref(),
                letter.record.payload.as_deref().unwrap_or_default(),
            );
            let original = original.map(|n| n.to_string());
            if let Some(original) = &original {
                headers = headers
                    .insert(Header {
                        key: "dlq-truncated",
                        value: Some("true"),
                    })
                    .insert(Header {
                        key: "dlq-original-size",
                        value: Some(original.as_str()),
                    });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(key) = key {
                record = record.key(key);
            }
            if letter.record.payload.is_some() {
                record = record.payload(payload);
            }
            pending.push(
                logstream_service::kafka::enqueue(&self.producer, record)
                    .await
                    .map_err(|e| format!("dead letter refused: {e}"))?,
            );
        }
        logstream_service::kafka::acknowledged(pending, "dead letters").await
    }
}
