//! The collector's questions to the brokers (no group membership, no records): does the topic
//! exist, how many partitions it has, a partition's watermarks, and which partitions no member
//! of the consumer group owns. All calls block on broker round trips: call them from blocking
//! tasks.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

const TIMEOUT: Duration = Duration::from_secs(2);

pub struct Broker {
    client: BaseConsumer,
}

impl Broker {
    pub fn new(brokers: &str) -> anyhow::Result<Self> {
        let client = logstream_service::kafka::base_config(brokers, "logstream-collector-meta")
            .create()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create Kafka metadata client (LOGSTREAM_KAFKA_BROKERS): {e}"
                )
            })?;
        Ok(Self { client })
    }

    /// Whether `topic` exists on the brokers (readiness).
    pub fn check_topic(&self, topic: &str) -> Result<(), String> {
        logstream_service::kafka::check_topic(self.client.client(), topic)
    }

    /// The (low, high) watermarks of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        self.client
            .client()
            .fetch_watermarks(topic, partition, TIMEOUT)
            .ok()
    }

    /// Each partition of `topic` and its high watermark (the offset its next record gets).
    pub fn high_watermarks(&self, topic: &str) -> Result<Vec<(i32, i64)>, String> {
        self.partitions(topic)?
            .into_iter()
            .map(|p| {
                self.watermarks(topic, p)
                    .map(|(_, high)| (p, high))
                    .ok_or_else(|| format!("no watermarks of {topic} partition {p}"))
            })
            .collect()
    }

    /// The partition ids of `topic`, as the brokers report them.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
        let metadata = self
            .client
            .client()
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("kafka unreachable: {e}"))?;
        let t = metadata
            .topics()
            .first()
            .ok_or_else(|| format!("topic {topic} not found"))?;
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    }

    /// The partitions of `topic` that no member of `group` holds in its current assignment
    /// (every partition when the group has no member). Classic consumer-group protocol.
    pub fn unowned_partitions(&self, group: &str, topic: &str) -> Result<Vec<i32>, String> {
        let all = self.partitions(topic)?;
        let groups = self
            .client
            .client()
            .fetch_group_list(Some(group), TIMEOUT)
            .map_err(|e| format!("cannot describe group {group}: {e}"))?;
        let mut owned = BTreeSet::new();
        for g in groups.groups().iter().filter(|g| g.name() == group) {
            for member in g.members() {
                let assigned = member.assignment().and_then(parse_assignment);
                for (t, partitions) in assigned.into_iter().flatten() {
                    if t == topic {
                        owned.extend(partitions);
                    }
                }
            }
        }
        Ok(all.into_iter().filter(|p| !owned.contains(p)).collect())
    }
}

/// Decodes a consumer's member assignment (Kafka's ConsumerProtocolAssignment, any version:
/// int16 version, then an array of (string topic, array of int32 partition), then user data,
/// which is ignored). None when the bytes are not such an assignment.
pub fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::with_capacity(usize::try_from(topics).ok()?.min(1024));
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        let count = r.i32()?;
        let mut partitions = Vec::with_capacity(usize::try_from(count).ok()?.min(4096));
        for _ in 0..count.max(0) {
            partitions.push(r.i32()?);
        }
        out.push((name, partitions));
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_assignment;

    fn encode(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn decodes_assignments() {
        let bytes = encode(3, &[("logs.raw", &[0, 2, 4]), ("other", &[])]);
        assert_eq!(
            parse_assignment(&bytes),
            Some(vec![
                ("logs.raw".to_string(), vec![0, 2, 4]),
                ("other".to_string(), vec![])
            ])
        );
        assert_eq!(parse_assignment(&encode(0, &[])), Some(vec![]));
    }

    #[test]
    fn refuses_truncated_bytes() {
        let bytes = encode(1, &[("logs.raw", &[0, 1])]);
        assert_eq!(parse_assignment(&bytes[..bytes.len() - 8]), None);
        assert_eq!(parse_assignment(&[0]), None);
    }
}
