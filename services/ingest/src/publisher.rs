//! Kafka delivery of accepted events, as the generator does it: an idempotent producer
//! (`acks=all`), each event as its JSON form (or a syslog line as it came, when the collector
//! reads the same event from it) keyed by service with `content-type`,
//! `instance-id`, a per-instance `seq` and the sender's `traceparent`. An event counts as sent
//! only in the delivery callback; a request (or a connection) learns when all of its events
//! are acknowledged through its [`Acks`]. A circuit breaker sees every delivery report.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logstream_core::format::decode::Rejected;
use logstream_core::format::{lenient, Format};
use logstream_core::json;
use logstream_core::LogEvent;
use logstream_service::breaker::Breaker;
use logstream_service::record_headers::RecordHeaders;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accounting::{Accounting, DropReason, Source};
use crate::config::Config;

/// The events of one request (or one connection) in Kafka's hands.
pub struct Acks {
    source: Source,
    outstanding: AtomicUsize,
    failed: AtomicUsize,
    /// Wake the waiter when `outstanding` falls to this.
    wake_at: AtomicUsize,
    changed: Notify,
}

impl Acks {
    pub fn new(source: Source) -> Arc<Self> {
        Arc::new(Self {
            source,
            outstanding: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            wake_at: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Events Kafka did not acknowledge, so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Acquire)
    }

    fn reported(&self, ok: bool) {
        if !ok {
            self.failed.fetch_add(1, Ordering::AcqRel);
        }
        let left = self.outstanding.fetch_sub(1, Ordering::AcqRel) - 1;
        if left <= self.wake_at.load(Ordering::Acquire) {
            self.changed.notify_one();
        }
    }

    /// Waits until at most `n` events are outstanding.
    pub async fn at_most(&self, n: usize) {
        self.wake_at.store(n, Ordering::Release);
        loop {
            let changed = self.changed.notified();
            if self.outstanding() <= n {
                return;
            }
            changed.await;
        }
    }
}

/// Counts delivery reports and tells the breaker.
pub struct Deliveries {
    accounting: Arc<Accounting>,
    breaker: Arc<Breaker>,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "kafka client error");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.breaker.on_failure("all brokers down");
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        self.accounting.metrics().in_flight.dec();
        match result {
            Ok(_) => {
                self.accounting.sent(acks.source);
                self.breaker.on_delivered();
                acks.reported(true);
            }
            Err((e, _)) => {
                self.accounting.failed(acks.source);
                self.breaker.on_failure("delivery failed");
                tracing::warn!(error = %e, source = acks.source.label(), "kafka delivery failed");
                acks.reported(false);
            }
        }
    }
}

/// An event ready to be handed to Kafka.
pub struct Encoded {
    pub(crate) key: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) content_type: &'static str,
}

/// Why an event was not handed to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the producer's queue is full")]
    Full,
    #[error("Kafka refused the record: {0}")]
    Refused(KafkaError),
}

pub struct Publisher {
    producer: ThreadedProducer<Deliveries>,
    breaker: Arc<Breaker>,
    accounting: Arc<Accounting>,
    topic: String,
    instance_id: String,
    /// The last `seq` given to a record.
    seq: AtomicU64,
    /// Seq values given to records the producer did not take (a full queue UDP cannot wait
    /// for, a record Kafka refused at once): so seq_last == acknowledged + failed + in flight +
    /// not handed, and stored seq values can be checked against it.
    not_handed: AtomicU64,
}

/// Where the records of this instance are, by seq (`GET /api/v1/ingest/status`, `kafka`).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SeqStatus {
    /// The last seq given (records carry 1..=seq_last in their `seq` header).
    pub seq_last: u64,
    /// Acknowledged by Kafka.
    pub acknowledged: u64,
    /// Kafka did not acknowledge them (message timeout).
    pub failed: u64,
    /// Handed over, not reported on yet.
    pub in_flight: u64,
    /// Given a seq, not taken by the producer.
    pub not_handed: u64,
}

impl Publisher {
    pub fn new(
        config: &Config,
        accounting: Arc<Accounting>,
        breaker: Arc<Breaker>,
        instance_id: String,
    ) -> anyhow::Result<Self> {
        let producer =
            logstream_service::kafka::base_config(&config.kafka.kafka_brokers, &instance_id)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("reconnect.backoff.ms", "100")
                .set("reconnect.backoff.max.ms", "2000")
                .set("compression.type", &config.kafka_compression)
                .set("linger.ms", config.kafka_linger_ms.to_string())
                .set("batch.num.messages", "10000")
                .set("batch.size", "1000000")
                // At most 200,000 records or 64 MiB wait in the producer: a full queue makes
                // HTTP and TCP wait (and UDP drop), so memory stays bounded.
                .set("queue.buffering.max.messages", "200000")
                .set("queue.buffering.max.kbytes", "65536")
                .set(
                    "message.timeout.ms",
                    config.kafka_message_timeout_ms.to_string(),
                )
                .create_with_context(Deliveries {
                    accounting: accounting.clone(),
                    breaker: breaker.clone(),
                })
                .map_err(|e| {
                    anyhow::anyhow!("cannot create Kafka producer (LOGSTREAM_KAFKA_BROKERS): {e}")
                })?;
        Ok(Self {
            producer,
            breaker,
            accounting,
            topic: config.kafka.topic_raw.clone(),
            instance_id,
            seq: AtomicU64::new(0),
            not_handed: AtomicU64::new(0),
        })
    }

    /// The seq accounting of this instance.
    pub fn seq_status(&self) -> SeqStatus {
        let metrics = self.accounting.metrics();
        SeqStatus {
            seq_last: self.seq.load(Ordering::Acquire),
            acknowledged: metrics.kafka_sent.get(),
            failed: metrics.kafka_failed.get(),
            in_flight: metrics.in_flight.get().max(0) as u64,
            not_handed: self.not_handed.load(Ordering::Acquire),
        }
    }

    /// Counts an event Kafka refused to take: too large for it is the event's own fault
    /// (rejected); anything else is Kafka's (dropped, and a failure for the breaker). Returns
    /// whether it was the event's fault.
    pub fn refused(&self, source: Source, error: &KafkaError) -> bool {
        let too_large = error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
        if too_large {
            self.accounting.rejected(source, "too_large_for_kafka");
        } else {
            self.accounting.dropped(source, DropReason::KafkaFailed, 1);
            self.breaker.on_failure("kafka refused a record");
        }
        too_large
    }

    /// Whether new events may be taken (the breaker is not open).
    pub fn available(&self) -> bool {
        self.breaker.permits()
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    pub fn client(&self) -> &rdkafka::client::Client<Deliveries> {
        self.producer.client()
    }

    /// The record `event` becomes: its JSON form.
    pub fn encode(event: &LogEvent) -> Result<Encoded, serde_json::Error> {
        Ok(Encoded {
            key: event.service.clone(),
            payload: json::encode(event)?,
            content_type: Format::Json.content_type(),
        })
    }

    /// A line sent as it came, in `format`, when the collector reads from it exactly the event
    /// the ingest service read (as the generator sends its lines): key = the event's service.
    pub fn as_is(format: Format, service: String, line: Vec<u8>) -> Encoded {
        Encoded {
            key: service,
            payload: line,
            content_type: format.content_type(),
        }
    }

    /// A text line (not JSON) as the collector reads a record without a `content-type`: a
    /// syslog line it reads exactly as read here (a host of its own, nothing replaced) goes as it
    /// came (`text/syslog-*`: less to encode and to send); anything else comes back as its
    /// event, for the caller to complete and encode.
    pub fn line_as_is(
        line: Vec<u8>,
        service: &str,
        now_ms: i64,
    ) -> Result<Result<Encoded, LogEvent>, Rejected> {
        let decoded = lenient::decode_record(None, &line, Some(service.as_bytes()), now_ms)?;
        let syslog = matches!(decoded.format, Format::Syslog5424 | Format::Syslog3164);
        if syslog && !decoded.plain && !decoded.replaced_utf8 && decoded.event.host.is_some() {
            return Ok(Ok(Self::as_is(decoded.format, decoded.event.service, line)));
        }
        Ok(Err(decoded.event))
    }

    /// Hands one record to the producer, counted in `acks` until Kafka reports on it.
    pub fn try_send(
        &self,
        record: &Encoded,
        traceparent: Option<&str>,
        acks: &Arc<Acks>,
    ) -> Result<(), SendError> {
        let seq = self.next_seq();
        let sent = self.try_send_as(seq, record, traceparent, acks);
        if sent.is_err() {
            self.not_handed.fetch_add(1, Ordering::AcqRel);
        }
        sent
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Hands one record with the given seq to the producer.
    fn try_send_as(
        &self,
        seq: u64,
        record: &Encoded,
        traceparent: Option<&str>,
        acks: &Arc<Acks>,
    ) -> Result<(), SendError> {
        let headers = RecordHeaders {
            content_type: record.content_type,
            instance_id: &self.instance_id,
            seq,
            traceparent,
            label: None,
        }
        .to_kafka();
        acks.outstanding.fetch_add(1, Ordering::AcqRel);
        let base = BaseRecord::with_opaque_to(&self.topic, acks.clone())
            .key(record.key.as_str())
            .payload(record.payload.as_slice())
            .headers(headers);
        // Counted in flight before the producer has it: its report may come at once.
        self.accounting.metrics().in_flight.inc();
        match self.producer.send(base) {
            Ok(()) => Ok(()),
            Err((e, _)) => {
                self.accounting.metrics().in_flight.dec();
                acks.outstanding.fetch_sub(1, Ordering::AcqRel);
                match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        Err(SendError::Full)
                    }
                    e => Err(SendError::Refused(e)),
                }
            }
        }
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub async fn send(
        &self,
        record: &Encoded,
        traceparent: Option<&str>,
        acks: &Arc<Acks>,
    ) -> Result<(), KafkaError> {
        // One seq for the record, however many times the full queue makes it wait.
        let seq = self.next_seq();
        loop {
            match self.try_send_as(seq, record, traceparent, acks) {
                Ok(()) => return Ok(()),
                Err(SendError::Full) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(SendError::Refused(e)) => {
                    self.not_handed.fetch_add(1, Ordering::AcqRel);
                    return Err(e);
                }
            }
        }
    }

    /// Counts stalls (records in flight, no report) as breaker failures, four times a second.
    pub async fn watch_breaker(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.breaker.check_stall(self.producer.in_flight_count());
        }
    }

    /// Waits (blocking) until every record handed over is acknowledged or failed, or `timeout`.
    pub fn drain(&self, timeout: Duration) -> bool {
        match self.producer.flush(timeout) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, in_flight = self.producer.in_flight_count(), "flush did not complete");
                false
            }
        }
    }
}
