//! The writer: receives the consumer thread's records in order and batches them. A batch is
//! handed to the committer (which writes it while the next one fills) when it is full, when it
//! is large enough and a transaction is free to take it, when its oldest record has waited long
//! enough, or when partitions are revoked. The writer tracks each partition's offset as if every
//! handed-off batch were stored; when one turns out to belong to another member, it waits for
//! the batches in flight, drops the open one, and rewinds those partitions to what PostgreSQL
//! holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::detect::rules::Rules;
use logstream_core::route::Routing;
use logstream_core::sample::{SampleRule, Sampler};
use logstream_core::window::{Watermark, WindowSpec};
use logstream_service::retry::Backoff;
use logstream_service::sync::lock;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::messages::{AlertChange, Input, Record, Rewind, StoredPosition};
use crate::metrics::Metrics;
use crate::pipeline::batch::{Batch, SharedEnricher, TimeBounds};
use crate::pipeline::detection::Detection;
use crate::pipeline::handoff::{Job, Outcome, WriterEnds, IN_FLIGHT};
use crate::shared::Committed;
use crate::stored_offsets::StoredOffsets;

/// Most messages of the consumer thread taken from the queue at once.
const INPUT_CHUNK: usize = 512;

/// Where the writer stands on one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    /// Accepting records; this offset (None: nothing yet) is what PostgreSQL holds.
    Stored(Option<i64>),
    /// Waiting for the consumer to rewind to `seek` (None: the beginning); records until then
    /// are stale. From there, PostgreSQL holds up to `stored` (the records in between are
    /// replayed through the detectors).
    Rewinding {
        seek: Option<i64>,
        stored: Option<i64>,
    },
    /// Waiting for the consumer to rewind to `stored`, to read a gap after it again.
    Refetching { stored: i64 },
}

pub struct Writer {
    /// Stored offsets, read when partitions must be rewound.
    pub offsets: Arc<StoredOffsets>,
    /// Log-start lookups when offsets are missing.
    pub broker: Arc<Broker>,
    /// The consumed topic.
    pub topic: String,
    pub routing: Arc<Routing>,
    pub enricher: Option<SharedEnricher>,
    pub metrics: Metrics,
    pub max_events: u64,
    /// A batch this large is handed off when a transaction is free to take it at once.
    pub early_events: u64,
    pub max_wait: Duration,
    /// Window shapes; the first (the smallest tumbling one) decides which events are late.
    pub window_specs: Vec<WindowSpec>,
    pub time_bounds: TimeBounds,
    pub allowed_lateness_ms: i64,
    pub rewinds: std::sync::mpsc::Sender<Rewind>,
    pub committed: Committed,
    pub rules: Rules,
    /// How often each partition's detector state is stored with its offsets.
    pub snapshot_every: Duration,
    /// Where fired critical alerts go at once (`sink::alert_fast_lane`).
    pub fast_lane: mpsc::Sender<AlertChange>,
    /// When raw storage is sampled under lag (None: never).
    pub sample_rule: Option<SampleRule>,
}

/// The writer's working state.
struct State {
    positions: BTreeMap<i32, Position>,
    /// Partition → the offset it was last read again from because a record came past it: when
    /// the same record comes first again, the gap is in the log itself.
    gaps: BTreeMap<i32, i64>,
    /// The open batch, and when its first record came.
    batch: Batch,
    opened: Option<Instant>,
    /// Emptied batches the committer gave back, for reuse.
    spare: Vec<Batch>,
    watermark: Watermark,
    /// The watermark as it stood when the open batch got its first record.
    watermark_before: Watermark,
    jobs: mpsc::Sender<Job>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    /// Batches handed to the committer whose outcome has not come back yet.
    in_flight: usize,
    detection: Detection,
    sampler: Sampler,
    /// The wall clock (epoch ms) when the chunk of input being taken was received: records
    /// are dated by it (their bounds, detector stamps), one clock read per chunk.
    now_ms: i64,
}

impl Writer {
    /// Runs until the consumer thread closes `rx`; hands batches on through `handoff`.
    pub async fn run(self, mut rx: mpsc::Receiver<Input>, handoff: WriterEnds) {
        let WriterEnds { jobs, outcomes } = handoff;
        let mut s = State {
            positions: BTreeMap::new(),
            gaps: BTreeMap::new(),
            batch: self.new_batch(),
            opened: None,
            spare: Vec::new(),
            watermark: Watermark::new(self.allowed_lateness_ms),
            watermark_before: Watermark::new(self.allowed_lateness_ms),
            jobs,
            outcomes,
            in_flight: 0,
            detection: Detection::new(self.rules.clone(), self.snapshot_every),
            sampler: Sampler::new(self.sample_rule),
            now_ms: 0,
        };
        // Taken from the queue a chunk at a time: one wake-up and one timer per chunk, not per
        // record.
        let mut inputs = Vec::with_capacity(INPUT_CHUNK);
        loop {
            let due = s
                .opened
                .map(|at| tokio::time::Instant::from_std(at + self.max_wait));
            let received = tokio::select! {
                biased;
                Some(outcome) = s.outcomes.recv(), if s.in_flight > 0 => {
                    if let Some(conflicting) = self.take_outcome(&mut s, outcome) {
                        self.settle(&mut s, conflicting).await;
                    }
                    if self.ready(&s) {
                        self.hand_off(&mut s).await;
                    }
                    continue;
                }
                received = rx.recv_many(&mut inputs, INPUT_CHUNK) => received,
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.hand_off(&mut s).await;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            s.now_ms = wall_clock_ms();
            for input in inputs.drain(..) {
                self.input(&mut s, input).await;
            }
        }
        self.hand_off(&mut s).await;
        self.settle(&mut s, Vec::new()).await;
        tracing::info!("writer finished");
    }

    /// Takes one message of the consumer thread.
    async fn input(&self, s: &mut State, input: Input) {
        match input {
            Input::Record(record) => self.record(s, record).await,
            Input::Assigned(partitions) => self.assigned(s, partitions),
            Input::Revoked(partitions, ack) => {
                // Everything consumed from them is stored before they go.
                self.hand_off(s).await;
                self.settle(s, Vec::new()).await;
                let mut committed = lock(&self.committed);
                for partition in partitions {
                    s.gaps.remove(&partition);
                    s.positions.remove(&partition);
                    s.detection.revoke(partition);
                    committed.remove(&partition);
                }
                let _ = ack.send(());
            }
            Input::Seeked(partition, offset) => seeked(s, partition, offset),
        }
    }

    /// Takes newly assigned partitions at what PostgreSQL holds for them.
    fn assigned(&self, s: &mut State, partitions: Vec<(i32, Option<StoredPosition>)>) {
        let mut committed = lock(&self.committed);
        for (partition, stored) in partitions {
            s.gaps.remove(&partition);
            let next = stored.as_ref().map(|s| s.next_offset);
            s.positions.insert(partition, Position::Stored(next));
            committed.insert(partition, next);
            if let Some(ms) = stored.as_ref().and_then(|s| s.max_event_ms) {
                s.watermark.restore(partition, ms);
            }
            s.detection.assign(partition, stored.as_ref());
        }
    }

    fn new_batch(&self) -> Batch {
        Batch::new(
            self.window_specs.clone(),
            self.time_bounds,
            self.routing.clone(),
            self.enricher.clone(),
        )
    }

    /// Takes one consumed record: into the open batch, or skipped (stale, duplicate), or the
    /// sign of a gap that makes the partition be read again.
    async fn record(&self, s: &mut State, record: Record) {
        let partition = record.partition;
        if matches!(s.positions.get(&partition), Some(Position::Stored(_)))
            && s.detection.replaying(partition, record.offset)
        {
            self.metrics.faults.replayed.inc();
            if let Some(detectors) = s.detection.detectors(partition) {
                s.batch.replay(&record, s.now_ms, detectors);
            }
            return;
        }
        let Some(expected) = self.expected(s, &record) else {
            return;
        };
        match expected {
            Some(expected) if record.offset > expected => {
                let taken = self.past_expected(s, &record, expected).await;
                s.now_ms = wall_clock_ms();
                if !taken {
                    return;
                }
            }
            Some(expected) if record.offset == expected => {
                s.gaps.remove(&record.partition);
            }
            _ => {}
        }
        if s.batch.is_empty() {
            s.opened = Some(Instant::now());
            s.watermark_before.clone_from(&s.watermark);
            self.open_sampling(s, &record);
        }
        s.batch.add(
            record,
            s.now_ms,
            &mut s.watermark,
            s.detection.detectors(partition),
        );
        // A critical event's alert does not wait for its batch: the fast lane sends it now.
        if let Some(detectors) = s.detection.detectors(partition).filter(|d| d.urgent()) {
            for change in detectors.take_urgent() {
                if self
                    .fast_lane
                    .try_send(AlertChange { partition, change })
                    .is_err()
                {
                    self.metrics.alerts.fast_failed.inc();
                }
            }
        }
        if self.ready(s) {
            self.hand_off(s).await;
        }
    }

    /// Whether the open batch is to be handed off now: it is full, or large enough and a
    /// transaction is free to take it (under a backlog every transaction is busy and batches
    /// grow to the largest, whose fixed cost is spread over more rows; otherwise smaller ones
    /// are stored sooner).
    fn ready(&self, s: &State) -> bool {
        batch_ready(
            s.batch.records,
            s.in_flight,
            (self.early_events, self.max_events),
        )
    }

    /// Decides the sampling of the batch `record` opens, from how far behind it is read.
    fn open_sampling(&self, s: &mut State, record: &Record) {
        let was = s.sampler.is_active();
        let lag_ms = record.timestamp_ms.map(|at| s.now_ms - at);
        s.batch.sample = s.sampler.update(lag_ms);
        let now = s.sampler.is_active();
        if now != was {
            tracing::warn!(
                lag_ms,
                sampling = now,
                "raw storage sampling {} (windows, stats and detection still count every event)",
                if now {
                    "starts: the collector is behind"
                } else {
                    "stops: the collector caught up"
                }
            );
            self.metrics.sampling.active.set(i64::from(now));
        }
    }

    /// The offset the record's partition expects next (Some(None): nothing known yet); None when
    /// the record is to be skipped: its partition is not owned or is being rewound, or the
    /// record is stored or in the open batch already (redelivered after a rewind).
    fn expected(&self, s: &State, record: &Record) -> Option<Option<i64>> {
        let stored = match s.positions.get(&record.partition) {
            None | Some(Position::Rewinding { .. }) | Some(Position::Refetching { .. }) => {
                return None
            }
            Some(Position::Stored(stored)) => *stored,
        };
        let in_batch = s.batch.next_offsets.get(&record.partition).copied();
        if stored.is_some_and(|stored| record.offset < stored)
            || in_batch.is_some_and(|next| record.offset < next)
        {
            self.metrics.faults.duplicates_skipped.inc();
            return None;
        }
        Some(in_batch.or(stored))
    }

    /// A record past the next expected offset; true when it is to be taken. Offsets without a
    /// record for us are normal in a Kafka log (transaction markers, aborted transactions,
    /// compaction), but so is a fetch that went wrong: a one-offset gap (a marker) is taken at
    /// once; for a wider one, store what is contiguous, read the partition again from the
    /// expected offset once, and accept the gap when the same record comes first again.
    /// Offsets below the log start were deleted by retention before they were stored: counted
    /// as expired.
    async fn past_expected(&self, s: &mut State, record: &Record, expected: i64) -> bool {
        let partition = record.partition;
        // One offset is what a transaction's commit (or abort) marker takes on every partition
        // the transaction wrote to, after each transaction: accepted as it is, without asking
        // the broker or reading the partition again (seconds per transaction when they are
        // small, e.g. a stream processor committing every 100 ms).
        if record.offset == expected + 1 {
            self.metrics.faults.gap_offsets_confirmed.inc();
            s.gaps.remove(&partition);
            return true;
        }
        let log_start = self.log_start(partition).await;
        if let Some(start) = log_start.filter(|start| *start > expected) {
            self.metrics
                .faults
                .expired
                .inc_by((start - expected) as u64);
            tracing::warn!(
                partition,
                expected,
                log_start,
                offset = record.offset,
                "offsets are gone from the log (retention); continuing after them"
            );
            s.gaps.remove(&partition);
            return true;
        }
        if s.gaps.get(&partition) == Some(&expected) {
            self.metrics
                .faults
                .gap_offsets_confirmed
                .inc_by((record.offset - expected) as u64);
            tracing::debug!(
                partition,
                expected,
                offset = record.offset,
                "offsets without records confirmed (transaction markers, aborted or compacted records)"
            );
            s.gaps.remove(&partition);
            return true;
        }
        self.metrics.faults.offset_gaps.inc();
        tracing::debug!(
            partition,
            expected,
            offset = record.offset,
            "record past the expected offset; reading the partition again from there"
        );
        self.hand_off(s).await;
        self.settle(s, Vec::new()).await;
        // What is stored now (unless a conflict had the partition rewound).
        if let Some(Position::Stored(Some(stored))) = s.positions.get(&partition).copied() {
            s.gaps.insert(partition, stored);
            s.positions
                .insert(partition, Position::Refetching { stored });
            let _ = self.rewinds.send((partition, Some(stored)));
        }
        false
    }

    /// Hands the open batch (if any) to the committer, and from then on takes its partitions'
    /// offsets as stored. Waits while the committer has one batch waiting already.
    async fn hand_off(&self, s: &mut State) {
        if s.batch.is_empty() {
            return;
        }
        let expected: BTreeMap<i32, Option<i64>> = s
            .batch
            .next_offsets
            .keys()
            .map(|p| {
                let stored = match s.positions.get(p) {
                    Some(Position::Stored(stored)) => *stored,
                    _ => None,
                };
                (*p, stored)
            })
            .collect();
        for (&partition, &next) in &s.batch.next_offsets {
            s.positions.insert(partition, Position::Stored(Some(next)));
        }
        (s.batch.alerts, s.batch.snapshots) = s.detection.take(&s.batch.next_offsets);
        for (kind, n) in s.detection.firing() {
            self.metrics
                .alerts
                .firing
                .with_label_values(&[kind.as_str()])
                .set(n);
        }
        let fresh = s.spare.pop().unwrap_or_else(|| self.new_batch());
        let job = Job {
            batch: std::mem::replace(&mut s.batch, fresh),
            expected,
            watermark: s.watermark.clone(),
            watermark_before: s.watermark_before.clone(),
        };
        s.opened = None;
        let sent = s.jobs.send(job).await;
        // The queue of batches may have been full (storage slow or down) for a while.
        s.now_ms = wall_clock_ms();
        if sent.is_err() {
            tracing::error!("the committer is gone; the batch will be read again after a restart");
            return;
        }
        s.in_flight += 1;
    }

    /// Counts one outcome back, keeps its batch for reuse; Some(partitions) when it conflicted.
    fn take_outcome(&self, s: &mut State, outcome: Outcome) -> Option<Vec<i32>> {
        s.in_flight -= 1;
        let (conflicting, batch) = match outcome {
            Outcome::Stored(batch) => (None, Some(batch)),
            Outcome::Conflict(partitions, batch) => (Some(partitions), batch),
        };
        s.spare.extend(batch);
        conflicting
    }

    /// Waits for every batch in flight. When any of them (or `conflicting`, already known)
    /// was another member's, later batches were built on offsets that are not stored: the open
    /// batch is dropped and all those partitions are rewound to what PostgreSQL holds.
    async fn settle(&self, s: &mut State, conflicting: Vec<i32>) {
        let mut rewind: BTreeSet<i32> = conflicting.into_iter().collect();
        while s.in_flight > 0 {
            let Some(outcome) = s.outcomes.recv().await else {
                s.in_flight = 0;
                break;
            };
            rewind.extend(self.take_outcome(s, outcome).into_iter().flatten());
        }
        s.now_ms = wall_clock_ms();
        if rewind.is_empty() {
            return;
        }
        rewind.extend(s.batch.next_offsets.keys().copied());
        s.batch.clear();
        s.opened = None;
        let partitions: Vec<i32> = rewind.into_iter().collect();
        self.rewind(&partitions, s).await;
        s.now_ms = wall_clock_ms();
    }

    /// The first offset still in a partition's log (None when the broker does not answer).
    async fn log_start(&self, partition: i32) -> Option<i64> {
        let (broker, topic) = (self.broker.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || broker.watermarks(&topic, partition))
            .await
            .ok()
            .flatten()
            .map(|(low, _)| low)
    }

    /// After a conflict: rewinds the partitions to what PostgreSQL holds (their detectors to
    /// its snapshot).
    async fn rewind(&self, partitions: &[i32], s: &mut State) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let stored = loop {
            match self.offsets.load(partitions).await {
                Ok(stored) => break stored,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot read stored offsets");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let mut committed = lock(&self.committed);
        for &partition in partitions {
            let position = stored.get(&partition);
            let next = position.map(|s| s.next_offset);
            let seek = position.map(StoredPosition::read_from);
            s.positions
                .insert(partition, Position::Rewinding { seek, stored: next });
            s.detection.assign(partition, position);
            committed.insert(partition, next);
            let _ = self.rewinds.send((partition, seek));
        }
    }
}

/// The consumer rewound `partition` to `offset`: records from there on are the ones awaited.
fn seeked(s: &mut State, partition: i32, offset: Option<i64>) {
    match s.positions.get(&partition).copied() {
        Some(Position::Refetching { stored }) if offset == Some(stored) => {
            s.positions
                .insert(partition, Position::Stored(Some(stored)));
        }
        Some(Position::Rewinding { seek, stored }) if seek == offset => {
            s.positions.insert(partition, Position::Stored(stored));
        }
        _ => {}
    }
}

/// Whether a batch of `records` is handed off, with `in_flight` batches before it not stored
/// yet and sizes `(early, max)`.
fn batch_ready(records: u64, in_flight: usize, (early, max): (u64, u64)) -> bool {
    records >= max || (records >= early && in_flight < IN_FLIGHT)
}

/// Epoch milliseconds now.
fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_early_while_a_transaction_is_free_and_full_otherwise() {
        let sizes = (10, 30);
        assert!(!batch_ready(9, 0, sizes), "below the early size");
        assert!(
            batch_ready(10, IN_FLIGHT - 1, sizes),
            "a transaction is free"
        );
        assert!(
            !batch_ready(10, IN_FLIGHT, sizes),
            "both busy: it keeps filling"
        );
        assert!(!batch_ready(29, IN_FLIGHT + 1, sizes));
        assert!(batch_ready(30, IN_FLIGHT + 1, sizes), "full");
    }
}
