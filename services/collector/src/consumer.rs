//! The Kafka side of the collector: a consumer-group member on its own thread. It hands every
//! record, in partition order, to the writer through a bounded channel (so a slow database slows
//! consumption instead of growing memory), and handles rebalances:
//!
//! - on assignment it reads the partitions' stored offsets from PostgreSQL and starts there;
//! - on revocation it asks the writer to flush and waits, so the next owner starts exactly where
//!   this one's committed data ends.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use logstream_core::storable;
use logstream_service::shutdown::CancellationToken;
use logstream_service::trace_context;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use tokio::sync::{mpsc, oneshot};

use crate::backpressure::{Sent, Valve};
use crate::batch::Record;
use crate::metrics::Metrics;
use crate::store::{Store, StoredPosition};

/// What the consumer thread tells the writer, in order.
pub enum Input {
    Record(Record),
    /// Partitions now owned, with what is stored for each (None: nothing stored yet).
    Assigned(Vec<(i32, Option<StoredPosition>)>),
    /// Partitions being taken away: flush, then acknowledge.
    Revoked(Vec<i32>, oneshot::Sender<()>),
    /// The partition was rewound to this stored offset (None: the beginning); records after this
    /// message follow it.
    Seeked(i32, Option<i64>),
}

/// Handles rebalances (runs on the consumer thread, inside `poll`).
pub struct Rebalancer {
    tx: mpsc::Sender<Input>,
    store: Arc<Store>,
    runtime: tokio::runtime::Handle,
    topic: String,
    shutdown: CancellationToken,
}

impl Rebalancer {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    /// Reads stored offsets, retrying while PostgreSQL is unreachable.
    fn stored_offsets(&self, partitions: &[i32]) -> HashMap<i32, StoredPosition> {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.runtime.block_on(self.store.load_offsets(partitions)) {
                Ok(offsets) => return offsets,
                Err(e) if self.shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "cannot read stored offsets while shutting down");
                    return HashMap::new();
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot read stored offsets");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl ClientContext for Rebalancer {}

impl ConsumerContext for Rebalancer {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions = self.partitions(tpl);
                let stored = self.stored_offsets(&partitions);
                for &p in &partitions {
                    let offset = stored
                        .get(&p)
                        .map_or(Offset::Beginning, |s| Offset::Offset(s.next_offset));
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                        tracing::error!(partition = p, error = %e, "cannot set start offset");
                    }
                }
                tracing::info!(?partitions, ?stored, "partitions assigned");
                let assigned = partitions
                    .iter()
                    .map(|p| (*p, stored.get(p).copied()))
                    .collect();
                let _ = self.tx.blocking_send(Input::Assigned(assigned));
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = self.partitions(tpl);
                tracing::info!(
                    ?partitions,
                    lost = consumer.assignment_lost(),
                    "partitions revoked; flushing"
                );
                let (ack, flushed) = oneshot::channel();
                if self
                    .tx
                    .blocking_send(Input::Revoked(partitions, ack))
                    .is_ok()
                {
                    let _ = flushed.blocking_recv();
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; giving up the assignment");
                // Flush and forget every owned partition first, as on a revocation, so a later
                // assignment starts from what PostgreSQL holds.
                let owned = consumer
                    .assignment()
                    .map(|a| self.partitions(&a))
                    .unwrap_or_default();
                let (ack, flushed) = oneshot::channel();
                if self.tx.blocking_send(Input::Revoked(owned, ack)).is_ok() {
                    let _ = flushed.blocking_recv();
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
        }
    }
}

pub struct ConsumerSettings<'a> {
    pub brokers: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub session_timeout_ms: u64,
    pub group_instance_id: Option<&'a str>,
    pub assignment_strategy: &'a str,
    /// Kafka's prefetch buffer (`queued.max.messages.kbytes`).
    pub prefetch_kbytes: u64,
}

/// Creates the group member and subscribes it.
pub fn subscribe(
    settings: &ConsumerSettings<'_>,
    tx: mpsc::Sender<Input>,
    store: Arc<Store>,
    shutdown: CancellationToken,
) -> anyhow::Result<BaseConsumer<Rebalancer>> {
    let context = Rebalancer {
        tx,
        store,
        runtime: tokio::runtime::Handle::current(),
        topic: settings.topic.to_owned(),
        shutdown,
    };
    let mut config = logstream_service::kafka::base_config(settings.brokers, "logstream-collector");
    if let Some(id) = settings.group_instance_id {
        config.set("group.instance.id", id);
    }
    let consumer: BaseConsumer<Rebalancer> = config
        .set("group.id", settings.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Records of aborted transactions never reach the writer (librdkafka's default, stated).
        .set("isolation.level", "read_committed")
        .set(
            "partition.assignment.strategy",
            settings.assignment_strategy,
        )
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 4).to_string(),
        )
        .set(
            "queued.max.messages.kbytes",
            settings.prefetch_kbytes.to_string(),
        )
        .create_with_context(context)
        .map_err(|e| {
            anyhow::anyhow!("cannot create Kafka consumer (LOGSTREAM_KAFKA_BROKERS): {e}")
        })?;
    consumer.subscribe(&[settings.topic]).map_err(|e| {
        anyhow::anyhow!(
            "cannot subscribe to {} (LOGSTREAM_TOPIC_RAW): {e}",
            settings.topic
        )
    })?;
    Ok(consumer)
}

fn to_record(message: &BorrowedMessage<'_>) -> Record {
    let mut instance_id = None;
    let mut seq = None;
    let mut traceparent = None;
    let mut content_type = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            match (header.key, header.value) {
                ("instance-id", Some(v)) => {
                    instance_id = std::str::from_utf8(v).ok().map(|id| {
                        let mut id = id.to_owned();
                        storable::text(&mut id);
                        id
                    })
                }
                ("seq", Some(v)) => seq = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
                ("content-type", Some(v)) => {
                    content_type = Some(String::from_utf8_lossy(v).into_owned())
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
    }
}

/// The consumer thread's loop: poll, forward (pausing the partitions while storage is behind),
/// serve rewind requests; on shutdown, close the consumer (which revokes, and so flushes, its
/// partitions) and return.
pub fn run(
    consumer: BaseConsumer<Rebalancer>,
    rewinds: std::sync::mpsc::Receiver<(i32, Option<i64>)>,
    topic: String,
    mut valve: Valve,
    metrics: Metrics,
    fatal: Arc<std::sync::Mutex<Option<String>>>,
    shutdown: CancellationToken,
) {
    let tx = consumer.context().tx.clone();
    let mut pending_rewinds: Vec<(i32, Option<i64>)> = Vec::new();
    // Records taken off Kafka that did not fit in the queue, oldest first.
    let mut backlog: VecDeque<Record> = VecDeque::new();
    'poll: while !shutdown.is_cancelled() {
        pending_rewinds.extend(rewinds.try_iter());
        if !pending_rewinds.is_empty() {
            // A rewind applies only to the assignment it was asked for: once the partition was
            // revoked, its next assignment starts from the stored offset anyway.
            let owned = consumer.assignment().unwrap_or_default();
            pending_rewinds.retain(|&(partition, offset)| {
                if owned.find_partition(&topic, partition).is_none() {
                    tracing::info!(partition, "dropping rewind of a partition no longer owned");
                    return false;
                }
                let target = offset.map_or(Offset::Beginning, Offset::Offset);
                match consumer.seek(&topic, partition, target, Duration::from_secs(5)) {
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
        while let Some(record) = backlog.pop_front() {
            match valve.send(&tx, record) {
                Sent::Yes => {}
                Sent::Full(record) => {
                    backlog.push_front(record);
                    break;
                }
                Sent::Closed => break 'poll,
            }
        }
        valve.regulate(&consumer, &tx, backlog.len());
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e))
                if matches!(e, KafkaError::MessageConsumptionFatal(_))
                    || e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) =>
            {
                // E.g. a static member fenced by another process with the same group.instance.id:
                // this consumer can never consume again, so the service must not look healthy.
                tracing::error!(error = %e, "fatal kafka consumer error; shutting down");
                if let Ok(mut failed) = fatal.lock() {
                    *failed = Some(e.to_string());
                }
                shutdown.cancel();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
            Some(Ok(message)) => {
                metrics.consumed.inc();
                let record = to_record(&message);
                if !backlog.is_empty() || valve.is_paused() {
                    backlog.push_back(record);
                    continue;
                }
                match valve.send(&tx, record) {
                    Sent::Yes => {}
                    Sent::Full(record) => backlog.push_back(record),
                    Sent::Closed => break,
                }
            }
        }
    }
    tracing::info!("leaving the consumer group");
    consumer.unsubscribe();
    // Serve the revocation that unsubscribing triggers, then close (dropping closes).
    for _ in 0..20 {
        if consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        {
            break;
        }
        let _ = consumer.poll(Duration::from_millis(100));
    }
    drop(consumer);
}
