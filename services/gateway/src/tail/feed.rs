//! Reads `logs.raw` for the live tail while anyone follows it: from the end of every partition
//! (no consumer group, nothing committed; the collector's reading is untouched), each record
//! read as the collector reads it, and handed to the hub. Stops reading once nobody has followed
//! for [`IDLE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::format::lenient;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::hub::Hub;

/// How long the topic is still read after the last follower left (a follower reconnecting
/// meanwhile misses nothing).
const IDLE: Duration = Duration::from_secs(10);

/// Where the events come from.
#[derive(Debug, Clone)]
pub struct Source {
    pub brokers: String,
    pub topic: String,
}

/// Runs until `shutdown`: waits for a follower, reads while there is one, and again.
pub async fn run(hub: Arc<Hub>, source: Source, shutdown: CancellationToken) {
    loop {
        let arrived = hub.arrived.notified();
        if hub.is_idle() {
            tokio::select! {
                _ = arrived => {}
                _ = shutdown.cancelled() => return,
            }
        }
        match read(&hub, &source, &shutdown).await {
            Ok(()) => tracing::info!("live tail: nobody follows; reading stopped"),
            Err(e) => {
                tracing::warn!(error = %e, "live tail: cannot read {}; retrying in 2 s", source.topic);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// A consumer assigned to the end of every partition of the topic.
fn consumer(source: &Source) -> Result<StreamConsumer, String> {
    let consumer: StreamConsumer =
        logstream_service::kafka::base_config(&source.brokers, "logstream-gateway-tail")
            // Required by librdkafka; never joined (partitions are assigned, not subscribed).
            .set("group.id", "logstream-gateway-tail")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            .create()
            .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(&source.topic), Duration::from_secs(5))
        .map_err(|e| format!("no metadata: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == source.topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {} has no partitions (yet)", source.topic));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(&source.topic, partition, Offset::End)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok(consumer)
}

/// Reads until nobody has followed for [`IDLE`] (Ok) or the consumer fails (Err).
async fn read(hub: &Hub, source: &Source, shutdown: &CancellationToken) -> Result<(), String> {
    let consumer = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || consumer(&source))
            .await
            .map_err(|e| e.to_string())??
    };
    tracing::info!(topic = %source.topic, "live tail: reading from the end of every partition");
    let mut idle_since: Option<Instant> = None;
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = tokio::time::timeout(Duration::from_secs(1), consumer.recv()) => m,
        };
        match message {
            Ok(Ok(message)) => {
                hub.metrics.read.inc();
                let content_type = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "content-type")
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                });
                let decoded = message.payload().map(|payload| {
                    lenient::decode_record(
                        content_type,
                        payload,
                        message.key(),
                        chrono::Utc::now().timestamp_millis(),
                    )
                });
                match decoded {
                    Some(Ok(decoded)) => {
                        hub.publish(&decoded.event, message.partition(), message.offset())
                    }
                    _ => hub.metrics.unreadable.inc(),
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "live tail: consumer error"),
            Err(_) => {}
        }
        if hub.is_idle() {
            if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE {
                return Ok(());
            }
        } else {
            idle_since = None;
        }
    }
}
