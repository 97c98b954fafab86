//! The file source's reader, on a thread of its own: find the files, read their new lines, join
//! them into events, and every commit interval hand the batch and the checkpoint that ends it to
//! the [`committer`](super::committer) (one Kafka transaction each), reading on meanwhile. A
//! batch that fails is aborted and every file goes back to the last committed checkpoint, so
//! Kafka holds every line once, whatever happens to Kafka or to this process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_core::ingest::multiline::{Assembled, Multiline, StartRule};
use logstream_core::ingest::text_line::{self, LineFormat};
use logstream_core::ingest::LineError;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, FileCheckpoint};
use super::committer::{self, Handoff, Outcome};
use super::discover::Patterns;
use super::fingerprint::{self, Fingerprint};
use super::tail::{file_id, FileId, Found, Tracked};
use super::transaction::{Target, Transactions};
use super::Files;
use crate::accounting::{Accounting, Source};
use crate::publisher::{Encoded, Publisher};

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
    pub max_batch_bytes: usize,
    /// Files first seen with no checkpoint at all are read from their end, not their start.
    pub start_at_end: bool,
    /// The service of events that name none; `None`: the file's name up to its first dot.
    pub service: Option<String>,
    /// A file gone this long is dropped from the checkpoint.
    pub forget_after: Duration,
}

/// The batch being read: its records, and its events' counts.
#[derive(Default)]
struct Batch {
    records: Vec<Encoded>,
    /// The records' payload bytes.
    bytes: usize,
    rejected: BTreeMap<&'static str, u64>,
    /// Events per file fingerprint (for the status).
    events: HashMap<Fingerprint, u64>,
}

impl Batch {
    fn events(&self) -> usize {
        self.records.len() + self.rejected.values().sum::<u64>() as usize
    }

    fn full(&self, settings: &Settings) -> bool {
        self.events() >= settings.max_batch || self.bytes >= settings.max_batch_bytes
    }
}

/// A batch handed to the committer, waiting for its outcome.
struct Pending {
    /// The last seq of its records.
    seq_after: u64,
    /// Where each file's committed events end once it commits.
    offsets: Vec<(Fingerprint, u64)>,
    records: u64,
    rejected: BTreeMap<&'static str, u64>,
    events: HashMap<Fingerprint, u64>,
}

/// One complete event of `tracked` into the batch: encoded, or counted as rejected.
fn take(
    settings: &Settings,
    batch: &mut Batch,
    tracked: &mut Tracked,
    event: Assembled,
    now_ms: i64,
) {
    tracked.taken_offset = event.end_offset;
    *batch.events.entry(tracked.fingerprint).or_default() += 1;
    if event.text.len() > settings.max_line {
        *batch.rejected.entry("too_long").or_default() += 1;
        return;
    }
    let service = tracked
        .service
        .get_or_insert_with(|| service_of(settings, &tracked.path));
    match encode(settings.format, event.text, service, now_ms) {
        Ok(encoded) => {
            batch.bytes += encoded.payload.len();
            batch.records.push(encoded);
        }
        Err(reason) => *batch.rejected.entry(reason).or_default() += 1,
    }
}

/// The record an event becomes: a syslog line the collector reads as this source reads it goes
/// as it is (`text/syslog-*`, as the syslog listeners send them: less to encode and to send);
/// anything else as the event's JSON.
fn encode(
    format: LineFormat,
    text: Vec<u8>,
    service: &str,
    now_ms: i64,
) -> Result<Encoded, &'static str> {
    let plain_text = format == LineFormat::Auto
        && !text.contains(&b'\n')
        && !text.trim_ascii_start().starts_with(b"{");
    let event = if plain_text {
        match Publisher::line_as_is(text, service, now_ms).map_err(|e| LineError::from(e).reason)? {
            Ok(as_is) => return Ok(as_is),
            Err(event) => event,
        }
    } else {
        text_line::event_from_line(format, &text, service, now_ms).map_err(|e| e.reason)?
    };
    Publisher::encode(&event).map_err(|_| "invalid_field")
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
    warned_paths: HashSet<String>,
    /// The last seq committed, and the next to give.
    committed_seq: u64,
    next_seq: u64,
    batch: Batch,
    /// Batches handed over, in order, waiting for their outcomes.
    pending: VecDeque<Pending>,
    /// Goes up after each failed batch: outcomes of older ones are no longer waited for.
    epoch: u64,
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
            warned_paths: HashSet::new(),
            committed_seq: 0,
            next_seq: 1,
            batch: Batch::default(),
            pending: VecDeque::new(),
            epoch: 0,
            started: checkpoint.is_some(),
            checkpoint_dirty: false,
        };
        if let Some(checkpoint) = checkpoint {
            source.committed_seq = checkpoint.seq;
            source.next_seq = checkpoint.seq + 1;
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
                seq = source.committed_seq,
                "file source resumes from its checkpoint"
            );
        }
        source
    }

    fn multiline(&self) -> Multiline {
        Multiline::new(self.settings.start.clone(), self.settings.max_line)
    }

    /// Runs until `shutdown`: the events taken by then are committed before it returns.
    pub fn run(mut self, producer: Transactions, shutdown: CancellationToken) {
        let committer = match committer::spawn(
            producer,
            self.target.clone(),
            self.status.metrics.commit_seconds.clone(),
            shutdown.clone(),
        ) {
            Ok(committer) => committer,
            Err(e) => {
                tracing::error!(error = %e, "file source: cannot start its committer thread");
                return;
            }
        };
        let mut last_handoff = Instant::now();
        let mut last_look = Instant::now()
            .checked_sub(self.settings.poll)
            .unwrap_or_else(Instant::now);
        loop {
            let stopping = shutdown.is_cancelled();
            if last_look.elapsed() >= self.settings.poll || stopping {
                self.look();
                last_look = Instant::now();
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let read_any = self.read(now_ms);
            self.flush_idle(now_ms);
            while let Ok(outcome) = committer.outcomes.try_recv() {
                self.apply(outcome);
            }
            let full = self.batch.full(&self.settings);
            let due = last_handoff.elapsed() >= self.settings.commit_interval || full;
            if (due || stopping) && (self.batch.events() > 0 || self.checkpoint_dirty) {
                // A full batch (or the last) waits for the committer; another one grows on.
                if self.hand_off(&committer.handoffs, full || stopping) {
                    last_handoff = Instant::now();
                }
            }
            if stopping {
                break;
            }
            if !read_any {
                std::thread::sleep(self.settings.poll.min(Duration::from_millis(50)));
            }
        }
        drop(committer.handoffs);
        for outcome in committer.outcomes.iter() {
            self.apply(outcome);
        }
        let _ = committer.thread.join();
        if self.pending.is_empty() && self.batch.events() == 0 {
            tracing::info!(
                seq = self.committed_seq,
                "file source stopped; every line read is committed"
            );
        } else {
            tracing::warn!(seq = self.committed_seq, "file source stopped with lines not committed; they are read again at the next start");
        }
    }

    /// Hands the batch and the checkpoint that ends it to the committer; false when it could
    /// not take it now (`wait` false and one waiting already) or at all (it stopped).
    fn hand_off(&mut self, handoffs: &SyncSender<Handoff>, wait: bool) -> bool {
        let records = self.batch.records.len() as u64;
        let seq_after = self.next_seq + records - 1;
        let checkpoint = Checkpoint {
            seq: seq_after,
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
        };
        let handoff = Handoff {
            epoch: self.epoch,
            first_seq: self.next_seq,
            records: std::mem::take(&mut self.batch.records),
            checkpoint: serde_json::to_vec(&checkpoint).unwrap_or_default(),
        };
        let sent = if wait {
            handoffs
                .send(handoff)
                .map_err(|e| TrySendError::Disconnected(e.0))
        } else {
            handoffs.try_send(handoff)
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => {
                self.batch.records = back.records;
                return false;
            }
        }
        self.batch.bytes = 0;
        self.pending.push_back(Pending {
            seq_after,
            offsets: self
                .tracked
                .values()
                .map(|t| (t.fingerprint, t.taken_offset))
                .collect(),
            records,
            rejected: std::mem::take(&mut self.batch.rejected),
            events: std::mem::take(&mut self.batch.events),
        });
        self.next_seq = seq_after + 1;
        self.checkpoint_dirty = false;
        true
    }

    /// A batch's outcome: committed (counted, its offsets committed), or failed (every file
    /// goes back to the last committed checkpoint, and what was read after it is read again).
    fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Committed { epoch, too_large } if epoch == self.epoch => {
                let Some(done) = self.pending.pop_front() else {
                    return;
                };
                let source = Source::File;
                let rejected: u64 = done.rejected.values().sum();
                self.accounting.received(source, done.records + rejected);
                for (reason, n) in &done.rejected {
                    self.accounting.rejected_n(source, reason, *n);
                }
                if too_large > 0 {
                    self.accounting
                        .rejected_n(source, "too_large_for_kafka", too_large);
                }
                self.accounting.committed(source, done.records - too_large);
                self.status.metrics.committed.inc();
                for (fingerprint, offset) in done.offsets {
                    if let Some(tracked) = self.tracked.get_mut(&fingerprint) {
                        tracked.committed_offset = offset;
                        tracked.events += done.events.get(&fingerprint).copied().unwrap_or(0);
                    }
                }
                self.committed_seq = done.seq_after;
                self.publish_status();
            }
            Outcome::Failed {
                epoch,
                error,
                checkpoint,
            } if epoch == self.epoch => {
                tracing::warn!(%error, "file source: transaction not committed; reading again from the last checkpoint");
                if let Some(checkpoint) = checkpoint {
                    self.committed_as_in(checkpoint);
                }
                self.status.metrics.aborted.inc();
                self.epoch += 1;
                self.pending.clear();
                self.batch = Batch::default();
                self.next_seq = self.committed_seq + 1;
                self.checkpoint_dirty = true;
                for tracked in self.tracked.values_mut() {
                    tracked.rewind();
                }
            }
            // Outcomes of batches given up on after a failure.
            _ => {}
        }
    }

    /// Takes the committed position from the checkpoint read back from Kafka (after a commit
    /// whose outcome was not known): batches it holds beyond what was known are counted sent.
    fn committed_as_in(&mut self, checkpoint: Checkpoint) {
        if checkpoint.seq < self.committed_seq {
            tracing::warn!(
                kafka = checkpoint.seq,
                known = self.committed_seq,
                "file source: the checkpoint in Kafka is behind the last commit known; kept the known one"
            );
            return;
        }
        if checkpoint.seq > self.committed_seq {
            let more = checkpoint.seq - self.committed_seq;
            self.accounting.received(Source::File, more);
            self.accounting.committed(Source::File, more);
            self.pending.clear();
        }
        self.committed_seq = checkpoint.seq;
        for file in checkpoint.files {
            let Ok(fingerprint) = file.fingerprint.parse::<Fingerprint>() else {
                continue;
            };
            if let Some(tracked) = self.tracked.get_mut(&fingerprint) {
                tracked.committed_offset = file.offset;
            }
        }
    }

    /// Finds the files the patterns name: known ones by inode (renamed or not), others by
    /// fingerprint (a copy of a known file continues it; anything else is new).
    fn look(&mut self) {
        let (paths, errors) = self.settings.patterns.expand();
        for error in errors {
            if self.warned_paths.insert(error.clone()) {
                self.status.metrics.warning("unreadable_path");
                tracing::warn!(%error, "file source cannot look into a path");
            }
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
                tracked.set_path(path);
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
                // A copy made before the last lines read from the original (copytruncate), or a
                // file rewritten with the same first line: nothing in it is new.
                if self.warned.insert(path.clone()) {
                    tracked.warn(format!(
                        "{} has the fingerprint of a file read up to byte {}, but only {size} bytes: taken as a copy with nothing new, not read",
                        path.display(),
                        tracked.read_offset
                    ));
                }
                return;
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
        // Skipped bytes (start at the end) are as good as committed.
        let mut tracked = Tracked::new(fingerprint, path.clone(), offset, self.multiline());
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
    fn read(&mut self, now_ms: i64) -> bool {
        let mut read_any = false;
        let fingerprints: Vec<Fingerprint> = self.tracked.keys().copied().collect();
        for fingerprint in fingerprints {
            if self.batch.full(&self.settings) {
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
                    for event in done {
                        take(&self.settings, &mut self.batch, tracked, event, now_ms);
                    }
                }
                Ok(Found::AtEnd) => self.close_if_gone(fingerprint, now_ms),
                Ok(Found::Truncated { size }) => self.truncated(fingerprint, size),
                Err(e) => {
                    self.status.metrics.warning("read_error");
                    tracked.warn(format!(
                        "read failed: {e}; closed, found again at the next look"
                    ));
                    if let Some(id) = tracked.detach() {
                        self.by_id.remove(&id);
                    }
                    tracked.forget_unread();
                }
            }
        }
        read_any
    }

    /// A file read to its end that the patterns no longer name (deleted, or renamed out of
    /// them) for a while ended for good: its last line (even without a newline) and its last
    /// event are complete. It is closed once they are committed (until then a failed
    /// transaction reads them again from its handle).
    fn close_if_gone(&mut self, fingerprint: Fingerprint, now_ms: i64) {
        let Some(tracked) = self.tracked.get_mut(&fingerprint) else {
            return;
        };
        if tracked.file.is_none() || tracked.seen.elapsed() < Duration::from_secs(5) {
            return;
        }
        let mut last = Vec::new();
        if let Some((line, end)) = tracked.last_partial_line(self.settings.max_line) {
            last.extend(tracked.multiline.push(&line, end, now_ms));
        }
        last.extend(tracked.multiline.flush());
        for event in last {
            take(&self.settings, &mut self.batch, tracked, event, now_ms);
        }
        if tracked.committed_offset < tracked.read_offset {
            return;
        }
        tracing::info!(path = %tracked.path.display(), "file gone, read to its end and committed; closed");
        if let Some(id) = tracked.detach() {
            self.by_id.remove(&id);
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
        if let Some(id) = tracked.detach() {
            self.by_id.remove(&id);
            tracked.truncated_id = Some(id);
        }
        // The lines read and not yet an event are read again from the copy.
        tracked.forget_unread();
    }

    /// Events whose next line has not come for the idle time are complete.
    fn flush_idle(&mut self, now_ms: i64) {
        let idle = self.settings.multiline_idle_ms;
        for tracked in self.tracked.values_mut() {
            if let Some(event) = tracked.multiline.flush_idle(now_ms, idle) {
                take(&self.settings, &mut self.batch, tracked, event, now_ms);
            }
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
