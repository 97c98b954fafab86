//! Kafka delivery: an idempotent producer (`acks=all`) whose delivery callback is the only place
//! an event becomes "sent" (acknowledged) or "failed". Nothing is counted on hand-off.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;
use crate::metrics::Metrics;
use logstream_service::breaker::Breaker;

/// Counts acknowledgements and failures as librdkafka reports them, and tells the breaker.
pub struct DeliveryCounter {
    metrics: Metrics,
    breaker: Arc<Breaker>,
}

impl ClientContext for DeliveryCounter {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "kafka client error");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.breaker.on_failure("all brokers down");
        }
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.metrics.sent.inc();
                self.breaker.on_delivered();
            }
            Err((e, _)) => {
                self.metrics.failed.inc();
                self.breaker.on_failure("delivery failed");
                tracing::warn!(error = %e, "kafka delivery failed");
            }
        }
    }
}

pub type EventProducer = ThreadedProducer<DeliveryCounter>;

/// Builds the producer.
pub fn producer(
    config: &Config,
    metrics: Metrics,
    breaker: Arc<Breaker>,
    client_id: &str,
) -> anyhow::Result<EventProducer> {
    let producer = logstream_service::kafka::base_config(&config.kafka.kafka_brokers, client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Reconnect within 2 s of a broker's return (librdkafka's default backs off to 10 s),
        // so the breaker's probes find it soon.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .set("compression.type", &config.kafka_compression)
        .set("linger.ms", config.kafka_linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set(
            "message.timeout.ms",
            config.kafka_message_timeout_ms.to_string(),
        )
        .create_with_context(DeliveryCounter { metrics, breaker })
        .map_err(|e| {
            anyhow::anyhow!("cannot create Kafka producer (LOGSTREAM_KAFKA_BROKERS): {e}")
        })?;
    Ok(producer)
}

/// Hands one record to the producer, waiting while its queue is full. Returns false when the
/// record was refused for another reason (it is then counted as failed).
pub fn send_blocking(
    producer: &EventProducer,
    metrics: &Metrics,
    mut record: BaseRecord<'_, str, [u8], ()>,
) -> bool {
    loop {
        match producer.send(record) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => {
                metrics.failed.inc();
                tracing::warn!(error = %e, "kafka refused record");
                return false;
            }
        }
    }
}

/// Waits (blocking) until every handed-off record was acknowledged or failed, or `timeout`.
pub fn drain(producer: &EventProducer, timeout: Duration) -> bool {
    match producer.flush(timeout) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, in_flight = producer.in_flight_count(), "flush did not complete");
            false
        }
    }
}
