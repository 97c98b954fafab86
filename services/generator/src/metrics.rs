//! The generator's Prometheus metrics (names fixed by the design).

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
        let m = Self {
            generated: IntCounter::new("log_events_generated_total", "Log events generated")?,
            rate_limited: IntCounter::new(
                "log_events_rate_limited_total",
                "Log events refused by a rate limiter",
            )?,
            rate_current: Gauge::new(
                "log_generation_rate_current",
                "Events generated per second over the last second",
            )?,
            target_rate: IntGauge::new(
                "log_generation_rate_target",
                "Configured generation rate, events per second",
            )?,
            sent: IntCounter::new("kafka_messages_sent_total", "Records acknowledged by Kafka")?,
            failed: IntCounter::new(
                "kafka_messages_failed_total",
                "Records Kafka did not accept (delivery failed)",
            )?,
            in_flight: IntGauge::new(
                "kafka_messages_in_flight",
                "Records handed to the producer, not yet acknowledged or failed",
            )?,
            breaker_state: IntGauge::new(
                "circuit_breaker_state",
                "Kafka circuit breaker: 0 closed, 1 half-open, 2 open",
            )?,
            limiter_local: IntGauge::new(
                "generator_rate_limiter_local",
                "1 while the global rate cap is enforced locally (Redis unreachable)",
            )?,
            live_clients: IntGauge::new(
                "generator_live_stream_clients",
                "WebSocket clients connected to /ws/logs",
            )?,
        };
        registry.register(Box::new(m.generated.clone()))?;
        registry.register(Box::new(m.rate_limited.clone()))?;
        registry.register(Box::new(m.rate_current.clone()))?;
        registry.register(Box::new(m.target_rate.clone()))?;
        registry.register(Box::new(m.sent.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.breaker_state.clone()))?;
        registry.register(Box::new(m.live_clients.clone()))?;
        registry.register(Box::new(m.limiter_local.clone()))?;
        Ok(m)
    }
}
