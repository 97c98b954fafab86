//! The file source's Kafka producer: transactional, so one transaction carries a batch of
//! events and the checkpoint that says where they end. Its `transactional.id` is the source's
//! id, so a restarted service fences the one it replaces and aborts what that one left open.

use std::time::Duration;

use logstream_service::record_headers::RecordHeaders;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::publisher::Encoded;

/// How a transaction ended, when it did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Aborted: the batch can be read and sent again with this producer.
    #[error("transaction aborted: {0}")]
    Aborted(KafkaError),
    /// The producer cannot go on (fenced by another instance with the same id, or broken), or a
    /// commit's outcome is unknown: a new one must be made, and the checkpoint read again.
    #[error("transactional producer failed: {0}")]
    Fatal(KafkaError),
}

pub struct Transactions {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    checkpoint_topic: String,
    /// The checkpoint's key, and the producer's transactional id.
    key: String,
    instance_id: String,
    timeout: Duration,
}

/// Where the records go and who sends them.
#[derive(Debug, Clone)]
pub struct Target {
    pub brokers: String,
    pub topic: String,
    pub checkpoint_topic: String,
    pub key: String,
    pub instance_id: String,
    pub compression: String,
    pub timeout: Duration,
}

impl Transactions {
    /// Blocking: makes the producer and starts its transactions (fencing an earlier instance).
    pub fn open(target: &Target) -> Result<Self, KafkaError> {
        let producer: ThreadedProducer<DefaultProducerContext> =
            logstream_service::kafka::base_config(&target.brokers, &target.instance_id)
                .set(
                    "transactional.id",
                    format!("logstream-ingest-{}", target.key),
                )
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("compression.type", &target.compression)
                .set("linger.ms", "5")
                .set("batch.num.messages", "10000")
                .set("transaction.timeout.ms", "60000")
                .set("message.timeout.ms", target.timeout.as_millis().to_string())
                .create()?;
        producer.init_transactions(target.timeout)?;
        Ok(Self {
            producer,
            topic: target.topic.clone(),
            checkpoint_topic: target.checkpoint_topic.clone(),
            key: target.key.clone(),
            instance_id: target.instance_id.clone(),
            timeout: target.timeout,
        })
    }

    /// Starts a transaction.
    pub fn begin(&self) -> Result<(), TxnError> {
        self.producer.begin_transaction().map_err(classify)
    }

    /// Hands one record of the open transaction to the producer (it sends while more are
    /// read); `Ok(false)`: Kafka refuses it for its size.
    pub fn send(&self, record: &Encoded, seq: u64) -> Result<bool, KafkaError> {
        let headers = RecordHeaders {
            content_type: record.content_type,
            instance_id: &self.instance_id,
            seq,
            traceparent: None,
            label: None,
        }
        .to_kafka();
        let base = BaseRecord::to(&self.topic)
            .key(record.key.as_str())
            .payload(record.payload.as_slice())
            .headers(headers);
        match self.send_waiting(base) {
            Ok(()) => Ok(true),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Blocking: adds the checkpoint to the open transaction and commits it (aborting it when
    /// that fails).
    pub fn commit(&self, checkpoint: &[u8]) -> Result<(), TxnError> {
        let base = BaseRecord::to(&self.checkpoint_topic)
            .key(self.key.as_str())
            .payload(checkpoint);
        if let Err(e) = self.send_waiting(base) {
            return Err(self.abort(e));
        }
        // A commit that timed out may still complete (it goes on in the background): it is
        // tried again, never aborted, until it is done or fails for good.
        let mut tries = 0;
        loop {
            match self.producer.commit_transaction(self.timeout) {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && tries < 10 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "file source: commit not done yet; trying again");
                }
                Err(e @ KafkaError::Transaction(_)) if is_retriable(&e) => {
                    // Still not known whether it committed: the caller must make a new producer
                    // (which completes or aborts it) and read the checkpoint again.
                    return Err(TxnError::Fatal(e));
                }
                Err(e) => return Err(self.abort(e)),
            }
        }
    }

    /// Hands one record over, waiting while the producer's queue is full.
    fn send_waiting(&self, mut record: BaseRecord<'_, str, [u8]>) -> Result<(), KafkaError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Aborts the open transaction after `cause`; says whether the producer can go on.
    pub fn abort(&self, cause: KafkaError) -> TxnError {
        if let KafkaError::Transaction(e) = &cause {
            if e.is_fatal() {
                return TxnError::Fatal(cause);
            }
        }
        match self.producer.abort_transaction(self.timeout) {
            Ok(()) => TxnError::Aborted(cause),
            Err(e) => {
                tracing::warn!(error = %e, "aborting the file source's transaction failed");
                TxnError::Fatal(cause)
            }
        }
    }
}

fn is_retriable(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_retriable())
}

fn classify(e: KafkaError) -> TxnError {
    match &e {
        KafkaError::Transaction(t) if !t.is_fatal() => TxnError::Aborted(e),
        _ => TxnError::Fatal(e),
    }
}
