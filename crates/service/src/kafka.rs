//! Kafka helpers: base client configuration, creating the design's topics when missing, a
//! broker check for readiness, and sending with acknowledgement.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::retry::Backoff;
use crate::settings::KafkaSettings;

/// Configuration every client starts from.
pub fn base_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("broker.address.family", "v4")
        .set("socket.keepalive.enable", "true");
    config
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot create Kafka admin client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("cannot list the brokers' topics: {0}")]
    Metadata(String),
}

/// Creates the design's topics, and `extra` ones, that do not exist yet. Topics that exist are
/// left alone without asking to create them, so a cluster where topics are managed by an
/// operator (and this client may not create them) works as long as they are there.
pub async fn ensure_topics(settings: &KafkaSettings, extra: &[String]) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(&settings.kafka_brokers, "logstream-admin").create()?;
    let (admin, existing) = tokio::task::spawn_blocking(move || {
        let existing = existing_topics(admin.inner());
        (admin, existing)
    })
    .await
    .map_err(|e| TopicError::Metadata(e.to_string()))?;
    let existing = existing?;
    let topics: Vec<NewTopic<'_>> = settings
        .topics()
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .filter(|name| !existing.iter().any(|t| t == name))
        .map(|name| {
            NewTopic::new(
                name,
                settings.topic_partitions,
                TopicReplication::Fixed(settings.topic_replication),
            )
        })
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(topic) => {
                tracing::info!(%topic, partitions = settings.topic_partitions, "created topic")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(())
}

/// Blocking: the names of the topics the brokers report with at least one partition.
fn existing_topics<C: ClientContext>(client: &Client<C>) -> Result<Vec<String>, TopicError> {
    let metadata = client
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| TopicError::Metadata(e.to_string()))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.name().to_string())
        .collect())
}

/// Keeps trying [`ensure_topics`] until it succeeds or `shutdown` is cancelled.
pub async fn ensure_topics_with_retry(
    settings: KafkaSettings,
    extra: Vec<String>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match ensure_topics(&settings, &extra).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cannot create topics yet; retrying"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// Blocking: asks the brokers for `topic`'s metadata; Ok when it exists with partitions.
/// Call from a blocking context (`spawn_blocking`).
pub fn check_topic<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<(), String> {
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .map_err(|e| format!("kafka unreachable: {e}"))?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) => Err(format!("topic {topic} not available: {:?}", t.error())),
        None => Err(format!("topic {topic} not found")),
    }
}

/// Configuration of a producer whose records count only once acknowledged: idempotent,
/// `acks=all`, 5 ms linger, a record not acknowledged within 30 s fails.
pub fn acknowledged_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = base_config(brokers, client_id);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    config
}

/// Most bytes of key and value a record may carry so that, with its headers, it stays under the
/// producer's `message.max.bytes` (1,000,000 by default) and the broker's limit.
pub const MAX_RECORD_BYTES: usize = 900_000;
/// Most bytes of a key kept when a record must be cut.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// A key and value cut to fit [`MAX_RECORD_BYTES`] (the key to 16 KiB at most, then the value to
/// what is left), and their original total size when anything was cut. A record Kafka would
/// refuse as too large is sent cut, saying so in headers, rather than retried forever.
pub fn fit<'a>(
    key: Option<&'a [u8]>,
    value: &'a [u8],
) -> (Option<&'a [u8]>, &'a [u8], Option<usize>) {
    let total = key.map_or(0, <[u8]>::len) + value.len();
    if total <= MAX_RECORD_BYTES {
        return (key, value, None);
    }
    let key = key.map(|k| &k[..k.len().min(MAX_KEY_BYTES)]);
    let room = MAX_RECORD_BYTES - key.map_or(0, <[u8]>::len);
    (key, &value[..value.len().min(room)], Some(total))
}

/// Queues `record`, waiting while the producer's queue is full.
pub async fn enqueue<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Waits until every queued record is acknowledged; the first failure, naming `what`.
pub async fn acknowledged(pending: Vec<DeliveryFuture>, what: &str) -> Result<(), String> {
    for future in pending {
        match future.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("{what} not delivered: {e}")),
            Err(_) => return Err(format!("the producer of {what} went away")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{fit, MAX_RECORD_BYTES};

    #[test]
    fn records_over_the_limit_are_cut_to_fit() {
        let small = vec![b'x'; 100];
        assert_eq!(fit(Some(b"k"), &small), (Some(&b"k"[..]), &small[..], None));
        let large = vec![b'x'; 999_990];
        let (key, value, original) = fit(Some(b"key"), &large);
        assert_eq!(key, Some(&b"key"[..]));
        assert_eq!(value.len() + 3, MAX_RECORD_BYTES);
        assert_eq!(original, Some(999_993));
        let huge_key = vec![b'k'; 2_000_000];
        let (key, value, original) = fit(Some(&huge_key), b"v");
        assert_eq!(
            (key.map(<[u8]>::len), value, original),
            (Some(16 * 1024), &b"v"[..], Some(2_000_001))
        );
    }
}
