//! One batch of consumed records on its way to storage: decoded events as `COPY` rows, window
//! counts, records to dead-letter, and the next offset per partition. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use logstream_core::detect::Detectors;
use logstream_core::enrich::Enricher;
use logstream_core::format::lenient::{self, Decoded};
use logstream_core::json;
use logstream_core::route::Routing;
use logstream_core::sample::Sample;
use logstream_core::sketch::latency_us_of_attributes;
use logstream_core::storable;
use logstream_core::window::{self, Watermark, WindowSpec, Windows};
use logstream_core::{Level, LogEvent};
use logstream_service::sync::lock;

use crate::messages::{AlertChange, DeadLetter, DetectorSnapshot, Record, Routed, EMPTY_PAYLOAD};
use crate::pipeline::event_rows as rows;

/// Most distinct trace contexts a batch remembers (its span links to them).
pub const MAX_TRACES: usize = 32;

/// The enricher of a writer's batches (its user-agent cache outlives each batch).
pub type SharedEnricher = Arc<Mutex<Enricher>>;

/// Event times the collector accepts, relative to its clock.
#[derive(Debug, Clone, Copy)]
pub struct TimeBounds {
    pub max_past_ms: i64,
    pub max_future_ms: i64,
}

pub struct Batch {
    pub rows: Vec<u8>,
    pub stored: u64,
    pub windows: Windows,
    /// Stored events whose window the watermark had already passed.
    pub late: u64,
    /// The UTC days (since the epoch) of the stored events: their partitions must exist.
    pub days: BTreeSet<i64>,
    /// Events dropped by a filter rule, by the rule's index.
    pub filtered: BTreeMap<usize, u64>,
    /// Stored events that routes also send elsewhere.
    pub routed: Vec<Routed>,
    bounds: TimeBounds,
    routing: Arc<Routing>,
    /// User agents parsed, client addresses located (None: no enrichment configured).
    enricher: Option<SharedEnricher>,
    pub dead_letters: Vec<DeadLetter>,
    /// Partition → offset after the last record of the batch.
    pub next_offsets: BTreeMap<i32, i64>,
    pub records: u64,
    /// Stored events per service, indexed by level (in `Level::ALL` order), for the by-level metric.
    pub by_service_level: HashMap<String, [u64; 6]>,
    /// Distinct `traceparent` values of the batch's records, first seen first (at most
    /// [`MAX_TRACES`]).
    pub traces: Vec<String>,
    /// Events changed to be storable, by what changed (`storable::Sanitized::names`).
    pub sanitized: BTreeMap<&'static str, u64>,
    /// Every record of the batch, in the order added, with the clock it was added at: when
    /// PostgreSQL refuses the batch for its data, smaller batches are built again from them to
    /// find the records responsible.
    pub kept: Vec<(Record, i64)>,
    /// Alert changes the batch's events made, and detector snapshots as of its end: stored in
    /// its transaction.
    pub alerts: Vec<AlertChange>,
    pub snapshots: Vec<DetectorSnapshot>,
    /// The event time of each stored event (ms), for the event-to-row latency.
    pub event_times: Vec<i64>,
    /// The batch's sampling of raw rows (None: every event stored), set when it opens.
    pub sample: Option<Sample>,
    /// Events counted in windows, stats and detection whose raw row was sampled out, by the
    /// `instance-id` they came with (empty: none).
    pub sampled_out: BTreeMap<String, u64>,
}

impl Batch {
    /// A batch aggregating `specs` (the first decides lateness) that accepts events within
    /// `bounds`.
    pub fn new(
        specs: Vec<WindowSpec>,
        bounds: TimeBounds,
        routing: Arc<Routing>,
        enricher: Option<SharedEnricher>,
    ) -> Self {
        Self {
            rows: Vec::with_capacity(1 << 20),
            stored: 0,
            windows: Windows::new(specs),
            late: 0,
            days: BTreeSet::new(),
            filtered: BTreeMap::new(),
            routed: Vec::new(),
            bounds,
            routing,
            enricher,
            dead_letters: Vec::new(),
            next_offsets: BTreeMap::new(),
            records: 0,
            by_service_level: HashMap::new(),
            traces: Vec::new(),
            sanitized: BTreeMap::new(),
            kept: Vec::new(),
            alerts: Vec::new(),
            snapshots: Vec::new(),
            event_times: Vec::new(),
            sample: None,
            sampled_out: BTreeMap::new(),
        }
    }

    /// An empty batch with the same windows, bounds, routing and sampling.
    pub fn empty_like(&self) -> Self {
        let mut batch = Self::new(
            self.windows.specs().to_vec(),
            self.bounds,
            self.routing.clone(),
            self.enricher.clone(),
        );
        batch.sample = self.sample;
        batch
    }

    /// A batch of `records` built again, each at the clock it was first added at, from the
    /// watermark as it stood before them; with the watermark after them.
    pub fn rebuilt(&self, records: &[(Record, i64)], watermark: &Watermark) -> (Self, Watermark) {
        let mut watermark = watermark.clone();
        let mut batch = self.empty_like();
        for (record, now_ms) in records {
            batch.add(record.clone(), *now_ms, &mut watermark, None);
        }
        (batch, watermark)
    }

    /// A batch that stores nothing of `record` but dead-letters it (`reason`, `detail`), and
    /// moves its partition's offset past it.
    pub fn rejected(&self, record: Record, reason: &'static str, detail: String) -> Self {
        let mut batch = self.empty_like();
        batch.records = 1;
        batch
            .next_offsets
            .insert(record.partition, record.offset + 1);
        batch.dead_letters.push(DeadLetter {
            record,
            reason,
            detail,
        });
        batch
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Empties the batch for reuse, keeping its buffers.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.stored = 0;
        self.windows.clear();
        self.late = 0;
        self.days.clear();
        self.filtered.clear();
        self.routed.clear();
        self.dead_letters.clear();
        self.next_offsets.clear();
        self.records = 0;
        self.by_service_level.clear();
        self.traces.clear();
        self.sanitized.clear();
        self.kept.clear();
        self.alerts.clear();
        self.snapshots.clear();
        self.event_times.clear();
        self.sample = None;
        self.sampled_out.clear();
    }

    /// Adds one record: a storable event, or a dead letter with its reason. `now_ms` dates
    /// syslog lines that lack a time or a year and bounds plausible event times; `watermark`
    /// tells late events and learns from each stored one; `detectors` (the partition's) see
    /// each event stored.
    pub fn add(
        &mut self,
        record: Record,
        now_ms: i64,
        watermark: &mut Watermark,
        detectors: Option<&mut Detectors>,
    ) {
        self.records += 1;
        let next = self.next_offsets.entry(record.partition).or_insert(0);
        *next = (*next).max(record.offset + 1);
        if let Some(traceparent) = &record.traceparent {
            if self.traces.len() < MAX_TRACES && !self.traces.contains(traceparent) {
                self.traces.push(traceparent.clone());
            }
        }
        match self.decode(&record, now_ms) {
            Ok(decoded) => {
                for (assumed, what) in [(decoded.plain, "plain"), (decoded.replaced_utf8, "utf8")] {
                    if assumed {
                        *self.sanitized.entry(what).or_default() += 1;
                    }
                }
                self.accept(decoded.event, &record, now_ms, watermark, detectors)
            }
            Err((reason, detail)) => self.dead_letters.push(DeadLetter {
                record: record.clone(),
                reason,
                detail,
            }),
        }
        self.kept.push((record, now_ms));
    }

    /// The record's event, or why it cannot be one: no value, undecodable, or an event time
    /// outside the accepted bounds around `now_ms`.
    fn decode(&self, record: &Record, now_ms: i64) -> Result<Decoded, (&'static str, String)> {
        let Some(bytes) = &record.payload else {
            return Err((EMPTY_PAYLOAD, "record has no value".to_owned()));
        };
        let decoded = lenient::decode_record(
            record.content_type.as_deref(),
            bytes,
            record.key.as_deref(),
            now_ms,
        )
        .map_err(|e| (e.reason, e.detail))?;
        let event = &decoded.event;
        let TimeBounds {
            max_past_ms,
            max_future_ms,
        } = self.bounds;
        if window::out_of_range(event.timestamp_ms, now_ms, max_past_ms, max_future_ms) {
            return Err((
                window::TIMESTAMP_OUT_OF_RANGE,
                format!(
                    "event time {} is more than {} s ahead of or {} s behind the collector's clock {}",
                    json::format_timestamp(event.timestamp_ms),
                    max_future_ms / 1000,
                    max_past_ms / 1000,
                    json::format_timestamp(now_ms)
                ),
            ));
        }
        Ok(decoded)
    }

    /// Takes a decoded event: made storable, then filtered out, or routed, windowed, counted
    /// and encoded as a row.
    fn accept(
        &mut self,
        mut event: LogEvent,
        record: &Record,
        now_ms: i64,
        watermark: &mut Watermark,
        detectors: Option<&mut Detectors>,
    ) {
        let changed = storable::event(&mut event);
        for what in changed.names() {
            *self.sanitized.entry(what).or_default() += 1;
        }
        if let Some(enricher) = &self.enricher {
            lock(enricher).enrich(&mut event);
        }
        if let Some(index) = self.routing.dropped_by(&event) {
            *self.filtered.entry(index).or_default() += 1;
            return;
        }
        if let Some(detectors) = detectors {
            detectors.observe(&event);
            detectors.stamp(now_ms);
        }
        for route in self.routing.routes_of(&event) {
            if let Ok(json) = json::encode(&event) {
                self.routed.push(Routed {
                    route,
                    key: record.key.clone(),
                    json,
                });
            }
        }
        if let Some(&spec) = self.windows.specs().first() {
            if watermark.is_late(event.timestamp_ms, spec) {
                self.late += 1;
            }
        }
        // An event from the (accepted) future must not close windows still filling.
        watermark.observe(record.partition, event.timestamp_ms.min(now_ms));
        let day = rows::day_of(event.timestamp_ms);
        if self.days.last() != Some(&day) {
            self.days.insert(day);
        }
        let latency = event
            .attributes
            .as_deref()
            .and_then(latency_us_of_attributes);
        self.windows
            .add(event.timestamp_ms, &event.service, event.level, latency);
        if self
            .sample
            .is_some_and(|s| !s.keeps(event.level, record.partition, record.offset))
        {
            let instance = record.instance_id.as_deref().unwrap_or_default();
            match self.sampled_out.get_mut(instance) {
                Some(n) => *n += 1,
                None => {
                    self.sampled_out.insert(instance.to_owned(), 1);
                }
            }
            return;
        }
        self.count_level(&event);
        rows::push_row(&mut self.rows, &event, record);
        self.event_times.push(event.timestamp_ms);
        self.stored += 1;
    }

    /// Shows a record that is stored already to `detectors` only, as [`Batch::add`] would have
    /// (rebuilding their state after a snapshot).
    pub fn replay(&self, record: &Record, now_ms: i64, detectors: &mut Detectors) {
        if let Ok(Decoded { mut event, .. }) = self.decode(record, now_ms) {
            storable::event(&mut event);
            if self.routing.dropped_by(&event).is_none() {
                detectors.observe(&event);
            }
        }
    }

    /// Counts a stored event under its service and level.
    fn count_level(&mut self, event: &LogEvent) {
        let slot = Level::ALL
            .iter()
            .position(|l| *l == event.level)
            .unwrap_or(0);
        match self.by_service_level.get_mut(event.service.as_str()) {
            Some(counts) => counts[slot] += 1,
            None => {
                let mut counts = [0; 6];
                counts[slot] = 1;
                self.by_service_level.insert(event.service.clone(), counts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event_rows::COPY_COLUMNS;
    use logstream_core::copy;

    fn record(offset: i64, payload: &[u8]) -> Record {
        Record {
            partition: 2,
            offset,
            key: None,
            payload: Some(payload.to_vec()),
            instance_id: Some("gen-1".into()),
            seq: Some(offset + 1),
            traceparent: None,
            content_type: None,
            timestamp_ms: None,
        }
    }

    #[test]
    fn sampled_out_events_are_counted_in_windows_and_by_instance() {
        let mut sampler =
            logstream_core::sample::Sampler::new(Some(logstream_core::sample::SampleRule {
                lag_ms: 1_000,
                keep_per_million: 0,
                max_level: Level::Info,
            }));
        let fill = |batch: &mut Batch| {
            let mut watermark = Watermark::new(5_000);
            for (offset, level) in [(1, "INFO"), (2, "DEBUG"), (3, "WARN"), (4, "ERROR")] {
                let json = format!(
                    r#"{{"timestamp":1000,"level":"{level}","service":"orders","message":"m"}}"#
                );
                batch.add(record(offset, json.as_bytes()), 1_000, &mut watermark, None);
            }
        };
        let mut whole = batch();
        fill(&mut whole);
        let mut sampled = batch();
        sampled.sample = sampler.update(Some(5_000));
        fill(&mut sampled);
        assert_eq!(
            (whole.stored, sampled.stored),
            (4, 2),
            "WARN and ERROR stored"
        );
        assert_eq!(sampled.sampled_out.get("gen-1"), Some(&2));
        assert_eq!(sampled.event_times.len(), 2);
        let counts =
            |b: &Batch| -> Vec<i64> { b.windows.sorted().iter().map(|(_, a)| a.count).collect() };
        assert_eq!(
            counts(&sampled),
            counts(&whole),
            "windows count every event"
        );
        // A part built again keeps the batch's sampling.
        assert_eq!(sampled.empty_like().sample, sampled.sample);
        sampled.clear();
        assert_eq!(sampled.sample, None);
    }

    #[test]
    fn splits_good_and_bad_records_and_tracks_offsets() {
        let mut batch = batch();
        let mut watermark = Watermark::new(5_000);
        batch.add(
            record(
                5,
                br#"{"timestamp":1000,"level":"INFO","service":"orders","message":"a\tb"}"#,
            ),
            1_000,
            &mut watermark,
            None,
        );
        // Named JSON, so read strictly (a record naming no format would be a plain message).
        let garbage = Record {
            content_type: Some("application/json".into()),
            ..record(6, b"{garbage")
        };
        batch.add(garbage, 0, &mut watermark, None);
        batch.add(
            Record {
                payload: None,
                ..record(7, b"")
            },
            0,
            &mut watermark,
            None,
        );
        assert_eq!(batch.records, 3);
        assert_eq!(batch.stored, 1);
        assert_eq!(batch.dead_letters.len(), 2);
        assert_eq!(batch.dead_letters[0].reason, "invalid_json");
        assert_eq!(batch.dead_letters[1].reason, "empty_payload");
        assert_eq!(batch.next_offsets.get(&2), Some(&8));
        assert_eq!(
            batch.by_service_level.get("orders"),
            Some(&[0, 0, 1, 0, 0, 0])
        );
        let rows = copy::decode_rows(&batch.rows).expect("binary COPY rows");
        let text = |s: &str| Some(s.as_bytes().to_vec());
        let micros = (1000 - 946_684_800_000i64) * 1000;
        assert_eq!(
            rows,
            vec![vec![
                Some(micros.to_be_bytes().to_vec()),
                text("INFO"),
                text("orders"),
                None,
                None,
                text("a\tb"),
                None,
                None,
                None,
                None,
                text("gen-1"),
                Some(6i64.to_be_bytes().to_vec()),
                Some(2i32.to_be_bytes().to_vec()),
                Some(5i64.to_be_bytes().to_vec()),
            ]]
        );
        assert_eq!(rows[0].len(), COPY_COLUMNS.split(',').count());
        assert_eq!(watermark.highest(2), Some(1000));
        batch.clear();
        assert!(batch.is_empty() && batch.rows.is_empty() && batch.windows.is_empty());
    }

    fn json_at(ms: i64, latency_ms: Option<f64>) -> Vec<u8> {
        let attributes = latency_ms
            .map(|l| format!(r#","attributes":{{"http":{{"status":200,"latency_ms":{l}}}}}"#))
            .unwrap_or_default();
        format!(r#"{{"timestamp":{ms},"level":"INFO","service":"web","message":"m"{attributes}}}"#)
            .into_bytes()
    }

    #[test]
    fn late_and_implausible_event_times() {
        // 3 s into a 10 s window; the first event puts the watermark at now − 5 s.
        let now = 1_800_000_003_000;
        let mut batch = batch();
        let mut watermark = Watermark::new(5_000);
        let cases: [(i64, Option<f64>); 5] = [
            (now, Some(12.5)),
            (now - 15_000, None),      // its window ended 13 s ago: late
            (now + 3_601_000, None),   // too far ahead: dead letter
            (now - 3_601_000, None),   // older than the past bound: dead letter
            (now - 7_000, Some(20.0)), // previous window, still open (ends after the watermark)
        ];
        for (i, (ms, latency)) in cases.iter().enumerate() {
            batch.add(
                record(i as i64, &json_at(*ms, *latency)),
                now,
                &mut watermark,
                None,
            );
        }
        assert_eq!(batch.stored, 3);
        let reasons: Vec<&str> = batch.dead_letters.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, [window::TIMESTAMP_OUT_OF_RANGE; 2]);
        assert_eq!(batch.late, 1);
        let latencies: i64 = batch
            .windows
            .sorted()
            .iter()
            .filter(|(k, _)| k.window_size_ms == 10_000)
            .map(|(_, a)| a.latency.count())
            .sum();
        assert_eq!(latencies, 2);
    }

    fn batch() -> Batch {
        batch_with(Routing::default())
    }

    fn batch_with(routing: Routing) -> Batch {
        Batch::new(
            vec![WindowSpec::tumbling(10_000).expect("valid")],
            TimeBounds {
                max_past_ms: 3_600_000,
                max_future_ms: 3_600_000,
            },
            Arc::new(routing),
            None,
        )
    }

    #[test]
    fn filters_and_routes() {
        let routing = Routing::parse("service==noise", "kafka:logs.errors=level>=ERROR; stdout=*")
            .expect("valid");
        let mut batch = batch_with(routing);
        let mut watermark = Watermark::new(5_000);
        let line = |service: &str, level: &str| {
            format!(r#"{{"timestamp":1000,"level":"{level}","service":"{service}","message":"m"}}"#)
                .into_bytes()
        };
        batch.add(record(1, &line("noise", "ERROR")), 0, &mut watermark, None);
        batch.add(record(2, &line("orders", "ERROR")), 0, &mut watermark, None);
        batch.add(record(3, &line("orders", "INFO")), 0, &mut watermark, None);
        assert_eq!(batch.stored, 2);
        assert_eq!(batch.filtered.get(&0), Some(&1));
        let routes: Vec<usize> = batch.routed.iter().map(|r| r.route).collect();
        assert_eq!(routes, [0, 1, 1]);
        assert_eq!(batch.next_offsets.get(&2), Some(&4));
    }
}
