//! Where the file source is, kept in Kafka: after each transaction's records, the same
//! transaction writes one checkpoint record (every file's fingerprint and the offset its events
//! reach, and the last seq given) to a compacted topic, keyed by the source's id. Kafka commits
//! both or neither, so after a crash the last committed checkpoint says exactly which lines are
//! in `logs.raw`: reading resumes there, and nothing is sent twice or skipped.

use std::time::Duration;

use logstream_service::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// The source's position, as one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last seq given to a committed record (records carry 1..=seq).
    pub seq: u64,
    pub files: Vec<FileCheckpoint>,
}

/// How far one file's lines are in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The file's fingerprint (hex), its identity across renames and copies.
    pub fingerprint: String,
    /// Bytes from the file's start that are in committed events.
    pub offset: u64,
    /// Where it was last seen (for people; the fingerprint decides).
    pub path: String,
    /// When it was last seen (Unix seconds): forgotten a while after it is gone.
    pub seen: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot create the checkpoint topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("the checkpoint topic was not read to its end within {0:?}")]
    Timeout(Duration),
}

/// Creates the compacted, single-partition checkpoint topic if it is not there.
pub async fn ensure_topic(settings: &KafkaSettings, topic: &str) -> Result<(), CheckpointError> {
    let admin: AdminClient<DefaultClientContext> =
        logstream_service::kafka::base_config(&settings.kafka_brokers, "logstream-ingest-admin")
            .create()?;
    let new = NewTopic::new(
        topic,
        1,
        TopicReplication::Fixed(settings.topic_replication),
    )
    .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new], &options).await? {
        match result {
            Ok(_) => tracing::info!(%topic, "created the file checkpoint topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(CheckpointError::Create { topic, code }),
        }
    }
    Ok(())
}

/// Blocking: the last committed checkpoint under `key`, read from the topic's start to its end
/// (committed records only); `None` when there is none.
pub fn load(
    brokers: &str,
    topic: &str,
    key: &str,
    timeout: Duration,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let consumer: BaseConsumer = logstream_service::kafka::base_config(brokers, key)
        .set("group.id", format!("logstream-ingest-checkpoint-{key}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    // The deadline moves while records come: a long topic is read to its end however long.
    let mut deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
            Some(Err(e)) => {
                tracing::warn!(error = %e, %topic, "reading file checkpoints");
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Ok(message)) => {
                deadline = std::time::Instant::now() + timeout;
                if message.key() != Some(key.as_bytes()) {
                    continue;
                }
                match message.payload().map(serde_json::from_slice::<Checkpoint>) {
                    Some(Ok(checkpoint)) => last = Some(checkpoint),
                    // A tombstone, or a record from a version that wrote another shape.
                    None => last = None,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, offset = message.offset(), "unreadable file checkpoint skipped")
                    }
                }
            }
        }
    }
    Err(CheckpointError::Timeout(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let checkpoint = Checkpoint {
            seq: 42,
            files: vec![FileCheckpoint {
                fingerprint: "00ff".into(),
                offset: 1234,
                path: "/var/log/app.log".into(),
                seen: 1_790_000_000,
            }],
        };
        let bytes = serde_json::to_vec(&checkpoint).expect("encode");
        assert_eq!(
            serde_json::from_slice::<Checkpoint>(&bytes).expect("decode"),
            checkpoint
        );
    }
}
