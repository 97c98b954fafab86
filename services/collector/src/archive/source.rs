//! An archive's Kafka source: a member of the archive's own consumer group, on its own thread,
//! so a slow or unreachable bucket holds back only the archive, never PostgreSQL storage. Each
//! assigned partition starts where the archive's progress in PostgreSQL stands. Records go to
//! the archiver through a channel whose bytes in flight are bounded
//! (`LOGSTREAM_ARCHIVE_BUFFER_MB`): past the bound the thread pauses its partitions, and keeps
//! polling so it stays in the group, until the archiver has taken enough.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logstream_service::shutdown::CancellationToken;
use logstream_service::sync::lock;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::mpsc;

use crate::archive::progress::{Position, Progress};
use crate::consume::consumer::{member_config, to_record, LastHeaders};
use crate::consume::rebalance::{self, OnRebalance};
use crate::messages::Record;

/// What the source tells the archiver, in order.
pub enum Item {
    /// Partitions now read from their stored position (None: never archived, from the start).
    Assigned(Vec<(i32, Option<Position>)>),
    /// Partitions taken away: forget their open segments.
    Revoked(Vec<i32>),
    Record(Record),
}

/// Bytes of records (their memory) sent to the archiver and not yet taken by it.
pub type InFlight = Arc<AtomicUsize>;

/// The rebalance side of the member (runs inside `poll`).
pub struct Context {
    tx: mpsc::UnboundedSender<Item>,
    progress: Arc<Progress>,
    runtime: tokio::runtime::Handle,
    topic: String,
    shutdown: CancellationToken,
    /// Partitions revoked since the loop last looked: their held records are dropped.
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        rebalance::handle(consumer, err, tpl, self);
    }
}

impl OnRebalance for Context {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn assigned(&self, tpl: &mut TopicPartitionList) {
        let partitions = rebalance::partitions_of(tpl, &self.topic);
        let stored = self.positions(&partitions);
        for &(p, position) in &stored {
            let offset = position.map_or(Offset::Beginning, |s| Offset::Offset(s.next_offset));
            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                tracing::error!(partition = p, error = %e, "archive: cannot set start offset");
            }
        }
        tracing::info!(?stored, "archive: partitions assigned");
        let _ = self.tx.send(Item::Assigned(stored));
    }

    fn revoked(&self, partitions: Vec<i32>, lost: bool) {
        tracing::info!(?partitions, lost, "archive: partitions revoked");
        lock(&self.revoked).extend_from_slice(&partitions);
        let _ = self.tx.send(Item::Revoked(partitions));
    }
}

impl Context {
    /// The stored positions of `partitions`, retrying while PostgreSQL is unreachable.
    fn positions(&self, partitions: &[i32]) -> Vec<(i32, Option<Position>)> {
        let stored =
            rebalance::block_on_retrying(&self.runtime, &self.shutdown, "archive progress", || {
                self.progress.load(partitions)
            })
            .unwrap_or_default();
        partitions
            .iter()
            .map(|p| (*p, stored.get(p).copied()))
            .collect()
    }
}

/// Everything the member is made of.
pub struct SourceSettings {
    pub brokers: String,
    pub group: String,
    pub topic: String,
    pub assignment_strategy: String,
    pub session_timeout_ms: u64,
    /// Most record bytes in flight to the archiver before the partitions pause.
    pub buffer_bytes: usize,
}

pub struct Source {
    consumer: BaseConsumer<Context>,
    tx: mpsc::UnboundedSender<Item>,
    in_flight: InFlight,
    /// Partitions whose claim was fenced: read again from their stored position.
    rewinds: std::sync::mpsc::Receiver<i32>,
    settings: SourceSettings,
    shutdown: CancellationToken,
}

/// What the archiver hands back to its source.
pub struct Feedback {
    pub in_flight: InFlight,
    pub rewinds: std::sync::mpsc::Sender<i32>,
}

impl Source {
    /// Creates and subscribes the member; fails naming the setting.
    pub fn join(
        settings: SourceSettings,
        progress: Arc<Progress>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Self, mpsc::UnboundedReceiver<Item>, Feedback)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let context = Context {
            tx: tx.clone(),
            progress,
            runtime: tokio::runtime::Handle::current(),
            topic: settings.topic.clone(),
            shutdown: shutdown.clone(),
            revoked: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<Context> = member_config(
            &settings.brokers,
            "logstream-collector-archive",
            &settings.group,
            &settings.assignment_strategy,
            settings.session_timeout_ms,
        )
        .set("fetch.queue.backoff.ms", "10")
        // librdkafka's read-ahead (64 MiB by default) on top of the archive's own buffer.
        .set("queued.max.messages.kbytes", "16384")
        .create_with_context(context)
        .map_err(|e| {
            anyhow::anyhow!("cannot create the archive's consumer (LOGSTREAM_KAFKA_BROKERS): {e}")
        })?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(|e| {
                anyhow::anyhow!(
                    "archive: cannot subscribe to {} (LOGSTREAM_TOPIC_RAW): {e}",
                    settings.topic
                )
            })?;
        let (rewind_tx, rewinds) = std::sync::mpsc::channel();
        let in_flight = InFlight::default();
        let feedback = Feedback {
            in_flight: in_flight.clone(),
            rewinds: rewind_tx,
        };
        let source = Self {
            consumer,
            tx,
            in_flight,
            rewinds,
            settings,
            shutdown,
        };
        Ok((source, rx, feedback))
    }

    /// The loop, until shutdown: serve rewinds, forward what is held while the archiver keeps
    /// up (pausing the partitions while it does not), poll.
    pub fn run(self) {
        let mut held: VecDeque<Record> = VecDeque::new();
        let mut headers = LastHeaders::default();
        let mut paused = false;
        let mut paused_at = Instant::now();
        while !self.shutdown.is_cancelled() {
            while let Ok(partition) = self.rewinds.try_recv() {
                self.rewind(partition, &mut held);
            }
            while !held.is_empty() && self.has_room() {
                if let Some(record) = held.pop_front() {
                    self.send(record);
                }
            }
            // Paused once behind; resumed once the archiver is down to half the buffer (not
            // at the first free byte: resuming restarts fetching, and pausing again at once
            // would throw the fetched records away). Paused again every second meanwhile, so
            // partitions assigned since pause too.
            let behind = !held.is_empty();
            if behind && (!paused || paused_at.elapsed() >= Duration::from_secs(1)) {
                self.pause(true);
                paused = true;
                paused_at = Instant::now();
            } else if paused && !behind && self.in_flight() < self.settings.buffer_bytes / 2 {
                self.pause(false);
                paused = false;
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let record = to_record(&message, &mut headers);
                    if held.is_empty() && self.has_room() {
                        self.send(record);
                    } else {
                        held.push_back(record);
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "archive: Kafka consumer error"),
                None => {}
            }
            let revoked = std::mem::take(&mut *lock(&self.consumer.context().revoked));
            if !revoked.is_empty() {
                held.retain(|r| !revoked.contains(&r.partition));
            }
        }
        tracing::info!("archive: leaving the group");
        self.consumer.unsubscribe();
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn has_room(&self) -> bool {
        self.in_flight() < self.settings.buffer_bytes
    }

    fn send(&self, record: Record) {
        let bytes = record.memory_bytes();
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        let _ = self.tx.send(Item::Record(record));
    }

    fn pause(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, pause, "archive: cannot pause or resume the partitions");
        }
    }

    /// Reads `partition` again from its stored position (a claim was fenced: another member
    /// moved it), telling the archiver where it starts.
    fn rewind(&self, partition: i32, held: &mut VecDeque<Record>) {
        held.retain(|r| r.partition != partition);
        let context = self.consumer.context();
        let stored = context.positions(&[partition]);
        let offset = stored
            .first()
            .and_then(|(_, s)| *s)
            .map_or(Offset::Beginning, |s| Offset::Offset(s.next_offset));
        if let Err(e) = self.consumer.seek(
            &self.settings.topic,
            partition,
            offset,
            Duration::from_secs(10),
        ) {
            tracing::warn!(partition, error = %e, "archive: cannot rewind; the next rebalance will");
            return;
        }
        let _ = self.tx.send(Item::Assigned(stored));
    }
}
