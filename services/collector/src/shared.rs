//! State the stages publish for the status endpoint, the lag sampler and readiness. Each is a
//! small value behind a mutex, written by one stage and read by the others.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Committed offsets per owned partition (None: nothing stored yet), kept by the writer and
/// the committer.
pub type Committed = Arc<Mutex<BTreeMap<i32, Option<i64>>>>;

/// A problem that makes the collector unready (None: there is none): a batch failing to store
/// for too long, a member left without partitions, a fatal consumer error.
pub type Problem = Arc<Mutex<Option<String>>>;

/// Everything shared, created once at start.
#[derive(Clone, Default)]
pub struct Shared {
    pub committed: Committed,
    /// Set by the committer while a batch has failed to store past the stuck limit.
    pub stuck: Problem,
    /// Set by the lag loop while this member holds nothing and partitions have no owner.
    pub idle: Problem,
    /// Set by the lag loop when this member has held nothing for twice the session timeout
    /// while partitions have no owner; the consumer thread then joins the group again with a
    /// new consumer. librdkafka can stay out of the group for good after a session timeout
    /// (confluentinc/librdkafka#3437, seen here after the broker was frozen).
    pub rejoin: Arc<AtomicBool>,
    /// Set by the consumer thread on a fatal Kafka error (the service then stops).
    pub fatal: Problem,
    /// Signalled by the committer when a stored batch queued alert transitions, so the
    /// publisher puts them on `logs.alerts` at once rather than at its next poll.
    pub alerts_queued: Arc<tokio::sync::Notify>,
}
