//! The headers of a record on `logs.raw`, as every producer of events writes them (generator,
//! ingest): the format, loss accounting (instance and sequence number), trace context, and the
//! generator's ground-truth label.

use rdkafka::message::{Header, OwnedHeaders};

/// What one record's headers say.
pub struct RecordHeaders<'a> {
    /// The format (`content-type`).
    pub content_type: &'a str,
    /// Loss accounting: the producing instance and its per-process sequence number.
    pub instance_id: &'a str,
    pub seq: u64,
    /// W3C trace context (the run's, or the request's).
    pub traceparent: Option<&'a str>,
    /// Ground truth of an injected anomaly (`<anomaly>:<episode>`), never in the event itself
    /// (the generator's only).
    pub label: Option<&'a str>,
}

impl RecordHeaders<'_> {
    pub fn to_kafka(&self) -> OwnedHeaders {
        let seq = self.seq.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "content-type",
                value: Some(self.content_type),
            })
            .insert(Header {
                key: "instance-id",
                value: Some(self.instance_id),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            });
        for (key, value) in [("traceparent", self.traceparent), ("label", self.label)] {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        headers
    }
}
