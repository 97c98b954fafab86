//! The writer: receives the consumer thread's records in order, batches them, and flushes each
//! batch (dead letters first, then one PostgreSQL transaction) when it is full, when its oldest
//! record has waited long enough, or when partitions are revoked. A failed flush is retried with
//! the same batch; consumption waits meanwhile (the channel is bounded).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logstream_core::route::Routing;
use logstream_core::window::{Watermark, WindowSpec};
use logstream_core::Level;
use logstream_service::sync::lock;
use logstream_service::trace_context;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::batch::{Batch, TimeBounds};
use crate::consumer::Input;
use crate::dlq::DlqSink;
use crate::metrics::Metrics;
use crate::sinks::RouteSinks;
use crate::store::{Store, StoreError};

/// Where the writer stands on one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    /// Accepting records; this offset (None: nothing yet) is what PostgreSQL holds.
    Stored(Option<i64>),
    /// Waiting for the consumer to rewind to this offset (None: the beginning); records until
    /// then are stale.
    Rewinding(Option<i64>),
    /// Waiting for the consumer to rewind to `seek` (before `stored`, to read a gap again);
    /// afterwards records before `stored` are duplicates.
    Refetching { seek: i64, stored: i64 },
}

/// Committed offsets per owned partition, shared with the status endpoint and lag sampler.
pub type Committed = Arc<Mutex<BTreeMap<i32, Option<i64>>>>;

pub struct Writer {
    pub store: Arc<Store>,
    pub dlq: Arc<DlqSink>,
    /// The consumed topic.
    pub topic: String,
    pub sinks: Arc<RouteSinks>,
    pub routing: Arc<Routing>,
    pub metrics: Metrics,
    pub max_events: u64,
    pub max_wait: Duration,
    /// Window shapes; the first (the smallest tumbling one) decides which events are late.
    pub window_specs: Vec<WindowSpec>,
    pub time_bounds: TimeBounds,
    pub allowed_lateness_ms: i64,
    pub rewinds: std::sync::mpsc::Sender<(i32, Option<i64>)>,
    pub committed: Committed,
}

impl Writer {
    pub async fn run(self, mut rx: mpsc::Receiver<Input>) {
        let mut positions: BTreeMap<i32, Position> = BTreeMap::new();
        // Partition → how far back it was last read again to recover skipped offsets.
        let mut gaps: BTreeMap<i32, i64> = BTreeMap::new();
        let mut batch = Batch::new(
            self.window_specs.clone(),
            self.time_bounds,
            self.routing.clone(),
        );
        let mut watermark = Watermark::new(self.allowed_lateness_ms);
        let mut opened: Option<Instant> = None;
        loop {
            let input = match opened {
                None => rx.recv().await,
                Some(at) => {
                    let due = tokio::time::Instant::from_std(at + self.max_wait);
                    tokio::select! {
                        biased;
                        input = rx.recv() => input,
                        _ = tokio::time::sleep_until(due) => {
                            self.flush(&mut batch, &mut positions, &watermark).await;
                            opened = None;
                            continue;
                        }
                    }
                }
            };
            match input {
                None => break,
                Some(Input::Record(record)) => {
                    match positions.get(&record.partition) {
                        None | Some(Position::Rewinding(_)) | Some(Position::Refetching { .. }) => {
                            continue
                        }
                        Some(Position::Stored(Some(stored))) if record.offset < *stored => {
                            self.metrics.duplicates_skipped.inc();
                            continue;
                        }
                        Some(Position::Stored(_)) => {}
                    }
                    // A record the open batch already holds (redelivered after a rewind).
                    let in_batch = batch.next_offsets.get(&record.partition).copied();
                    if in_batch.is_some_and(|next| record.offset < next) {
                        self.metrics.duplicates_skipped.inc();
                        continue;
                    }
                    // A record past the next expected offset: the consumer skipped some. Store
                    // what is contiguous, then read the partition again from what is stored;
                    // only when the same record comes first again is the gap in the log itself.
                    // (Some brokers — tansu 0.6 — answer a fetch from inside a record batch with
                    // the next batch: reading again from further back recovers the records.)
                    let expected = in_batch.or(match positions.get(&record.partition) {
                        Some(Position::Stored(stored)) => *stored,
                        _ => None,
                    });
                    match expected {
                        Some(expected) if record.offset > expected => {
                            let lookback = gaps
                                .get(&record.partition)
                                .map_or(64, |l: &i64| l.saturating_mul(8));
                            // Only records gone from the log (below its start) are a real gap:
                            // this topic has no transactions or compaction.
                            let log_start = self.log_start(record.partition).await;
                            if let Some(start) = log_start.filter(|start| *start > expected) {
                                self.metrics.expired.inc_by((start - expected) as u64);
                                tracing::warn!(
                                    partition = record.partition,
                                    expected,
                                    log_start,
                                    offset = record.offset,
                                    "offsets are gone from the log (retention); continuing after them"
                                );
                                gaps.remove(&record.partition);
                            } else {
                                self.metrics.offset_gaps.inc();
                                tracing::warn!(
                                    partition = record.partition,
                                    expected,
                                    offset = record.offset,
                                    lookback,
                                    "consumer skipped offsets; reading the partition again from further back"
                                );
                                gaps.insert(record.partition, lookback);
                                if !batch.is_empty() {
                                    self.flush(&mut batch, &mut positions, &watermark).await;
                                    opened = None;
                                }
                                // The flush may have moved the stored offset on.
                                if let Some(Position::Stored(Some(stored))) =
                                    positions.get(&record.partition).copied()
                                {
                                    let seek = (stored - lookback).max(0);
                                    positions.insert(
                                        record.partition,
                                        Position::Refetching { seek, stored },
                                    );
                                    let _ = self.rewinds.send((record.partition, Some(seek)));
                                }
                                continue;
                            }
                        }
                        Some(expected) if record.offset == expected => {
                            gaps.remove(&record.partition);
                        }
                        _ => {}
                    }
                    if batch.is_empty() {
                        opened = Some(Instant::now());
                    }
                    batch.add(
                        record,
                        chrono::Utc::now().timestamp_millis(),
                        &mut watermark,
                    );
                    if batch.records >= self.max_events {
                        self.flush(&mut batch, &mut positions, &watermark).await;
                        opened = None;
                    }
                }
                Some(Input::Assigned(partitions)) => {
                    let mut committed = lock(&self.committed);
                    for (partition, stored) in partitions {
                        gaps.remove(&partition);
                        let next = stored.map(|s| s.next_offset);
                        positions.insert(partition, Position::Stored(next));
                        committed.insert(partition, next);
                        if let Some(ms) = stored.and_then(|s| s.max_event_ms) {
                            watermark.restore(partition, ms);
                        }
                    }
                }
                Some(Input::Revoked(partitions, ack)) => {
                    if !batch.is_empty() {
                        self.flush(&mut batch, &mut positions, &watermark).await;
                        opened = None;
                    }
                    let mut committed = lock(&self.committed);
                    for partition in partitions {
                        gaps.remove(&partition);
                        positions.remove(&partition);
                        committed.remove(&partition);
                        let _ = self
                            .metrics
                            .lag
                            .remove_label_values(&[&partition.to_string()]);
                    }
                    let _ = ack.send(());
                }
                Some(Input::Seeked(partition, offset)) => {
                    if let Some(Position::Refetching { seek, stored }) =
                        positions.get(&partition).copied()
                    {
                        if offset == Some(seek) {
                            positions.insert(partition, Position::Stored(Some(stored)));
                        }
                    } else if positions.get(&partition) == Some(&Position::Rewinding(offset)) {
                        positions.insert(partition, Position::Stored(offset));
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.flush(&mut batch, &mut positions, &watermark).await;
        }
        tracing::info!("writer finished");
    }

    /// Writes the batch inside a span that continues the producers' traces: child of the first
    /// record's trace context, linked to the others.
    async fn flush(
        &self,
        batch: &mut Batch,
        positions: &mut BTreeMap<i32, Position>,
        watermark: &Watermark,
    ) {
        let span = tracing::info_span!(
            "collector_store_batch",
            otel.kind = "consumer",
            records = batch.records,
            stored = batch.stored,
            dead_letters = batch.dead_letters.len(),
        );
        trace_context::continue_traces(&span, batch.traces.iter().map(String::as_str));
        self.write_batch(batch, positions, watermark)
            .instrument(span)
            .await
    }

    /// Writes the batch, retrying until it is stored or found to belong to another member.
    async fn write_batch(
        &self,
        batch: &mut Batch,
        positions: &mut BTreeMap<i32, Position>,
        watermark: &Watermark,
    ) {
        let expected: BTreeMap<i32, Option<i64>> = batch
            .next_offsets
            .keys()
            .map(|p| {
                let stored = match positions.get(p) {
                    Some(Position::Stored(s)) => *s,
                    _ => None,
                };
                (*p, stored)
            })
            .collect();
        let mut delay = Duration::from_millis(100);
        let mut dead_letters_sent = batch.dead_letters.is_empty();
        let mut routed_sent = batch.routed.is_empty();
        loop {
            let timer = self.metrics.batch_duration.start_timer();
            // Dead letters and routed copies go out (acknowledged) before the commit; each is
            // sent once, then the commit alone is retried.
            let delivered = async {
                if !dead_letters_sent {
                    self.dlq.send_all(&batch.dead_letters).await?;
                    dead_letters_sent = true;
                }
                if !routed_sent {
                    self.sinks.send_all(&batch.routed).await?;
                    routed_sent = true;
                }
                Ok::<(), String>(())
            }
            .await;
            let result = match delivered {
                Ok(()) => self.store.write(batch, &expected, watermark).await,
                Err(e) => Err(StoreError::Delivery(e)),
            };
            match result {
                Ok(aggregates) => {
                    timer.observe_duration();
                    self.metrics.batch_size.observe(batch.records as f64);
                    self.metrics.stored.inc_by(batch.stored);
                    self.metrics.late.inc_by(batch.late);
                    for (rule, n) in &batch.filtered {
                        self.metrics
                            .filtered
                            .with_label_values(&[&rule.to_string()])
                            .inc_by(*n);
                    }
                    for item in &batch.routed {
                        self.metrics
                            .routed
                            .with_label_values(&[&item.route.to_string()])
                            .inc();
                    }
                    self.metrics.aggregates_written.inc_by(aggregates);
                    for (service, counts) in &batch.by_service_level {
                        for (level, n) in Level::ALL.iter().zip(counts).filter(|(_, n)| **n > 0) {
                            self.metrics.count_stored(service, level.as_str(), *n);
                        }
                    }
                    for letter in &batch.dead_letters {
                        self.metrics.dlq.with_label_values(&[letter.reason]).inc();
                    }
                    let mut committed = lock(&self.committed);
                    for (&partition, &next) in &batch.next_offsets {
                        positions.insert(partition, Position::Stored(Some(next)));
                        committed.insert(partition, Some(next));
                    }
                    batch.clear();
                    return;
                }
                Err(StoreError::Conflict(conflicting)) => {
                    timer.stop_and_discard();
                    self.metrics.offset_conflicts.inc();
                    // The whole batch was rolled back: every partition in it must be read again.
                    let partitions: Vec<i32> = batch.next_offsets.keys().copied().collect();
                    tracing::warn!(
                        ?conflicting,
                        ?partitions,
                        "batch already stored by another member; discarding it and rewinding"
                    );
                    batch.clear();
                    self.rewind(&partitions, positions).await;
                    return;
                }
                Err(e) => {
                    timer.stop_and_discard();
                    self.metrics.store_errors.inc();
                    tracing::warn!(error = %e, retry_in = ?delay, records = batch.records, "batch write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The first offset still in a partition's log (None when the broker does not answer).
    async fn log_start(&self, partition: i32) -> Option<i64> {
        let (dlq, topic) = (self.dlq.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || dlq.watermarks(&topic, partition))
            .await
            .ok()
            .flatten()
            .map(|(low, _)| low)
    }

    /// After a conflict: rewinds the partitions to what PostgreSQL holds.
    async fn rewind(&self, partitions: &[i32], positions: &mut BTreeMap<i32, Position>) {
        let stored = loop {
            match self.store.load_offsets(partitions).await {
                Ok(stored) => break stored,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read stored offsets; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut committed = lock(&self.committed);
        for &partition in partitions {
            let offset = stored.get(&partition).map(|s| s.next_offset);
            positions.insert(partition, Position::Rewinding(offset));
            committed.insert(partition, offset);
            let _ = self.rewinds.send((partition, offset));
        }
    }
}
