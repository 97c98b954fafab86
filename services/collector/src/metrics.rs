//! The collector's Prometheus metrics (names fixed by the design).

use logstream_core::format::decode;
use logstream_service::sync::lock;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub consumed: IntCounter,
    pub stored: IntCounter,
    pub stored_by_level: IntCounterVec,
    /// Services given their own label value so far (the rest count as "other").
    labelled_services: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    pub dlq: IntCounterVec,
    pub aggregates_written: IntCounter,
    pub lag: IntGaugeVec,
    pub batch_duration: Histogram,
    pub batch_size: Histogram,
    pub alerts_raised: IntCounterVec,
    pub late: IntCounter,
    pub store_errors: IntCounter,
    pub batch_retries: IntCounter,
    pub refused_batches: IntCounter,
    pub sanitized: IntCounterVec,
    pub offset_conflicts: IntCounter,
    pub duplicates_skipped: IntCounter,
    pub offset_gaps: IntCounter,
    pub gap_offsets_confirmed: IntCounter,
    pub expired: IntCounter,
    /// By drop rule (its index in LOGSTREAM_FILTER_DROP).
    pub filtered: IntCounterVec,
    /// By route (its index in LOGSTREAM_ROUTES).
    pub routed: IntCounterVec,
    /// 1 while the consumer has paused its partitions (backpressure), else 0.
    pub paused: IntGauge,
    pub pauses: IntCounter,
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            consumed: IntCounter::new("log_events_consumed_total", "Records received from Kafka")?,
            stored: IntCounter::new("log_events_stored_total", "Events committed to PostgreSQL")?,
            stored_by_level: IntCounterVec::new(
                Opts::new(
                    "log_events_stored_by_level_total",
                    "Events committed to PostgreSQL, by service and level (services past the first 100 count as \"other\")",
                ),
                &["service", "level"],
            )?,
            labelled_services: Default::default(),
            dlq: IntCounterVec::new(
                Opts::new(
                    "log_events_dlq_total",
                    "Records sent to the dead-letter topic, by reason",
                ),
                &["reason"],
            )?,
            aggregates_written: IntCounter::new(
                "window_aggregates_written_total",
                "Window aggregate rows upserted",
            )?,
            lag: IntGaugeVec::new(
                Opts::new(
                    "kafka_consumer_lag",
                    "Records in the partition not yet stored (high watermark - next offset)",
                ),
                &["partition"],
            )?,
            batch_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "collector_batch_duration_seconds",
                    "Time to write one batch (dead letters and transaction)",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("collector_batch_size_records", "Records per written batch")
                    .buckets(vec![
                        1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0,
                    ]),
            )?,
            alerts_raised: IntCounterVec::new(
                Opts::new("alerts_raised_total", "Alerts raised, by kind"),
                &["kind"],
            )?,
            filtered: IntCounterVec::new(
                Opts::new(
                    "log_events_filtered_total",
                    "Events dropped by a filter rule instead of stored, by rule (index in LOGSTREAM_FILTER_DROP)",
                ),
                &["rule"],
            )?,
            routed: IntCounterVec::new(
                Opts::new(
                    "log_events_routed_total",
                    "Events also sent to a route's destination, by route (index in LOGSTREAM_ROUTES)",
                ),
                &["route"],
            )?,
            offset_gaps: IntCounter::new(
                "collector_offset_gaps_total",
                "Records that arrived past the next expected offset of their partition (the partition is read again from there once, to confirm the gap)",
            )?,
            gap_offsets_confirmed: IntCounter::new(
                "collector_gap_offsets_confirmed_total",
                "Offsets that hold no record for the collector, confirmed by reading the partition again: transaction markers, aborted transactions, compacted records",
            )?,
            expired: IntCounter::new(
                "kafka_records_expired_total",
                "Offsets the broker deleted (retention) before the collector stored them: records lost upstream of logstream",
            )?,
            paused: IntGauge::new(
                "collector_consumer_paused",
                "1 while the Kafka partitions are paused because storage is behind (backpressure)",
            )?,
            pauses: IntCounter::new(
                "collector_consumer_pauses_total",
                "Times the consumer paused its partitions because storage was behind",
            )?,
            late: IntCounter::new(
                "log_events_late_total",
                "Events that arrived after their window was closed",
            )?,
            store_errors: IntCounter::new(
                "collector_store_errors_total",
                "Failed batch writes (retried)",
            )?,
            batch_retries: IntCounter::new(
                "collector_batch_retries_total",
                "Writes of a batch retried after a transient failure (PostgreSQL or Kafka unavailable)",
            )?,
            refused_batches: IntCounter::new(
                "collector_batches_refused_total",
                "Batches PostgreSQL refused for their data (a permanent error): split until the records responsible were found and dead-lettered",
            )?,
            sanitized: IntCounterVec::new(
                Opts::new(
                    "log_events_sanitized_total",
                    "Events changed to be storable, by what: nul (NUL characters replaced), surrogate (unpaired surrogate escapes replaced), number (numbers beyond PostgreSQL's numeric kept as strings)",
                ),
                &["what"],
            )?,
            offset_conflicts: IntCounter::new(
                "collector_offset_conflicts_total",
                "Batches discarded because another member had already stored those offsets",
            )?,
            duplicates_skipped: IntCounter::new(
                "collector_duplicates_skipped_total",
                "Redelivered records skipped because their offset was already stored",
            )?,
        };
        registry.register(Box::new(m.consumed.clone()))?;
        registry.register(Box::new(m.stored.clone()))?;
        registry.register(Box::new(m.stored_by_level.clone()))?;
        registry.register(Box::new(m.dlq.clone()))?;
        registry.register(Box::new(m.aggregates_written.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.batch_duration.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.alerts_raised.clone()))?;
        registry.register(Box::new(m.late.clone()))?;
        registry.register(Box::new(m.store_errors.clone()))?;
        registry.register(Box::new(m.batch_retries.clone()))?;
        registry.register(Box::new(m.refused_batches.clone()))?;
        registry.register(Box::new(m.sanitized.clone()))?;
        registry.register(Box::new(m.offset_conflicts.clone()))?;
        registry.register(Box::new(m.duplicates_skipped.clone()))?;
        registry.register(Box::new(m.offset_gaps.clone()))?;
        registry.register(Box::new(m.gap_offsets_confirmed.clone()))?;
        registry.register(Box::new(m.expired.clone()))?;
        registry.register(Box::new(m.filtered.clone()))?;
        registry.register(Box::new(m.routed.clone()))?;
        registry.register(Box::new(m.paused.clone()))?;
        registry.register(Box::new(m.pauses.clone()))?;
        // Known label values start at zero, so dashboards and alerts have series before the
        // first occurrence.
        for reason in dlq_reasons() {
            m.dlq.with_label_values(&[reason]);
        }
        for kind in ALERT_KINDS {
            m.alerts_raised.with_label_values(&[kind]);
        }
        Ok(m)
    }

    /// Counts stored events of one service and level, keeping the service label set bounded.
    pub fn count_stored(&self, service: &str, level: &str, n: u64) {
        let mut known = lock(&self.labelled_services);
        let label = if known.contains(service) {
            service
        } else if known.len() < MAX_SERVICE_LABELS {
            known.insert(service.to_owned());
            service
        } else {
            "other"
        };
        self.stored_by_level
            .with_label_values(&[label, level])
            .inc_by(n);
    }
}

/// Most distinct `service` label values exported.
const MAX_SERVICE_LABELS: usize = 100;

/// Every `reason` label of `log_events_dlq_total`.
pub fn dlq_reasons() -> impl Iterator<Item = &'static str> {
    decode::REASONS.into_iter().chain([
        crate::batch::EMPTY_PAYLOAD,
        logstream_core::window::TIMESTAMP_OUT_OF_RANGE,
        crate::committer::STORAGE_REJECTED,
    ])
}

/// The alert kinds detection will raise (none is raised yet; the series exist at zero).
pub const ALERT_KINDS: [&str; 3] = ["error_rate", "traffic_spike", "security"];
