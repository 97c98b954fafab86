//! The committer: writes the batches the writer hands it, in order, while the writer builds the
//! next one (decoding and aggregating overlap with PostgreSQL's work). Up to two batches are
//! written at once, each on its own connection: the later one copies its events while the
//! earlier finishes, and each takes its `turn` for the rest, so they end in order. Each batch's
//! dead letters and routed copies go out first, then one transaction; a failed write is retried
//! with the same batch, and the writer waits meanwhile (the hand-off channel holds one more).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::window::Watermark;
use logstream_core::Level;
use logstream_service::retry::Backoff;
use logstream_service::sync::lock;
use logstream_service::trace_context;
use tracing::Instrument;

use crate::messages::STORAGE_REJECTED;
use crate::metrics::Metrics;
use crate::pipeline::batch::Batch;
use crate::pipeline::handoff::{CommitterEnds, Job, Outcome, IN_FLIGHT};
use crate::shared::{Committed, Problem};
use crate::sink::dlq::DlqSink;
use crate::sink::routed::RouteSinks;
use crate::sink::store::{Store, StoreError, Written as Stored};
use crate::sink::turn::Turn;

pub struct Committer {
    pub store: Arc<Store>,
    pub dlq: DlqSink,
    pub sinks: RouteSinks,
    pub metrics: Metrics,
    pub committed: Committed,
    /// Set while a batch has failed to store for longer than `stuck_after` (readiness).
    pub stuck: Problem,
    pub stuck_after: Duration,
    /// Woken when a stored batch queued alert transitions (the publisher waits on it).
    pub alerts_queued: Arc<tokio::sync::Notify>,
}

impl Committer {
    /// Commits jobs in the order received, [`IN_FLIGHT`] at once, until the writer closes the
    /// channel; their outcomes go back in the same order.
    pub async fn run(self, handoff: CommitterEnds) {
        let CommitterEnds { mut jobs, outcomes } = handoff;
        let this = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut turn = Turn::first();
        loop {
            // A free slot first: the channel then holds the only batch waiting.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let Some(job) = jobs.recv().await else {
                break;
            };
            let (done, next) = Turn::new_end();
            let before = std::mem::replace(&mut turn, next);
            let (this, outcomes) = (this.clone(), outcomes.clone());
            tokio::spawn(async move {
                let outcome = this.commit_guarded(job, &before).await;
                before.wait().await;
                let _ = outcomes.send(outcome);
                done.finish();
                drop(slot);
            });
        }
        turn.wait().await;
    }

    /// [`Committer::commit`], and if it panics, an outcome all the same: a conflict on the
    /// batch's partitions, so the writer reads them again from what PostgreSQL holds (it would
    /// otherwise wait for this outcome forever).
    async fn commit_guarded(self: &Arc<Self>, job: Job, turn: &Turn) -> Outcome {
        let partitions: Vec<i32> = job.batch.next_offsets.keys().copied().collect();
        let (this, turn) = (self.clone(), turn.clone());
        match tokio::spawn(async move { this.commit(job, &turn).await }).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, ?partitions,
                    "writing a batch failed unexpectedly; its partitions are read again");
                Outcome::Conflict(partitions, None)
            }
        }
    }

    /// Writes the batch inside a span that continues the producers' traces: child of the first
    /// record's trace context, linked to the others.
    async fn commit(&self, job: Job, turn: &Turn) -> Outcome {
        let batch = &job.batch;
        let span = tracing::info_span!(
            "collector_store_batch",
            otel.kind = "consumer",
            records = batch.records,
            stored = batch.stored,
            dead_letters = batch.dead_letters.len(),
        );
        trace_context::continue_traces(&span, batch.traces.iter().map(String::as_str));
        let stored = self.write(&job, turn).instrument(span).await;
        let mut batch = job.batch;
        let partitions: Vec<i32> = batch.next_offsets.keys().copied().collect();
        batch.clear();
        if stored {
            Outcome::Stored(batch)
        } else {
            Outcome::Conflict(partitions, Some(batch))
        }
    }

    /// Writes the batch, retrying until it is stored (true) or found to belong to another
    /// member (false). When PostgreSQL refuses it for its data, the records responsible are
    /// found and dead-lettered, and the rest is stored.
    async fn write(&self, job: &Job, turn: &Turn) -> bool {
        match self
            .attempt(&job.batch, &job.expected, &job.watermark, false, turn)
            .await
        {
            Written::Stored => true,
            Written::Conflict => false,
            Written::Refused(error) => self.isolate(job, error, turn).await,
        }
    }

    /// Delivers the batch's dead letters and routed copies (unless `delivered`), then stores
    /// it; transient failures are retried with backoff (and, past `stuck_after`, reported).
    async fn attempt(
        &self,
        batch: &Batch,
        expected: &BTreeMap<i32, Option<i64>>,
        watermark: &Watermark,
        delivered: bool,
        turn: &Turn,
    ) -> Written {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut delivery = Delivery {
            dead_letters_sent: delivered || batch.dead_letters.is_empty(),
            routed_sent: delivered || batch.routed.is_empty(),
        };
        let mut failing_since: Option<Instant> = None;
        let written = loop {
            let timer = self.metrics.batch_duration.start_timer();
            let result = match self.deliver(batch, &mut delivery).await {
                Ok(()) => self.store.write(batch, expected, watermark, turn).await,
                Err(e) => Err(StoreError::Delivery(e)),
            };
            let e = match result {
                Ok(written) => {
                    timer.observe_duration();
                    self.count(batch, &written);
                    advance(&mut lock(&self.committed), batch);
                    if batch.alerts.iter().any(|a| a.change.transition.is_some()) {
                        self.alerts_queued.notify_one();
                    }
                    break Written::Stored;
                }
                Err(e) => e,
            };
            timer.stop_and_discard();
            if let StoreError::Conflict(conflicting) = &e {
                self.metrics.faults.offset_conflicts.inc();
                tracing::warn!(
                    ?conflicting,
                    partitions = ?batch.next_offsets.keys().collect::<Vec<_>>(),
                    "batch already stored by another member; discarding it and rewinding"
                );
                break Written::Conflict;
            }
            self.metrics.faults.store_errors.inc();
            // Only rows (and instance ids of sampled-out events) can be at fault: a batch
            // without any is retried like any other.
            let has_data = batch.stored > 0 || !batch.sampled_out.is_empty();
            if let Some(error) = e.data_error().filter(|_| has_data) {
                break Written::Refused(error);
            }
            self.metrics.faults.batch_retries.inc();
            let failing = failing_since.get_or_insert_with(Instant::now).elapsed();
            if failing > self.stuck_after {
                *lock(&self.stuck) = Some(format!(
                    "a batch of {} records has failed to store for {} s: {e}",
                    batch.records,
                    failing.as_secs()
                ));
            }
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, retry_in = ?delay, records = batch.records, "batch write failed; retrying");
            tokio::time::sleep(delay).await;
        };
        if failing_since.is_some() {
            *lock(&self.stuck) = None;
        }
        written
    }

    /// Sends the batch's dead letters and routed copies (acknowledged) before its commit, each
    /// kind once: after a failure, only what was not sent yet goes again.
    async fn deliver(&self, batch: &Batch, delivery: &mut Delivery) -> Result<(), String> {
        if !delivery.dead_letters_sent {
            self.dlq.send_all(&batch.dead_letters).await?;
            delivery.dead_letters_sent = true;
        }
        if !delivery.routed_sent {
            self.sinks.send_all(&batch.routed).await?;
            delivery.routed_sent = true;
        }
        Ok(())
    }

    /// After PostgreSQL refused `job`'s batch for its data: stores it again in parts, in
    /// order, halving every refused part until single records remain; those are dead-lettered
    /// (`storage_rejected`, with the server's message) and their offsets passed. Dead letters
    /// and routed copies of the batch went out before the first attempt and are not sent again.
    async fn isolate(&self, job: &Job, error: String, turn: &Turn) -> bool {
        self.metrics.faults.refused_batches.inc();
        let records = &job.batch.kept;
        tracing::warn!(%error, records = records.len(),
            "PostgreSQL refused the batch for its data; finding the records responsible");
        let mut expected = job.expected.clone();
        let mut watermark = job.watermark_before.clone();
        let mut parts: VecDeque<Range<usize>> = VecDeque::new();
        parts.push_back(0..records.len());
        while let Some(part) = parts.pop_front() {
            if part.is_empty() {
                continue;
            }
            let (mut batch, after) = job.batch.rebuilt(&records[part.clone()], &watermark);
            // The batch's alerts and detector snapshots go with its last part, which moves the
            // offsets to the batch's end.
            let last = parts.is_empty();
            if last {
                carry_detection(&job.batch, &mut batch);
            }
            match self.attempt(&batch, &expected, &after, true, turn).await {
                Written::Stored => {
                    advance(&mut expected, &batch);
                    watermark = after;
                }
                Written::Conflict => return false,
                Written::Refused(error) if part.len() == 1 => {
                    let record = records[part.start].0.clone();
                    tracing::warn!(partition = record.partition, offset = record.offset, %error,
                        "record refused by PostgreSQL; dead-lettered as {STORAGE_REJECTED}");
                    let mut rejected = job.batch.rejected(record, STORAGE_REJECTED, error);
                    if last {
                        carry_detection(&job.batch, &mut rejected);
                    }
                    match self
                        .attempt(&rejected, &expected, &watermark, false, turn)
                        .await
                    {
                        Written::Stored => advance(&mut expected, &rejected),
                        // A batch without rows is never refused (attempt retries it instead).
                        Written::Conflict | Written::Refused(_) => return false,
                    }
                }
                Written::Refused(_) => {
                    let middle = part.start + part.len() / 2;
                    parts.push_front(middle..part.end);
                    parts.push_front(part.start..middle);
                }
            }
        }
        true
    }

    /// The metrics of a stored batch.
    fn count(&self, batch: &Batch, written: &Stored) {
        self.metrics.batch_size.observe(batch.records as f64);
        let now_ms = chrono::Utc::now().timestamp_millis();
        for at in &batch.event_times {
            let latency_ms = (now_ms - at).max(0);
            self.metrics
                .event_latency
                .observe(latency_ms as f64 / 1000.0);
        }
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
        self.metrics.aggregates_written.inc_by(written.aggregates);
        for kind in &written.fired {
            self.metrics.alerts.raised.with_label_values(&[kind]).inc();
        }
        for (service, counts) in &batch.by_service_level {
            for (level, n) in Level::ALL.iter().zip(counts).filter(|(_, n)| **n > 0) {
                self.metrics.count_stored(service, level.as_str(), *n);
            }
        }
        for (instance, n) in &batch.sampled_out {
            self.metrics.count_sampled_out(instance, *n);
        }
        for letter in &batch.dead_letters {
            self.metrics.dlq.with_label_values(&[letter.reason]).inc();
        }
        for (what, n) in &batch.sanitized {
            self.metrics
                .faults
                .sanitized
                .with_label_values(&[what])
                .inc_by(*n);
        }
    }
}

/// What of a batch's side deliveries has gone out.
struct Delivery {
    dead_letters_sent: bool,
    routed_sent: bool,
}

/// What became of one attempt to store a batch.
enum Written {
    Stored,
    /// Another member had stored offsets of the batch's partitions.
    Conflict,
    /// PostgreSQL refused the batch for its data (the server's message).
    Refused(String),
}

/// Gives `part` the alert changes and detector snapshots of the whole `batch`.
fn carry_detection(batch: &Batch, part: &mut Batch) {
    part.alerts.clone_from(&batch.alerts);
    part.snapshots.clone_from(&batch.snapshots);
}

/// Takes a stored batch's offsets as the partitions' stored ones (what the next part must find,
/// what the status and lag report).
fn advance(expected: &mut BTreeMap<i32, Option<i64>>, stored: &Batch) {
    for (&partition, &next) in &stored.next_offsets {
        expected.insert(partition, Some(next));
    }
}
