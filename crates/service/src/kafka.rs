//! Kafka helpers: base client configuration, creating the design's topics when missing, and a
//! broker check for readiness.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

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
}

/// Creates the design's topics, and `extra` ones, that do not exist yet.
pub async fn ensure_topics(settings: &KafkaSettings, extra: &[String]) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(&settings.kafka_brokers, "logstream-admin").create()?;
    let topics: Vec<NewTopic<'_>> = settings
        .topics()
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .map(|name| {
            NewTopic::new(
                name,
                settings.topic_partitions,
                TopicReplication::Fixed(settings.topic_replication),
            )
        })
        .collect();
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

/// Keeps trying [`ensure_topics`] until it succeeds or `shutdown` is cancelled.
pub async fn ensure_topics_with_retry(
    settings: KafkaSettings,
    extra: Vec<String>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match ensure_topics(&settings, &extra).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "cannot create topics yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
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
