//! The ingest service's Prometheus metrics. Every label value is from a fixed set (sources,
//! reasons): nothing a sender writes becomes a label.

use logstream_service::metrics::Registrar;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub received: IntCounterVec,
    pub rejected: IntCounterVec,
    pub dropped: IntCounterVec,
    pub sent: IntCounterVec,
    pub kafka_sent: IntCounter,
    pub kafka_failed: IntCounter,
    pub in_flight: IntGauge,
    pub connections: IntGaugeVec,
    pub connections_refused: IntCounterVec,
    pub breaker_state: IntGauge,
    pub ack_seconds: HistogramVec,
    pub rate_limited: IntCounter,
    pub limiter_local: IntGauge,
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = Registrar(registry);
        Ok(Self {
            received: r.counter_vec(
                "ingest_events_received_total",
                "Events (lines, objects, syslog messages) received, by source; each ends up sent, rejected or dropped",
                &["source"],
            )?,
            rejected: r.counter_vec(
                "ingest_events_rejected_total",
                "Events refused for what they are (malformed, too long), by source and reason; the sender is told where it can be",
                &["source", "reason"],
            )?,
            dropped: r.counter_vec(
                "ingest_events_dropped_total",
                "Valid events not sent, by source and reason: unavailable (Kafka circuit breaker open), overflow (producer queue full: UDP, websocket; websocket also a frame beyond its upstream's queue share), kafka_failed (Kafka did not acknowledge), receive_buffer (the kernel dropped UDP datagrams: the socket's buffer was full)",
                &["source", "reason"],
            )?,
            sent: r.counter_vec(
                "ingest_events_sent_total",
                "Events Kafka acknowledged, by source",
                &["source"],
            )?,
            kafka_sent: r.counter("kafka_messages_sent_total", "Records acknowledged by Kafka")?,
            kafka_failed: r.counter(
                "kafka_messages_failed_total",
                "Records Kafka did not accept (delivery failed)",
            )?,
            in_flight: r.gauge(
                "kafka_messages_in_flight",
                "Records handed to the producer, not yet acknowledged or failed",
            )?,
            connections: r.gauge_vec(
                "ingest_connections",
                "Open connections, by source (syslog_tcp, syslog_tls, websocket)",
                &["source"],
            )?,
            connections_refused: r.counter_vec(
                "ingest_connections_refused_total",
                "Connections refused, by source: at the connection limit, or (syslog_tls) a TLS handshake that failed or took over 10 s",
                &["source"],
            )?,
            breaker_state: r.gauge(
                "circuit_breaker_state",
                "Kafka circuit breaker: 0 closed, 1 half-open, 2 open",
            )?,
            ack_seconds: r.histogram_vec(
                "ingest_request_ack_seconds",
                "Time from a request's body read to Kafka's acknowledgement of all its events, by source",
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                &["source"],
            )?,
            rate_limited: r.counter(
                "ingest_rate_limited_total",
                "Requests refused (429) by the per-client rate limit; their events were not read",
            )?,
            limiter_local: r.gauge(
                "ingest_rate_limiter_local",
                "1 while the rate limit is counted in this process because Redis is unreachable",
            )?,
        })
    }
}
