//! The archiver: turns the records its source reads into segments (one open per partition),
//! and closes each by size or age: claim its span in PostgreSQL, upload its objects (retrying
//! until the bucket takes them), then move the partition's progress past it. While it retries,
//! its source pauses; PostgreSQL storage goes on.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logstream_core::archive::{self, Layout, Limits, Object, Provenance, Segment, Span};
use logstream_core::enrich::Enricher;
use logstream_core::format::lenient;
use logstream_core::route::Routing;
use logstream_core::{json, storable, window};
use logstream_service::retry::Backoff;
use logstream_service::shutdown::CancellationToken;
use logstream_service::sync::lock;
use tokio::sync::mpsc;

use crate::archive::progress::{Position, Progress};
use crate::archive::source::{Feedback, Item};
use crate::archive::store::Store;
use crate::messages::Record;
use crate::metrics::Sinks;
use crate::pipeline::batch::TimeBounds;

/// Which events an archive takes, and how it writes them.
pub struct Selection {
    pub routing: Arc<Routing>,
    /// Enriched as stored events are (None: no enrichment configured).
    pub enricher: Option<Mutex<Enricher>>,
    /// The archive's route (its index in LOGSTREAM_ROUTES).
    pub route: usize,
    pub bounds: TimeBounds,
    pub topic: String,
    pub prefix: String,
}

impl Selection {
    /// The archived line of `record`, with its event's time and service; None when it is not
    /// routed here (not an event, out of the accepted times, dropped, or not matching). Decided
    /// against the record's Kafka timestamp rather than the clock, so reading it again decides
    /// the same.
    fn line(&self, record: &Record) -> Option<(i64, String, Vec<u8>)> {
        let payload = record.payload.as_deref()?;
        let now_ms = record.timestamp_ms.unwrap_or_else(wall_clock_ms);
        let decoded = lenient::decode_record(
            record.content_type.as_deref(),
            payload,
            record.key.as_deref(),
            now_ms,
        )
        .ok()?;
        let mut event = decoded.event;
        let TimeBounds {
            max_past_ms,
            max_future_ms,
        } = self.bounds;
        if window::out_of_range(event.timestamp_ms, now_ms, max_past_ms, max_future_ms) {
            return None;
        }
        storable::event(&mut event);
        if let Some(enricher) = &self.enricher {
            lock(enricher).enrich(&mut event);
        }
        if self.routing.dropped_by(&event).is_some()
            || !self.routing.routes.get(self.route)?.rule.matches(&event)
        {
            return None;
        }
        let json = json::encode(&event).ok()?;
        let provenance = Provenance {
            topic: &self.topic,
            partition: record.partition,
            offset: record.offset,
            instance_id: record.instance_id.as_deref(),
            seq: record.seq,
        };
        let line = archive::line(&json, &provenance)?;
        Some((event.timestamp_ms, event.service, line))
    }
}

/// The partition of the largest open segment when the open segments together hold more than
/// `max_open_bytes`. Only segments free to close count (one re-read up to a claimed span must
/// close there), and only one holding lines is chosen.
fn over_budget(open: &HashMap<i32, Open>, max_open_bytes: usize) -> Option<i32> {
    let free = || open.iter().filter(|(_, o)| o.until.is_none());
    let held: usize = free().map(|(_, o)| o.segment.bytes()).sum();
    if held <= max_open_bytes {
        return None;
    }
    free()
        .filter(|(_, o)| o.segment.bytes() > 0)
        .max_by_key(|(_, o)| o.segment.bytes())
        .map(|(p, _)| *p)
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A partition's open segment.
struct Open {
    segment: Segment,
    /// A span claimed before and not completed: the segment must close exactly there.
    until: Option<i64>,
    /// Kafka timestamp of the segment's first record (for the lag).
    first_timestamp_ms: Option<i64>,
}

impl Open {
    fn at(layout: Layout, partition: i32, position: Option<Position>, first: i64) -> Self {
        Self {
            segment: Segment::new(layout, partition, position.map_or(first, |p| p.next_offset)),
            until: position.and_then(|p| p.pending_last),
            first_timestamp_ms: None,
        }
    }
}

pub struct Archiver {
    /// The destination as configured (`s3://bucket/prefix`): the `sink` label, the progress key.
    pub name: String,
    pub selection: Selection,
    pub store: Store,
    pub progress: Arc<Progress>,
    pub limits: Limits,
    pub metrics: Sinks,
    pub feedback: Feedback,
    pub shutdown: CancellationToken,
}

impl Archiver {
    /// The loop, until shutdown: take what the source sends, close segments when due.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Item>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        while let Err(e) = self.store.prepare().await {
            self.metrics
                .errors
                .with_label_values(&[&self.name, &e.reason()])
                .inc();
            tracing::warn!(sink = %self.name, error = %e, "cannot prepare the destination; retrying");
            if !backoff.wait(&self.shutdown).await {
                return;
            }
        }
        let mut open: HashMap<i32, Open> = HashMap::new();
        // Partitions assigned whose first record has not come yet (None: from the beginning).
        let mut waiting: HashMap<i32, Option<Position>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                item = rx.recv() => match item {
                    None => break,
                    Some(Item::Assigned(partitions)) => {
                        for (p, position) in partitions {
                            open.remove(&p);
                            waiting.insert(p, position);
                        }
                    }
                    Some(Item::Revoked(partitions)) => {
                        for p in partitions {
                            open.remove(&p);
                            waiting.remove(&p);
                        }
                    }
                    Some(Item::Record(record)) => {
                        self.take(record, &mut open, &mut waiting).await;
                    }
                },
                _ = tick.tick() => {
                    let now = wall_clock_ms();
                    let due: Vec<i32> = open
                        .iter()
                        .filter(|(_, o)| o.until.is_none() && o.segment.is_due(now, self.limits))
                        .map(|(p, _)| *p)
                        .collect();
                    for p in due {
                        self.close(p, &mut open).await;
                    }
                    self.show_lag(&open);
                }
            }
        }
        tracing::info!(sink = %self.name, "archive stopped; open segments are read again by the next owner");
    }

    /// Adds `record` to its partition's segment, closing the segment when it is due.
    async fn take(
        &self,
        record: Record,
        open: &mut HashMap<i32, Open>,
        waiting: &mut HashMap<i32, Option<Position>>,
    ) {
        let bytes = record.memory_bytes();
        self.feedback.in_flight.fetch_sub(bytes, Ordering::Relaxed);
        let p = record.partition;
        if let Some(position) = waiting.remove(&p) {
            open.insert(p, Open::at(self.store.layout(), p, position, record.offset));
        }
        let Some(o) = open.get_mut(&p) else {
            return; // not ours (any more)
        };
        if record.offset < o.segment.next_offset() {
            return; // read again after a rewind
        }
        if o.until.is_some_and(|until| record.offset > until) {
            // The claimed span ended at offsets Kafka does not deliver (transaction markers).
            self.close(p, open).await;
            if !open.contains_key(&p) {
                return; // fenced
            }
        }
        self.add(record, open);
        let Some(o) = open.get(&p) else { return };
        let due = match o.until {
            Some(until) => o.segment.next_offset() > until,
            None => o.segment.bytes() >= self.limits.max_bytes,
        };
        if due {
            self.close(p, open).await;
        } else if let Some(largest) = over_budget(open, self.limits.max_open_bytes) {
            self.close(largest, open).await;
        }
    }

    fn add(&self, record: Record, open: &mut HashMap<i32, Open>) {
        let Some(o) = open.get_mut(&record.partition) else {
            return;
        };
        let now = wall_clock_ms();
        if o.first_timestamp_ms.is_none() {
            o.first_timestamp_ms = Some(record.timestamp_ms.unwrap_or(now));
        }
        match self.selection.line(&record) {
            Some((event_ms, service, line)) => {
                o.segment
                    .push(record.offset, now, event_ms, &service, &line)
            }
            None => o.segment.skip(record.offset, now),
        }
    }

    /// Closes `partition`'s segment: claim, upload, complete. Gives up (the partition is read
    /// again from its stored position) when another member holds the partition's progress.
    async fn close(&self, partition: i32, open: &mut HashMap<i32, Open>) {
        let Some(o) = open.remove(&partition) else {
            return;
        };
        if o.segment.span().is_none() && o.until.is_none() {
            open.insert(partition, o); // nothing read yet: nothing to close
            return;
        }
        let mut segment = o.segment;
        if let Some(until) = o.until {
            // The span claimed before, whatever Kafka delivered of its end.
            segment.skip(until, wall_clock_ms());
        }
        let events = segment.events();
        let Some((span, objects, next)) =
            segment.close(&self.selection.prefix, &self.selection.topic)
        else {
            return;
        };
        let lag_from = o.first_timestamp_ms;
        if !self
            .retry("progress_store", || self.progress.claim(span))
            .await
            .unwrap_or(false)
        {
            return self.fenced(span);
        }
        if !self.upload(objects, partition, lag_from).await {
            return; // shutting down: the next owner closes the claimed span again
        }
        match self
            .retry("progress_store", || self.progress.complete(span))
            .await
        {
            Some(true) => {}
            Some(false) => return self.fenced(span),
            None => return,
        }
        self.metrics
            .sent
            .with_label_values(&[&self.name])
            .inc_by(events);
        tracing::debug!(sink = %self.name, ?span, events, "archived a segment");
        open.insert(
            partition,
            Open {
                segment: next,
                until: None,
                first_timestamp_ms: None,
            },
        );
    }

    /// Another member moved the partition's progress: forget the segment, read it again.
    fn fenced(&self, span: Span) {
        tracing::warn!(sink = %self.name, ?span, "archive: the partition's progress moved elsewhere; reading it again");
        self.metrics
            .errors
            .with_label_values(&[&self.name, "fenced"])
            .inc();
        let _ = self.feedback.rewinds.send(span.partition);
    }

    /// Compresses and uploads every object, retrying each until stored; false on shutdown.
    async fn upload(&self, objects: Vec<Object>, partition: i32, lag_from: Option<i64>) -> bool {
        for mut object in objects {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
            loop {
                let mut refused = Vec::new();
                let result = self
                    .store
                    .put(&mut object, &self.selection.topic, partition, &mut refused)
                    .await;
                for r in refused {
                    self.metrics
                        .errors
                        .with_label_values(&[&self.name, &format!("refused_{}", r.status)])
                        .inc();
                    tracing::error!(sink = %self.name, id = %r.id, status = r.status, reason = %r.reason,
                        "a document was refused for good (counted, not sent again)");
                }
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        self.metrics
                            .errors
                            .with_label_values(&[&self.name, &e.reason()])
                            .inc();
                        if let Some(from) = lag_from {
                            self.set_lag(from);
                        }
                        tracing::warn!(sink = %self.name, key = %object.key, error = %e, "write failed; retrying");
                        if !backoff.wait(&self.shutdown).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Runs a PostgreSQL step until it answers; None on shutdown.
    async fn retry<T, F: std::future::Future<Output = Result<T, sqlx::Error>>>(
        &self,
        reason: &str,
        mut attempt: impl FnMut() -> F,
    ) -> Option<T> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match attempt().await {
                Ok(value) => return Some(value),
                Err(e) => {
                    self.metrics
                        .errors
                        .with_label_values(&[&self.name, reason])
                        .inc();
                    tracing::warn!(sink = %self.name, error = %e, "archive: cannot record progress; retrying");
                    if !backoff.wait(&self.shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    fn set_lag(&self, from_ms: i64) {
        let seconds = (wall_clock_ms() - from_ms).max(0) as f64 / 1000.0;
        self.metrics
            .lag
            .with_label_values(&[&self.name])
            .set(seconds);
    }

    /// The lag: the age of the oldest record held in an open segment, 0 when none is held.
    fn show_lag(&self, open: &HashMap<i32, Open>) {
        match open.values().filter_map(|o| o.first_timestamp_ms).min() {
            Some(from) => self.set_lag(from),
            None => self.metrics.lag.with_label_values(&[&self.name]).set(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_with(bytes: usize, until: Option<i64>) -> Open {
        let mut o = Open::at(Layout::Archive, 0, None, 0);
        o.segment.push(0, 0, 0, "s", &vec![b'x'; bytes - 1]);
        o.until = until;
        o
    }

    #[test]
    fn the_largest_open_segment_closes_once_all_together_pass_the_budget() {
        let mut open = HashMap::from([(0, open_with(30, None)), (1, open_with(50, None))]);
        assert_eq!(over_budget(&open, 80), None);
        assert_eq!(over_budget(&open, 79), Some(1));
        // A segment that must close at its claimed span is left to close there, and does not
        // count: it cannot be closed early.
        open.insert(2, open_with(90, Some(5)));
        assert_eq!(over_budget(&open, 79), Some(1));
        assert_eq!(over_budget(&open, 80), None);
        // An empty segment is never chosen.
        let empty = HashMap::from([(0, Open::at(Layout::Archive, 0, None, 0))]);
        assert_eq!(over_budget(&empty, 0), None);
    }
}
