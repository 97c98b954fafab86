//! Rebalances, on the consumer thread inside `poll`: on assignment, each partition starts from
//! the offset PostgreSQL holds for it (read before the assignment is applied); on revocation,
//! the writer flushes and acknowledges before the partitions go, so the next owner starts
//! exactly where this one's committed data ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logstream_service::retry::Backoff;
use logstream_service::shutdown::CancellationToken;
use logstream_service::sync::lock;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, oneshot};

use crate::messages::{Input, StoredPosition};
use crate::stored_offsets::StoredOffsets;

/// Handles rebalances (runs on the consumer thread, inside `poll`).
pub struct Rebalancer {
    pub tx: mpsc::Sender<Input>,
    pub offsets: Arc<StoredOffsets>,
    pub runtime: tokio::runtime::Handle,
    pub topic: String,
    pub shutdown: CancellationToken,
    /// Set when the assignment is lost (the session timed out).
    pub lost: Arc<Mutex<Option<Instant>>>,
}

impl Rebalancer {
    /// Reads stored offsets, retrying while PostgreSQL is unreachable.
    fn stored_offsets(&self, partitions: &[i32]) -> HashMap<i32, StoredPosition> {
        block_on_retrying(&self.runtime, &self.shutdown, "stored offsets", || {
            self.offsets.load(partitions)
        })
        .unwrap_or_default()
    }
}

/// Runs `attempt` on `runtime` from a thread outside it (the consumer's, in a rebalance
/// callback) until it succeeds, waiting more between failures (PostgreSQL unreachable); None
/// when shutting down.
pub fn block_on_retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    runtime: &tokio::runtime::Handle,
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match runtime.block_on(attempt()) {
            Ok(value) => return Some(value),
            Err(e) if shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "cannot read {what} while shutting down");
                return None;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot read {what}");
                std::thread::sleep(delay);
            }
        }
    }
}

impl ClientContext for Rebalancer {}

/// What a group member does when partitions come and go; [`handle`] calls it from librdkafka's
/// rebalance callback, for the eager and the cooperative protocol alike.
pub trait OnRebalance {
    /// The topic whose partitions it follows.
    fn topic(&self) -> &str;
    /// Before `tpl` is assigned: set each partition's start offset in it.
    fn assigned(&self, tpl: &mut TopicPartitionList);
    /// Before `partitions` go (`lost`: the session expired, someone else may own them now).
    fn revoked(&self, partitions: Vec<i32>, lost: bool);
}

/// The partitions of `topic` in `tpl`.
pub fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}

/// Serves one rebalance event: assignment, revocation, or an error (which gives up the whole
/// assignment, as a revocation would).
pub fn handle<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    err: RDKafkaRespErr,
    tpl: &mut TopicPartitionList,
    on: &impl OnRebalance,
) {
    let cooperative = matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
    match err {
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
            on.assigned(tpl);
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
            on.revoked(partitions_of(tpl, on.topic()), consumer.assignment_lost());
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
            // Forget every owned partition first, as on a revocation, so a later assignment
            // starts from what PostgreSQL holds.
            let owned = consumer
                .assignment()
                .map(|a| partitions_of(&a, on.topic()))
                .unwrap_or_default();
            on.revoked(owned, false);
            if let Err(e) = consumer.unassign() {
                tracing::error!(error = %e, "unassign failed");
            }
        }
    }
}

impl ConsumerContext for Rebalancer {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        handle(consumer, err, tpl, self);
    }
}

impl OnRebalance for Rebalancer {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn assigned(&self, tpl: &mut TopicPartitionList) {
        self.assign(tpl);
    }

    /// The writer stores everything consumed from the partitions first.
    fn revoked(&self, partitions: Vec<i32>, lost: bool) {
        tracing::info!(?partitions, lost, "partitions revoked; flushing");
        if lost {
            *lock(&self.lost) = Some(Instant::now());
        }
        self.flush(partitions);
    }
}

impl Rebalancer {
    /// Sets each assigned partition's start to the offset PostgreSQL holds, and tells the writer.
    fn assign(&self, tpl: &mut TopicPartitionList) {
        let partitions = partitions_of(tpl, &self.topic);
        let stored = self.stored_offsets(&partitions);
        for &p in &partitions {
            let offset = stored
                .get(&p)
                .map_or(Offset::Beginning, |s| Offset::Offset(s.read_from()));
            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                tracing::error!(partition = p, error = %e, "cannot set start offset");
            }
        }
        let starts: Vec<(i32, Option<i64>)> = partitions
            .iter()
            .map(|p| (*p, stored.get(p).map(StoredPosition::read_from)))
            .collect();
        tracing::info!(?partitions, ?starts, "partitions assigned");
        let assigned = partitions
            .iter()
            .map(|p| (*p, stored.get(p).cloned()))
            .collect();
        let _ = self.tx.blocking_send(Input::Assigned(assigned));
    }

    /// Has the writer store everything consumed from `partitions`, and waits until it has.
    fn flush(&self, partitions: Vec<i32>) {
        let (ack, flushed) = oneshot::channel();
        if self
            .tx
            .blocking_send(Input::Revoked(partitions, ack))
            .is_ok()
        {
            let _ = flushed.blocking_recv();
        }
    }
}
