//! The generator's Prometheus metrics (names fixed by the design).

use logstream_service::metrics::Registrar;
use prometheus::{Gauge, IntCounter, IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub generated: IntCounter,
    pub rate_limited: IntCounter,
    pub rate_current: Gauge,
    pub target_rate: IntGauge,
    pub sent: IntCounter,
    pub failed: IntCounter,
    pub in_flight: IntGauge,
    pub breaker_state: IntGauge,
    pub live_clients: IntGauge,
    pub limiter_local: IntGauge,
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = Registrar(registry);
        Ok(Self {
            generated: r.counter("log_events_generated_total", "Log events generated")?,
            rate_limited: r.counter(
                "log_events_rate_limited_total",
                "Log events refused by a rate limiter",
            )?,
            rate_current: r.float_gauge(
                "log_generation_rate_current",
                "Events generated per second over the last second",
            )?,
            target_rate: r.gauge(
                "log_generation_rate_target",
                "Configured generation rate, events per second",
            )?,
            sent: r.counter("kafka_messages_sent_total", "Records acknowledged by Kafka")?,
            failed: r.counter(
                "kafka_messages_failed_total",
                "Records Kafka did not accept (delivery failed)",
            )?,
            in_flight: r.gauge(
                "kafka_messages_in_flight",
                "Records handed to the producer, not yet acknowledged or failed",
            )?,
            breaker_state: r.gauge(
                "circuit_breaker_state",
                "Kafka circuit breaker: 0 closed, 1 half-open, 2 open",
            )?,
            limiter_local: r.gauge(
                "generator_rate_limiter_local",
                "1 while the global rate cap is enforced locally (Redis unreachable)",
            )?,
            live_clients: r.gauge(
                "generator_live_stream_clients",
                "WebSocket clients connected to /ws/logs",
            )?,
        })
    }
}
