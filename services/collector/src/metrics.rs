//! The collector's Prometheus metrics (names fixed by the design).

use logstream_core::detect::episodes::Kind;
use logstream_core::format::decode;
use logstream_service::metrics::Registrar;
use logstream_service::sync::lock;
use prometheus::{
    GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

use crate::messages::{EMPTY_PAYLOAD, STORAGE_REJECTED};

#[derive(Clone)]
pub struct Metrics {
    pub consumed: IntCounter,
    pub stored: IntCounter,
    pub stored_by_level: IntCounterVec,
    /// Services given their own label value so far (the rest count as "other").
    labelled_services: LabelSet,
    /// Most services (and instances) given their own label value
    /// (`LOGSTREAM_METRICS_MAX_SERVICES`).
    max_services: usize,
    pub sampling: Sampling,
    pub dlq: IntCounterVec,
    pub aggregates_written: IntCounter,
    pub lag: IntGaugeVec,
    /// Per partition: how far PostgreSQL's next offset is beyond the topic's end (0 normally).
    pub ahead: IntGaugeVec,
    pub batch_duration: Histogram,
    /// From each stored event's time to the commit of its row.
    pub event_latency: Histogram,
    pub batch_size: Histogram,
    pub late: IntCounter,
    /// By drop rule (its index in LOGSTREAM_FILTER_DROP).
    pub filtered: IntCounterVec,
    /// By route (its index in LOGSTREAM_ROUTES).
    pub routed: IntCounterVec,
    /// 1 while the consumer has paused its partitions (backpressure), else 0.
    pub paused: IntGauge,
    pub pauses: IntCounter,
    /// What went wrong on the way, and was handled.
    pub faults: Faults,
    pub alerts: Alerting,
    pub sinks: Sinks,
}

/// Metrics of the destinations that read the topic on their own (archives), by `sink` (the
/// destination as configured, e.g. `s3://bucket/prefix`).
#[derive(Clone)]
pub struct Sinks {
    pub sent: IntCounterVec,
    /// By sink and reason (`s3_unreachable`, `s3_status_NNN`, `progress_store`, `fenced`, ...).
    pub errors: IntCounterVec,
    /// Age of the oldest record read and not yet archived (0 when caught up).
    pub lag: GaugeVec,
}

impl Sinks {
    fn register(r: &Registrar<'_>) -> prometheus::Result<Self> {
        Ok(Self {
            sent: r.counter_vec(
                "sink_events_sent_total",
                "Events written to a destination that reads the topic on its own (an S3 archive), by sink",
                &["sink"],
            )?,
            errors: r.counter_vec(
                "sink_errors_total",
                "Failed attempts of a destination (retried; nothing is dropped), by sink and reason",
                &["sink", "reason"],
            )?,
            lag: r.float_gauge_vec(
                "sink_lag_seconds",
                "Age (Kafka timestamp against the clock) of the oldest record a destination has read and not yet written, 0 when caught up",
                &["sink"],
            )?,
        })
    }
}

/// Metrics of detection: alerts raised and firing, published and notified.
#[derive(Clone)]
pub struct Alerting {
    pub raised: IntCounterVec,
    /// Alert episodes open on this collector's partitions, by kind.
    pub firing: IntGaugeVec,
    pub published: IntCounter,
    /// Critical transitions sent by the fast lane, and those it could not send.
    pub fast_published: IntCounter,
    pub fast_failed: IntCounter,
    /// Time a fast transition spends in each step: queued (from reading the event to the lane
    /// taking it), acquire (a database connection), claim (the outbox insert), send (until
    /// Kafka acknowledged it).
    pub fast_steps: HistogramVec,
    pub notifications_failed: IntCounterVec,
    pub notifications_dropped: IntCounter,
}

/// Metrics of what went wrong on the way and was handled: retried writes, refused batches,
/// mended events, offsets skipped or read again.
#[derive(Clone)]
pub struct Faults {
    pub store_errors: IntCounter,
    pub batch_retries: IntCounter,
    pub refused_batches: IntCounter,
    pub sanitized: IntCounterVec,
    pub offset_conflicts: IntCounter,
    pub duplicates_skipped: IntCounter,
    pub replayed: IntCounter,
    pub offset_gaps: IntCounter,
    pub gap_offsets_confirmed: IntCounter,
    pub rejoins: IntCounter,
    pub expired: IntCounter,
}

impl Metrics {
    /// The collector's metrics; at most `max_services` services get a `service` label value of
    /// their own, the rest count as "other".
    pub fn register(registry: &Registry, max_services: usize) -> prometheus::Result<Self> {
        let r = Registrar(registry);
        let m = Self {
            consumed: r.counter("log_events_consumed_total", "Records received from Kafka")?,
            stored: r.counter("log_events_stored_total", "Events committed to PostgreSQL")?,
            stored_by_level: r.counter_vec(
                "log_events_stored_by_level_total",
                "Events committed to PostgreSQL, by service and level (services past the first LOGSTREAM_METRICS_MAX_SERVICES count as \"other\")",
                &["service", "level"],
            )?,
            labelled_services: Default::default(),
            max_services,
            sampling: Sampling::register(&r)?,
            dlq: r.counter_vec(
                "log_events_dlq_total",
                "Records sent to the dead-letter topic, by reason",
                &["reason"],
            )?,
            aggregates_written: r.counter(
                "window_aggregates_written_total",
                "Window aggregate rows upserted",
            )?,
            lag: r.gauge_vec(
                "kafka_consumer_lag",
                "Records in the partition not yet stored (high watermark - next offset)",
                &["partition"],
            )?,
            ahead: r.gauge_vec(
                "kafka_offsets_ahead_of_topic",
                "Stored next offset minus the partition's high watermark when PostgreSQL holds offsets beyond the topic's end (the topic was deleted and recreated, or truncated: its records below the stored offset are not stored until the stored offsets are reset); 0 normally",
                &["partition"],
            )?,
            batch_duration: r.histogram(
                "collector_batch_duration_seconds",
                "Time to write one batch (dead letters and transaction)",
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )?,
            event_latency: r.histogram(
                "collector_event_latency_seconds",
                "From an event's own time to the commit of its row (event-to-row latency)",
                &[
                    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ],
            )?,
            batch_size: r.histogram(
                "collector_batch_size_records",
                "Records per written batch",
                &[1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0],
            )?,
            late: r.counter(
                "log_events_late_total",
                "Events that arrived after their window was closed",
            )?,
            filtered: r.counter_vec(
                "log_events_filtered_total",
                "Events dropped by a filter rule instead of stored, by rule (index in LOGSTREAM_FILTER_DROP)",
                &["rule"],
            )?,
            routed: r.counter_vec(
                "log_events_routed_total",
                "Events also sent to a route's destination, by route (index in LOGSTREAM_ROUTES)",
                &["route"],
            )?,
            paused: r.gauge(
                "collector_consumer_paused",
                "1 while the Kafka partitions are paused because storage is behind (backpressure)",
            )?,
            pauses: r.counter(
                "collector_consumer_pauses_total",
                "Times the consumer paused its partitions because storage was behind",
            )?,
            faults: Faults::register(&r)?,
            alerts: Alerting::register(&r)?,
            sinks: Sinks::register(&r)?,
        };
        m.known_labels_at_zero();
        Ok(m)
    }

    /// Known label values start at zero, so dashboards and alerts have series before the
    /// first occurrence.
    fn known_labels_at_zero(&self) {
        for reason in dlq_reasons() {
            self.dlq.with_label_values(&[reason]);
        }
        for kind in Kind::ALL {
            self.alerts.raised.with_label_values(&[kind.as_str()]);
        }
    }

    /// Counts stored events of one service and level, keeping the service label set bounded.
    pub fn count_stored(&self, service: &str, level: &str, n: u64) {
        let label = bounded(&self.labelled_services, self.max_services, service);
        self.stored_by_level
            .with_label_values(&[label, level])
            .inc_by(n);
    }

    /// Counts events of one instance sampled out, keeping the instance label set bounded.
    pub fn count_sampled_out(&self, instance: &str, n: u64) {
        let label = bounded(&self.sampling.labelled, self.max_services, instance);
        self.sampling
            .sampled_out
            .with_label_values(&[label])
            .inc_by(n);
    }
}

/// Sampling of raw storage under lag (`LOGSTREAM_SAMPLE_LAG_SECONDS`).
#[derive(Clone)]
pub struct Sampling {
    /// Events whose raw row was sampled out, by instance (bounded like services).
    pub sampled_out: IntCounterVec,
    labelled: LabelSet,
    /// 1 while raw storage is sampled.
    pub active: IntGauge,
}

impl Sampling {
    fn register(r: &Registrar<'_>) -> prometheus::Result<Self> {
        Ok(Self {
            sampled_out: r.counter_vec(
                "log_events_sampled_out_total",
                "Events counted in windows, stats and detection whose raw row was not stored because the collector sampled under lag, by instance-id (past the first LOGSTREAM_METRICS_MAX_SERVICES: \"other\")",
                &["instance"],
            )?,
            labelled: Default::default(),
            active: r.gauge(
                "collector_sampling_active",
                "1 while raw storage of low-level events is sampled because the collector is behind (LOGSTREAM_SAMPLE_LAG_SECONDS)",
            )?,
        })
    }
}

/// Label values given out so far.
type LabelSet = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// `value` as a label value while fewer than `max` were given out, else "other".
fn bounded<'a>(known: &LabelSet, max: usize, value: &'a str) -> &'a str {
    let mut known = lock(known);
    if known.contains(value) {
        value
    } else if known.len() < max {
        known.insert(value.to_owned());
        value
    } else {
        "other"
    }
}

impl Alerting {
    fn register(r: &Registrar<'_>) -> prometheus::Result<Self> {
        Ok(Self {
        raised: r.counter_vec(
            "alerts_raised_total",
            "Alerts raised, by kind",
            &["kind"],
        )?,
        firing: r.gauge_vec(
            "alerts_firing",
            "Alert episodes firing on this collector's partitions, by kind",
            &["kind"],
        )?,
        published: r.counter(
            "alerts_published_total",
            "Alert transitions (fired, resolved) committed to logs.alerts by this collector",
        )?,
        fast_published: r.counter(
            "alerts_fast_published_total",
            "Critical alert transitions sent to logs.alerts by the fast lane, before their batch was stored",
        )?,
        fast_failed: r.counter(
            "alerts_fast_failed_total",
            "Critical alert transitions the fast lane could not send or dropped (the publisher sends them once their batch is stored)",
        )?,
        fast_steps: r.histogram_vec(
            "alerts_fast_lane_seconds",
            "Time a critical alert transition spends in each step of the fast lane: queued (event read to lane), acquire (a database connection), claim (outbox insert), send (until Kafka acknowledged it)",
            &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            &["step"],
        )?,
        notifications_failed: r.counter_vec(
            "alert_notifications_failed_total",
            "Alert notifications a target did not accept (retried), by target: alertmanager, webhook",
            &["target"],
        )?,
        notifications_dropped: r.counter(
            "alert_notifications_dropped_total",
            "Alert notifications given up because too many waited (the transitions are still on logs.alerts)",
        )?,
        })
    }
}

impl Faults {
    fn register(r: &Registrar<'_>) -> prometheus::Result<Self> {
        Ok(Self {
        store_errors: r.counter(
            "collector_store_errors_total",
            "Failed batch writes (retried)",
        )?,
        batch_retries: r.counter(
            "collector_batch_retries_total",
            "Writes of a batch retried after a transient failure (PostgreSQL or Kafka unavailable)",
        )?,
        refused_batches: r.counter(
            "collector_batches_refused_total",
            "Batches PostgreSQL refused for their data (a permanent error): split until the records responsible were found and dead-lettered",
        )?,
        sanitized: r.counter_vec(
            "log_events_sanitized_total",
            "Events changed to be storable, by what: nul (NUL characters replaced), surrogate (unpaired surrogate escapes replaced), number (numbers beyond PostgreSQL's numeric kept as strings), utf8 (bytes that were not UTF-8 replaced with U+FFFD), plain (a line in no known format kept as a plain message)",
            &["what"],
        )?,
        offset_conflicts: r.counter(
            "collector_offset_conflicts_total",
            "Batches discarded because another member had already stored those offsets",
        )?,
        duplicates_skipped: r.counter(
            "collector_duplicates_skipped_total",
            "Redelivered records skipped because their offset was already stored",
        )?,
        replayed: r.counter(
            "collector_records_replayed_total",
            "Stored records read again after a start or a rebalance only to rebuild the detectors' state from their last snapshot (not stored again)",
        )?,
        offset_gaps: r.counter(
            "collector_offset_gaps_total",
            "Records that arrived past the next expected offset of their partition (the partition is read again from there once, to confirm the gap)",
        )?,
        rejoins: r.counter(
            "collector_group_rejoins_total",
            "Times the consumer joined its group again with a new consumer: fenced by its own rejoin after a broker outage, or left holding no partition while some had no owner",
        )?,
        gap_offsets_confirmed: r.counter(
            "collector_gap_offsets_confirmed_total",
            "Offsets that hold no record for the collector, confirmed by reading the partition again: transaction markers, aborted transactions, compacted records",
        )?,
        expired: r.counter(
            "kafka_records_expired_total",
            "Offsets the broker deleted (retention) before the collector stored them: records lost upstream of logstream",
        )?,
        })
    }
}

/// Every `reason` label of `log_events_dlq_total`.
pub fn dlq_reasons() -> impl Iterator<Item = &'static str> {
    decode::REASONS.into_iter().chain([
        EMPTY_PAYLOAD,
        logstream_core::window::TIMESTAMP_OUT_OF_RANGE,
        STORAGE_REJECTED,
    ])
}
