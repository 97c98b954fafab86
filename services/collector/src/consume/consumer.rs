//! The Kafka source: a consumer-group member on its own thread. It hands every record, in
//! partition order, to the writer through a bounded channel (so a slow database slows
//! consumption instead of growing memory), pausing its partitions while storage is behind
//! (`backpressure`), and serves the writer's requests to read a partition again from a stored
//! offset. Rebalances are handled by `rebalance`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logstream_core::storable;
use logstream_service::shutdown::CancellationToken;
use logstream_service::sync::lock;
use logstream_service::trace_context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::Offset;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use crate::consume::backpressure::{Sent, Valve};
use crate::consume::rebalance::Rebalancer;
use crate::messages::{Input, Record, Rewind};
use crate::metrics::Metrics;
use crate::shared::Problem;
use crate::stored_offsets::StoredOffsets;

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub brokers: String,
    pub group: String,
    pub topic: String,
    pub session_timeout_ms: u64,
    pub group_instance_id: Option<String>,
    pub assignment_strategy: String,
    /// Kafka's prefetch buffer (`queued.max.messages.kbytes`).
    pub prefetch_kbytes: u64,
}

/// Everything a member needs to join the group, again if need be.
#[derive(Clone)]
pub struct Membership {
    pub settings: ConsumerSettings,
    pub tx: mpsc::Sender<Input>,
    pub offsets: Arc<StoredOffsets>,
    pub shutdown: CancellationToken,
    /// When the member last lost its assignment (session timed out).
    pub lost: Arc<Mutex<Option<Instant>>>,
    /// Set by the lag loop when this member holds nothing while partitions have no owner.
    pub rejoin: Arc<AtomicBool>,
    /// The runtime the rebalance callbacks load stored offsets on: taken at start, because a
    /// join again happens on the consumer thread, which is outside any runtime.
    pub runtime: tokio::runtime::Handle,
}

/// A static member fenced this soon after losing its assignment was fenced by its own rejoin
/// (requests of the old membership answered after the new one), not by another process.
const SELF_FENCE_WINDOW: Duration = Duration::from_secs(120);

/// Largest fetch response (librdkafka's default: 50 MB), at most half the prefetch buffer.
const FETCH_MAX_BYTES: u64 = 16 << 20;

/// Largest share of one partition in a fetch response (librdkafka's default: 1 MiB). With the
/// defaults the collector waited for Kafka: in e2e-bench it stored 145-165k events/s with its
/// threads asleep most of the time (1.5 of 2 cores busy); with 2 MiB per partition, 16 MiB per
/// fetch and the short backoff below, 169-180k (1.8 cores busy). 8 and 64 MiB stored no more
/// and raised the collector's peak in a 60 s spike from 338 to 429 MiB (the limit counts the
/// compressed bytes of a response; they take several times that once decompressed).
const PARTITION_FETCH_BYTES: u64 = 2 << 20;

/// How long librdkafka waits before fetching again once its prefetch queue is over its
/// thresholds (default 1000 ms: a second without fetching while the writer drains the queue).
const FETCH_QUEUE_BACKOFF_MS: u64 = 10;

/// A consumer-group member's settings whose offsets live in PostgreSQL, not in Kafka: nothing
/// committed to the group, each assigned partition started where PostgreSQL says.
pub fn member_config(
    brokers: &str,
    client_id: &str,
    group: &str,
    assignment_strategy: &str,
    session_timeout_ms: u64,
) -> rdkafka::ClientConfig {
    let mut config = logstream_service::kafka::base_config(brokers, client_id);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Records of aborted transactions are never read (librdkafka's default, stated).
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", assignment_strategy)
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_timeout_ms / 4).to_string(),
        );
    config
}

impl Membership {
    /// Creates the group member and subscribes it.
    pub fn join(&self) -> anyhow::Result<BaseConsumer<Rebalancer>> {
        let settings = &self.settings;
        let context = Rebalancer {
            tx: self.tx.clone(),
            offsets: self.offsets.clone(),
            runtime: self.runtime.clone(),
            topic: settings.topic.clone(),
            shutdown: self.shutdown.clone(),
            lost: self.lost.clone(),
        };
        // Half the prefetch buffer at most: librdkafka can hold a whole response past the limit.
        let fetch_max_bytes = (settings.prefetch_kbytes * 1024 / 2).min(FETCH_MAX_BYTES);
        let mut config = member_config(
            &settings.brokers,
            "logstream-collector",
            &settings.group,
            &settings.assignment_strategy,
            settings.session_timeout_ms,
        );
        if let Some(id) = &settings.group_instance_id {
            config.set("group.instance.id", id);
        }
        let consumer: BaseConsumer<Rebalancer> = config
            .set(
                "queued.max.messages.kbytes",
                settings.prefetch_kbytes.to_string(),
            )
            .set("fetch.max.bytes", fetch_max_bytes.to_string())
            .set(
                "max.partition.fetch.bytes",
                (fetch_max_bytes.min(PARTITION_FETCH_BYTES)).to_string(),
            )
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string())
            .create_with_context(context)
            .map_err(|e| {
                anyhow::anyhow!("cannot create Kafka consumer (LOGSTREAM_KAFKA_BROKERS): {e}")
            })?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot subscribe to {} (LOGSTREAM_TOPIC_RAW): {e}",
                    settings.topic
                )
            })?;
        Ok(consumer)
    }
}

/// The last value of a header, shared by the records that repeat it: one allocation when it
/// changes, not one per record (a producer sends the same `instance-id` and `content-type`
/// with every record).
#[derive(Default)]
struct Last {
    raw: Vec<u8>,
    value: Option<Arc<str>>,
}

impl Last {
    /// The value of header bytes `raw`, made by `make` (None: not a value) unless they repeat.
    fn of(&mut self, raw: &[u8], make: impl FnOnce(&[u8]) -> Option<String>) -> Option<Arc<str>> {
        if self.value.is_none() || self.raw != raw {
            self.value = make(raw).map(Arc::from);
            self.raw.clear();
            self.raw.extend_from_slice(raw);
        }
        self.value.clone()
    }
}

/// The headers whose values repeat from record to record.
#[derive(Default)]
pub struct LastHeaders {
    instance_id: Last,
    content_type: Last,
}

/// The record of `message`, its headers read (`last` spares allocating repeated values).
pub fn to_record(message: &BorrowedMessage<'_>, last: &mut LastHeaders) -> Record {
    let mut instance_id = None;
    let mut seq = None;
    let mut traceparent = None;
    let mut content_type = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            match (header.key, header.value) {
                ("instance-id", Some(v)) => {
                    instance_id = last.instance_id.of(v, |v| {
                        let mut id = std::str::from_utf8(v).ok()?.to_owned();
                        storable::text(&mut id);
                        Some(id)
                    })
                }
                ("seq", Some(v)) => seq = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
                ("content-type", Some(v)) => {
                    content_type = last
                        .content_type
                        .of(v, |v| Some(String::from_utf8_lossy(v).into_owned()))
                }
                (trace_context::TRACEPARENT, Some(v)) => {
                    traceparent = std::str::from_utf8(v).ok().map(str::to_owned)
                }
                _ => {}
            }
        }
    }
    Record {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        instance_id,
        seq,
        traceparent,
        content_type,
        timestamp_ms: message.timestamp().to_millis(),
    }
}

/// The consumer thread: the group member, the valve and where its records go.
pub struct ConsumerThread {
    pub consumer: BaseConsumer<Rebalancer>,
    /// To join the group again after fencing itself.
    pub membership: Membership,
    pub rewinds: std::sync::mpsc::Receiver<Rewind>,
    pub topic: String,
    pub valve: Valve,
    pub metrics: Metrics,
    /// Set on a fatal consumer error (readiness, exit status).
    pub fatal: Problem,
    pub shutdown: CancellationToken,
}

/// What the thread holds between polls.
struct Held {
    tx: mpsc::Sender<Input>,
    /// Rewinds asked for and not done yet.
    rewinds: Vec<Rewind>,
    /// Records taken off Kafka that did not fit in the queue, oldest first.
    backlog: VecDeque<Record>,
    headers: LastHeaders,
}

impl ConsumerThread {
    /// The loop: serve rewind requests, forward what waits (pausing the partitions while
    /// storage is behind), poll; on shutdown, close the consumer (which revokes, and so
    /// flushes, its partitions) and return.
    pub fn run(mut self) {
        let mut held = Held {
            tx: self.consumer.context().tx.clone(),
            rewinds: Vec::new(),
            backlog: VecDeque::new(),
            headers: LastHeaders::default(),
        };
        while !self.shutdown.is_cancelled() {
            if self.membership.rejoin.swap(false, Ordering::AcqRel) {
                self.rejoin_stalled();
            }
            held.rewinds.extend(self.rewinds.try_iter());
            if !held.rewinds.is_empty() {
                self.rewind(&mut held);
            }
            if !self.forward_backlog(&mut held) {
                break;
            }
            self.valve
                .regulate(&self.consumer, &held.tx, held.backlog.len());
            if !self.poll(&mut held) {
                break;
            }
        }
        self.leave();
    }

    /// Rewinds the partitions asked for, keeping the requests that failed for the next turn.
    fn rewind(&self, held: &mut Held) {
        // A rewind applies only to the assignment it was asked for: once the partition was
        // revoked, its next assignment starts from the stored offset anyway.
        let owned = self.consumer.assignment().unwrap_or_default();
        let (topic, tx, backlog) = (&self.topic, &held.tx, &mut held.backlog);
        held.rewinds.retain(|&(partition, offset)| {
            if owned.find_partition(topic, partition).is_none() {
                tracing::info!(partition, "dropping rewind of a partition no longer owned");
                return false;
            }
            let target = offset.map_or(Offset::Beginning, Offset::Offset);
            match self
                .consumer
                .seek(topic, partition, target, Duration::from_secs(5))
            {
                Ok(()) => {
                    tracing::info!(partition, ?offset, "rewound partition to stored offset");
                    // Records of the partition still waiting here predate the rewind.
                    backlog.retain(|r| r.partition != partition);
                    let _ = tx.blocking_send(Input::Seeked(partition, offset));
                    false
                }
                Err(e) => {
                    tracing::warn!(partition, ?offset, error = %e, "rewind failed; will retry");
                    true
                }
            }
        });
    }

    /// Queues what waits in the backlog while there is room; false when the writer is gone.
    fn forward_backlog(&self, held: &mut Held) -> bool {
        while let Some(record) = held.backlog.pop_front() {
            match self.valve.send(&held.tx, record) {
                Sent::Yes => {}
                Sent::Full(record) => {
                    held.backlog.push_front(record);
                    break;
                }
                Sent::Closed => return false,
            }
        }
        true
    }

    /// Polls once and forwards what came; false when the writer is gone.
    fn poll(&mut self, held: &mut Held) -> bool {
        match self.consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e))
                if matches!(e, KafkaError::MessageConsumptionFatal(_))
                    || e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) =>
            {
                if self.fenced_by_itself(&e) {
                    return self.rejoin(&e);
                }
                // E.g. a static member fenced by another process with the same group.instance.id:
                // this consumer can never consume again, so the service must not look healthy.
                tracing::error!(error = %e, "fatal kafka consumer error; shutting down");
                *lock(&self.fatal) = Some(e.to_string());
                self.shutdown.cancel();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
            Some(Ok(message)) => {
                self.metrics.consumed.inc();
                let record = to_record(&message, &mut held.headers);
                if !held.backlog.is_empty() || self.valve.is_paused() {
                    held.backlog.push_back(record);
                    return true;
                }
                match self.valve.send(&held.tx, record) {
                    Sent::Yes => {}
                    Sent::Full(record) => held.backlog.push_back(record),
                    Sent::Closed => return false,
                }
            }
        }
        true
    }

    /// Whether `e` fences this static member right after it lost its assignment: after a
    /// broker outage longer than the session, the coordinator can answer a request of the old
    /// membership after the new one replaced it, and fence the member by itself.
    fn fenced_by_itself(&self, e: &KafkaError) -> bool {
        e.rdkafka_error_code() == Some(RDKafkaErrorCode::FencedInstanceId)
            && lock(&self.membership.lost)
                .take()
                .is_some_and(|at| at.elapsed() < SELF_FENCE_WINDOW)
    }

    /// Joins the group again with a new consumer (its partitions were revoked as lost already).
    fn rejoin(&mut self, e: &KafkaError) -> bool {
        tracing::warn!(error = %e,
            "fenced right after losing the assignment (broker unreachable past the session timeout): joining the group again");
        self.join_again(&e.to_string());
        true
    }

    /// Joins the group again when the lag loop saw this member hold nothing for two session
    /// timeouts while partitions have no owner, provided it still holds nothing (so nothing
    /// consumed is unflushed).
    fn rejoin_stalled(&mut self) {
        let holds = self.consumer.assignment().map_or(0, |a| a.count());
        if holds > 0 {
            return;
        }
        tracing::warn!("holding no partition while some have no owner: joining the group again with a new consumer");
        // The old member stops asking for anything before the new one joins.
        self.consumer.unsubscribe();
        self.join_again("stalled outside the group");
    }

    /// Replaces the consumer with a newly joined one; a failure to join stops the service.
    fn join_again(&mut self, why: &str) {
        self.metrics.faults.rejoins.inc();
        match self.membership.join() {
            Ok(consumer) => {
                let old = std::mem::replace(&mut self.consumer, consumer);
                // Closing a member librdkafka left stuck can block: it closes on a thread of
                // its own, so this one goes on consuming with the new member.
                let closing = std::thread::Builder::new()
                    .name("kafka-consumer-close".into())
                    .spawn(move || drop(old));
                if let Err(e) = closing {
                    tracing::warn!(error = %e, "cannot start a thread to close the old consumer");
                }
            }
            Err(join) => {
                tracing::error!(error = %join, "cannot join the group again; shutting down");
                *lock(&self.fatal) = Some(format!("{why}; joining again failed: {join}"));
                self.shutdown.cancel();
            }
        }
    }

    /// Leaves the group: serves the revocation that unsubscribing triggers, then closes.
    fn leave(self) {
        tracing::info!("leaving the consumer group");
        self.consumer.unsubscribe();
        for _ in 0..20 {
            if self
                .consumer
                .assignment()
                .map(|a| a.count() == 0)
                .unwrap_or(true)
            {
                break;
            }
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
        drop(self.consumer);
    }
}
