//! The file source's loop, on a thread of its own: find the files, read their new lines, join
//! them into events, and every commit interval send the events and the checkpoint in one Kafka
//! transaction. A transaction that fails is aborted and its lines are read again from the last
//! checkpoint, so Kafka holds every line once, whatever happens to Kafka or to this process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::ingest::multiline::{Assembled, Multiline, StartRule};
use logstream_core::ingest::text_line::{self, LineFormat};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, FileCheckpoint};
use super::discover::Patterns;
use super::fingerprint::{self, Fingerprint};
use super::tail::{file_id, FileId, Found, Tracked};
use super::transaction::{Target, Transactions, TxnError};
use super::Files;
use crate::accounting::{Accounting, Source};
use crate::publisher::Publisher;
use rdkafka::error::KafkaError;

/// How the source reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub patterns: Patterns,
    pub format: LineFormat,
    pub start: StartRule,
    pub max_line: usize,
    pub multiline_idle_ms: i64,
    pub poll: Duration,
    pub commit_interval: Duration,
    pub max_batch: usize,
    /// Files first seen with no checkpoint at all are read from their end, not their start.
    pub start_at_end: bool,
    /// The service of events that name none; `None`: the file's name up to its first dot.
    pub service: Option<String>,
    /// A file gone this long is dropped from the checkpoint.
    pub forget_after: Duration,
}

/// The transaction being built: its records are handed to the producer as they are read.
#[derive(Default)]
struct Batch {
    /// Whether the transaction is begun.
    open: bool,
    /// The seq of the first record (the one after the last committed).
    first_seq: u64,
    /// Records handed to the producer.
    sent: u64,
    /// Refused by the producer for their size.
    too_large: u64,
    rejected: BTreeMap<&'static str, u64>,
    /// Events per file fingerprint (for the status).
    events: HashMap<Fingerprint, u64>,
    /// The first error of the producer: the transaction is aborted.
    failed: Option<KafkaError>,
}

impl Batch {
    fn events(&self) -> usize {
        (self.sent + self.too_large + self.rejected.values().sum::<u64>()) as usize
    }
}

/// Where a complete event goes: the producer (in the open transaction) and the batch's counts.
struct Sink<'a> {
    producer: &'a Transactions,
    batch: &'a mut Batch,
    now_ms: i64,
}

impl Sink<'_> {
    /// One complete event of `tracked`: handed to the producer, or counted as rejected.
    fn take(
        &mut self,
        settings: &Settings,
        service: &str,
        tracked: &mut Tracked,
        event: Assembled,
    ) {
        tracked.taken_offset = event.end_offset;
        let batch = &mut *self.batch;
        *batch.events.entry(tracked.fingerprint).or_default() += 1;
        if event.text.len() > settings.max_line {
            *batch.rejected.entry("too_long").or_default() += 1;
            return;
        }
        let read = text_line::event_from_line(settings.format, &event.text, service, self.now_ms);
        let encoded = match read.map(|e| Publisher::encode(&e)) {
            Ok(Ok(encoded)) => encoded,
            Ok(Err(_)) => {
                *batch.rejected.entry("invalid_field").or_default() += 1;
                return;
            }
            Err(e) => {
                *batch.rejected.entry(e.reason).or_default() += 1;
                return;
            }
        };
        if batch.failed.is_some() {
            return;
        }
        if !batch.open {
            if let Err(e) = self.producer.begin() {
                batch.failed = Some(match e {
                    TxnError::Aborted(e) | TxnError::Fatal(e) => e,
                });
                return;
            }
            batch.open = true;
        }
        match self.producer.send(&encoded, batch.first_seq + batch.sent) {
            Ok(true) => batch.sent += 1,
            Ok(false) => batch.too_large += 1,
            Err(e) => batch.failed = Some(e),
        }
    }
}

pub struct FileSource {
    settings: Settings,
    target: Target,
    accounting: Arc<Accounting>,
    status: Arc<Files>,
    tracked: BTreeMap<Fingerprint, Tracked>,
    by_id: HashMap<FileId, Fingerprint>,
    /// Paths already warned about (unreadable), so a warning is logged once.
    warned: HashSet<PathBuf>,
    /// The last seq committed, and the last given.
    committed_seq: u64,
    seq: u64,
    /// Whether files were seen before (a checkpoint existed or a look was taken).
    started: bool,
    checkpoint_dirty: bool,
}

impl FileSource {
    pub fn new(
        settings: Settings,
        target: Target,
        accounting: Arc<Accounting>,
        status: Arc<Files>,
        checkpoint: Option<Checkpoint>,
    ) -> Self {
        let mut source = Self {
            settings,
            target,
            accounting,
            status,
            tracked: BTreeMap::new(),
            by_id: HashMap::new(),
            warned: HashSet::new(),
            committed_seq: 0,
            seq: 0,
            started: checkpoint.is_some(),
            checkpoint_dirty: false,
        };
        if let Some(checkpoint) = checkpoint {
            source.committed_seq = checkpoint.seq;
            source.seq = checkpoint.seq;
            for file in checkpoint.files {
                let Ok(fingerprint) = file.fingerprint.parse::<Fingerprint>() else {
                    continue;
                };
                let mut tracked = Tracked::new(
                    fingerprint,
                    PathBuf::from(file.path),
                    file.offset,
                    source.multiline(),
                );
                tracked.seen_unix = file.seen;
                source.tracked.insert(fingerprint, tracked);
            }
            tracing::info!(
                files = source.tracked.len(),
                seq = source.seq,
                "file source resumes from its checkpoint"
            );
        }
        source
    }

    fn multiline(&self) -> Multiline {
        Multiline::new(self.settings.start.clone(), self.settings.max_line)
    }

    /// Runs until `shutdown`: the events taken by then are committed before it returns.
    pub fn run(mut self, mut producer: Transactions, shutdown: CancellationToken) {
        let mut batch = self.fresh_batch();
        let mut last_commit = Instant::now();
        let mut last_look = Instant::now() - self.settings.poll;
        let mut failures = 0u32;
        loop {
            let stopping = shutdown.is_cancelled();
            if last_look.elapsed() >= self.settings.poll || stopping {
                self.look();
                last_look = Instant::now();
            }
            let mut sink = Sink {
                producer: &producer,
                batch: &mut batch,
                now_ms: chrono::Utc::now().timestamp_millis(),
            };
            let read_any = self.read(&mut sink);
            self.flush_idle(&mut sink);
            let due = last_commit.elapsed() >= self.settings.commit_interval
                || batch.events() >= self.settings.max_batch;
            if (due || stopping) && (batch.events() > 0 || self.checkpoint_dirty) {
                match self.commit(&producer, &mut batch) {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, failures, "file source: transaction not committed; reading again from the last checkpoint");
                        self.status.metrics.aborted.inc();
                        self.rewind(&mut batch);
                        if let TxnError::Fatal(_) = e {
                            match Transactions::open(&self.target) {
                                Ok(fresh) => producer = fresh,
                                Err(e) => {
                                    tracing::warn!(error = %e, "file source: cannot make a new transactional producer")
                                }
                            }
                        }
                        if stopping {
                            tracing::warn!("file source stops with its last lines uncommitted; they are read again at the next start");
                            return;
                        }
                        let wait = Duration::from_millis(100 << failures.min(8));
                        std::thread::sleep(wait.min(Duration::from_secs(10)));
                    }
                }
                last_commit = Instant::now();
            }
            if stopping {
                tracing::info!(
                    seq = self.committed_seq,
                    "file source stopped; every line read is committed"
                );
                return;
            }
            if !read_any {
                std::thread::sleep(self.settings.poll.min(Duration::from_millis(50)));
            }
        }
    }

    /// Finds the files the patterns name: known ones by inode (renamed or not), others by
    /// fingerprint (a copy of a known file continues it; anything else is new).
    fn look(&mut self) {
        let (paths, errors) = self.settings.patterns.expand();
        for error in errors {
            self.status.metrics.warning("unreadable_path");
            tracing::warn!(%error, "file source cannot look into a path");
        }
        let first_look = !self.started;
        self.started = true;
        for path in paths {
            self.look_at(path, first_look);
        }
        self.check_rewritten();
        self.forget_old();
    }

    /// An open file whose first line changed was truncated and written again faster than it
    /// was looked at (so its size alone does not tell): handled as truncated.
    fn check_rewritten(&mut self) {
        let mut rewritten = Vec::new();
        for (fingerprint, tracked) in &mut self.tracked {
            if let Some(file) = tracked.file.as_mut() {
                if let Ok(Some(now)) = fingerprint::of_file(file) {
                    if now != *fingerprint {
                        rewritten
                            .push((*fingerprint, file.metadata().map(|m| m.len()).unwrap_or(0)));
                    }
                }
            }
        }
        for (fingerprint, size) in rewritten {
            self.truncated(fingerprint, size);
        }
    }

    fn look_at(&mut self, path: PathBuf, first_look: bool) {
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(_) => return,
        };
        let id = file_id(&meta);
        if let Some(tracked) = self.by_id.get(&id).and_then(|fp| self.tracked.get_mut(fp)) {
            if tracked.path != path {
                tracing::info!(from = %tracked.path.display(), to = %path.display(), "file renamed; reading on");
                tracked.path = path;
            }
            tracked.seen = Instant::now();
            tracked.seen_unix = chrono::Utc::now().timestamp();
            return;
        }
        let mut handle = match std::fs::File::open(&path) {
            Ok(handle) => handle,
            Err(e) => {
                if self.warned.insert(path.clone()) {
                    self.status.metrics.warning("unreadable_file");
                    tracing::warn!(path = %path.display(), error = %e, "file source cannot open a file; it is skipped until it can be read");
                }
                return;
            }
        };
        let fingerprint = match fingerprint::of_file(&mut handle) {
            Ok(Some(fingerprint)) => fingerprint,
            // Its first line is not complete yet.
            Ok(None) => return,
            Err(e) => {
                if self.warned.insert(path.clone()) {
                    self.status.metrics.warning("unreadable_file");
                    tracing::warn!(path = %path.display(), error = %e, "file source cannot read a file");
                }
                return;
            }
        };
        self.warned.remove(&path);
        let size = meta.len();
        if let Some(tracked) = self.tracked.get_mut(&fingerprint) {
            let live = tracked.file.is_some();
            if live || tracked.truncated_id == Some(id) && size < tracked.read_offset {
                // A copy of a file still read where it is, or a file with the same first line:
                // not read while the other is.
                return;
            }
            if size < tracked.read_offset {
                tracked.warn(format!(
                    "{} has the fingerprint of a file read up to byte {}, but only {size} bytes: read from its start",
                    path.display(),
                    tracked.read_offset
                ));
                tracked.read_offset = 0;
                tracked.taken_offset = 0;
            }
            tracing::info!(path = %path.display(), fingerprint = %fingerprint, offset = tracked.read_offset, "file source reads on from its checkpoint");
            tracked.truncated_id = None;
            tracked.attach(handle, id, path);
            self.by_id.insert(id, fingerprint);
            return;
        }
        let offset = if first_look && self.settings.start_at_end {
            size
        } else {
            0
        };
        tracing::info!(path = %path.display(), fingerprint = %fingerprint, offset, "file source tails a new file");
        let mut tracked = Tracked::new(fingerprint, path.clone(), 0, self.multiline());
        // Skipped bytes (start at the end) are as good as committed.
        tracked.read_offset = offset;
        tracked.taken_offset = offset;
        tracked.attach(handle, id, path);
        self.tracked.insert(fingerprint, tracked);
        self.by_id.insert(id, fingerprint);
        self.checkpoint_dirty = true;
    }

    /// Drops from the checkpoint files gone for longer than the setting.
    fn forget_old(&mut self) {
        let horizon = chrono::Utc::now().timestamp() - self.settings.forget_after.as_secs() as i64;
        let before = self.tracked.len();
        self.tracked
            .retain(|_, t| t.file.is_some() || t.seen_unix >= horizon);
        if self.tracked.len() != before {
            self.checkpoint_dirty = true;
        }
    }

    /// Reads every open file's new lines into events; whether anything was read.
    fn read(&mut self, sink: &mut Sink<'_>) -> bool {
        let mut read_any = false;
        let now_ms = sink.now_ms;
        let fingerprints: Vec<Fingerprint> = self.tracked.keys().copied().collect();
        for fingerprint in fingerprints {
            if sink.batch.events() >= self.settings.max_batch {
                break;
            }
            let Some(tracked) = self.tracked.get_mut(&fingerprint) else {
                continue;
            };
            match tracked.read_lines(self.settings.max_line) {
                Ok(Found::Lines(lines)) => {
                    read_any = true;
                    let mut done = Vec::new();
                    for (line, end) in lines {
                        if line.iter().all(u8::is_ascii_whitespace) {
                            if !tracked.multiline.is_pending() {
                                tracked.taken_offset = end;
                            }
                            continue;
                        }
                        if !tracked.warned_utf8 && std::str::from_utf8(&line).is_err() {
                            tracked.warned_utf8 = true;
                            self.status.metrics.warning("not_utf8");
                            tracked.warn(
                                "lines that are not UTF-8: invalid bytes are replaced (U+FFFD)"
                                    .to_owned(),
                            );
                        }
                        done.extend(tracked.multiline.push(&line, end, now_ms));
                    }
                    let service = service_of(&self.settings, &tracked.path);
                    for event in done {
                        sink.take(&self.settings, &service, tracked, event);
                    }
                }
                Ok(Found::AtEnd) => self.close_if_gone(fingerprint, sink),
                Ok(Found::Truncated { size }) => self.truncated(fingerprint, size),
                Err(e) => {
                    self.status.metrics.warning("read_error");
                    tracked.warn(format!(
                        "read failed: {e}; closed, found again at the next look"
                    ));
                    if let Some(id) = tracked.id {
                        self.by_id.remove(&id);
                    }
                    tracked.file = None;
                    tracked.id = None;
                    tracked.forget_unread();
                }
            }
        }
        read_any
    }

    /// A file read to its end that the patterns no longer name (deleted, or renamed out of
    /// them) for a while is closed: its last event is complete.
    fn close_if_gone(&mut self, fingerprint: Fingerprint, sink: &mut Sink<'_>) {
        let Some(tracked) = self.tracked.get_mut(&fingerprint) else {
            return;
        };
        if tracked.file.is_none() || tracked.seen.elapsed() < Duration::from_secs(5) {
            return;
        }
        tracing::info!(path = %tracked.path.display(), "file gone and read to its end; closed");
        if let Some(id) = tracked.id {
            self.by_id.remove(&id);
        }
        let service = service_of(&self.settings, &tracked.path);
        if let Some(event) = tracked.finish() {
            sink.take(&self.settings, &service, tracked, event);
        }
        self.checkpoint_dirty = true;
    }

    /// The file got shorter than what was read: truncated in place. Its content so far goes on
    /// in a copy, if one appears (copytruncate); the truncated file is a new file from byte 0.
    fn truncated(&mut self, fingerprint: Fingerprint, size: u64) {
        let Some(tracked) = self.tracked.get_mut(&fingerprint) else {
            return;
        };
        self.status.metrics.warning("truncated");
        tracked.warn(format!(
            "truncated to {size} bytes after {} were read; reading on in a copy with the same first line if one appears (copytruncate), and from its start otherwise",
            tracked.read_offset
        ));
        if let Some(id) = tracked.id {
            self.by_id.remove(&id);
            tracked.truncated_id = Some(id);
        }
        tracked.file = None;
        tracked.id = None;
        // The lines read and not yet an event are read again from the copy.
        tracked.forget_unread();
    }

    /// Events whose next line has not come for the idle time are complete.
    fn flush_idle(&mut self, sink: &mut Sink<'_>) {
        let idle = self.settings.multiline_idle_ms;
        for tracked in self.tracked.values_mut() {
            if let Some(event) = tracked.multiline.flush_idle(sink.now_ms, idle) {
                let service = service_of(&self.settings, &tracked.path);
                sink.take(&self.settings, &service, tracked, event);
            }
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            seq: self.seq,
            files: self
                .tracked
                .values()
                .map(|t| FileCheckpoint {
                    fingerprint: t.fingerprint.to_string(),
                    offset: t.taken_offset,
                    path: t.path.display().to_string(),
                    seen: t.seen_unix,
                })
                .collect(),
        }
    }

    fn fresh_batch(&self) -> Batch {
        Batch {
            first_seq: self.committed_seq + 1,
            ..Batch::default()
        }
    }

    /// Adds the checkpoint to the open transaction (its records are in the producer's hands
    /// already) and commits it.
    fn commit(&mut self, producer: &Transactions, batch: &mut Batch) -> Result<(), TxnError> {
        if let Some(e) = batch.failed.take() {
            return Err(if batch.open {
                producer.abort(e)
            } else {
                TxnError::Aborted(e)
            });
        }
        if !batch.open {
            // Only the checkpoint changed (a file found or forgotten).
            producer.begin()?;
            batch.open = true;
        }
        self.seq = self.committed_seq + batch.sent;
        let checkpoint = serde_json::to_vec(&self.checkpoint()).unwrap_or_default();
        let timer = self.status.metrics.commit_seconds.start_timer();
        producer.commit(&checkpoint)?;
        timer.observe_duration();
        let source = Source::File;
        let rejected: u64 = batch.rejected.values().sum();
        self.accounting
            .received(source, batch.sent + batch.too_large + rejected);
        for (reason, n) in &batch.rejected {
            self.accounting.rejected_n(source, reason, *n);
        }
        if batch.too_large > 0 {
            self.accounting
                .rejected_n(source, "too_large_for_kafka", batch.too_large);
        }
        self.accounting.committed(source, batch.sent);
        self.status.metrics.committed.inc();
        for tracked in self.tracked.values_mut() {
            tracked.committed_offset = tracked.taken_offset;
            tracked.events += batch.events.get(&tracked.fingerprint).copied().unwrap_or(0);
        }
        self.committed_seq = self.seq;
        self.checkpoint_dirty = false;
        *batch = self.fresh_batch();
        self.publish_status();
        Ok(())
    }

    /// After an aborted transaction: every file goes back to its last committed offset.
    fn rewind(&mut self, batch: &mut Batch) {
        self.seq = self.committed_seq;
        *batch = self.fresh_batch();
        for tracked in self.tracked.values_mut() {
            tracked.rewind();
        }
    }

    fn publish_status(&self) {
        let files = self
            .tracked
            .values()
            .map(|t| super::FileStatus {
                path: t.path.display().to_string(),
                fingerprint: t.fingerprint.to_string(),
                open: t.file.is_some(),
                size: t.size,
                committed_offset: t.committed_offset,
                events: t.events,
                last_warning: t.last_warning.clone(),
            })
            .collect();
        let lag: u64 = self
            .tracked
            .values()
            .filter(|t| t.file.is_some())
            .map(|t| t.size.saturating_sub(t.committed_offset))
            .sum();
        self.status.metrics.lag_bytes.set(lag as i64);
        self.status.metrics.files.set(self.tracked.len() as i64);
        self.status.set(files);
    }
}

/// The default service of a file's events: `service`, or the file's name up to its first dot.
fn service_of(settings: &Settings, path: &Path) -> String {
    if let Some(service) = &settings.service {
        return service.clone();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or("");
    if stem.is_empty() {
        "files".to_owned()
    } else {
        stem.to_owned()
    }
}
