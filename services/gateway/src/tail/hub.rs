//! The followers of the live tail and the events handed to them. Publishing never waits: each
//! follower has a bounded buffer; when it is full the follower skips the event, and the count
//! of skipped events reaches it (an [`Item::Skipped`]) before its next event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use logstream_core::search::filter::EventFilter;
use logstream_core::LogEvent;
use logstream_service::sync::lock;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{mpsc, Notify};

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum Item {
    /// One event, as JSON (shared by every follower it goes to).
    Event(Arc<String>),
    /// This many events matched while the follower's buffer was full.
    Skipped(u64),
}

/// The hub's counters.
#[derive(Clone)]
pub struct TailMetrics {
    pub followers: IntGauge,
    pub sent: IntCounter,
    pub skipped: IntCounter,
    pub read: IntCounter,
    pub unreadable: IntCounter,
}

struct Follower {
    filter: EventFilter,
    tx: mpsc::Sender<Item>,
    /// Events skipped since the last one delivered.
    skipped: u64,
}

pub struct Hub {
    followers: Mutex<HashMap<u64, Follower>>,
    next_id: AtomicU64,
    max_followers: usize,
    buffer: usize,
    /// Woken when the first follower arrives.
    pub arrived: Notify,
    pub metrics: TailMetrics,
}

/// Why a follower is refused.
#[derive(Debug, thiserror::Error)]
#[error("at most {0} live tails at once (LOGSTREAM_TAIL_MAX_CLIENTS); try again later")]
pub struct Full(pub usize);

/// A follower's end: its events, and its place in the hub until dropped.
pub struct Subscription {
    pub items: mpsc::Receiver<Item>,
    id: u64,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut followers = lock(&self.hub.followers);
        followers.remove(&self.id);
        self.hub.metrics.followers.set(followers.len() as i64);
    }
}

impl Hub {
    pub fn new(max_followers: usize, buffer: usize, metrics: TailMetrics) -> Arc<Self> {
        Arc::new(Self {
            followers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max_followers,
            buffer,
            arrived: Notify::new(),
            metrics,
        })
    }

    /// A new follower of the events `filter` keeps.
    pub fn follow(self: &Arc<Self>, filter: EventFilter) -> Result<Subscription, Full> {
        let (tx, items) = mpsc::channel(self.buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut followers = lock(&self.followers);
            if followers.len() >= self.max_followers {
                return Err(Full(self.max_followers));
            }
            followers.insert(
                id,
                Follower {
                    filter,
                    tx,
                    skipped: 0,
                },
            );
            self.metrics.followers.set(followers.len() as i64);
        }
        self.arrived.notify_one();
        Ok(Subscription {
            items,
            id,
            hub: self.clone(),
        })
    }

    pub fn is_idle(&self) -> bool {
        lock(&self.followers).is_empty()
    }

    /// Hands `event` (read from `partition` at `offset`) to every follower it matches.
    pub fn publish(&self, event: &LogEvent, partition: i32, offset: i64) {
        let mut followers = lock(&self.followers);
        let mut json: Option<Arc<String>> = None;
        for follower in followers.values_mut() {
            if !follower.filter.matches(event) {
                continue;
            }
            let json = json.get_or_insert_with(|| Arc::new(to_json(event, partition, offset)));
            if follower.skipped > 0 {
                // The count first; the event only if there is room for both.
                if follower.tx.capacity() < 2 {
                    follower.skipped += 1;
                    self.metrics.skipped.inc();
                    continue;
                }
                let _ = follower.tx.try_send(Item::Skipped(follower.skipped));
                follower.skipped = 0;
            }
            match follower.tx.try_send(Item::Event(json.clone())) {
                Ok(()) => self.metrics.sent.inc(),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    follower.skipped += 1;
                    self.metrics.skipped.inc();
                }
                // Its connection is closing; its subscription goes with it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// An event as a follower receives it: the fields of a stored event (`GET /api/v1/logs`)
/// without those only storage gives (`received_at`, the producer's instance and seq).
pub fn to_json(event: &LogEvent, partition: i32, offset: i64) -> String {
    let attributes = event
        .attributes
        .as_deref()
        .and_then(|a| serde_json::value::RawValue::from_string(a.to_owned()).ok());
    serde_json::json!({
        "event_time": logstream_core::json::format_timestamp(event.timestamp_ms),
        "level": event.level.as_str(),
        "service": event.service,
        "component": event.component,
        "host": event.host,
        "message": event.message,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "parent_id": event.parent_id,
        "attributes": attributes,
        "kafka_partition": partition,
        "kafka_offset": offset,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstream_core::Level;

    fn metrics() -> TailMetrics {
        TailMetrics {
            followers: IntGauge::new("f", "f").expect("gauge"),
            sent: IntCounter::new("s", "s").expect("counter"),
            skipped: IntCounter::new("k", "k").expect("counter"),
            read: IntCounter::new("r", "r").expect("counter"),
            unreadable: IntCounter::new("u", "u").expect("counter"),
        }
    }

    fn event(service: &str) -> LogEvent {
        LogEvent {
            timestamp_ms: 1_700_000_000_000,
            level: Level::Error,
            service: service.into(),
            component: None,
            host: None,
            message: "boom".into(),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: Some(r#"{"a":1}"#.into()),
        }
    }

    #[test]
    fn a_full_follower_skips_and_is_told_how_many_while_others_get_everything() {
        let hub = Hub::new(4, 4, metrics());
        let mut slow = hub.follow(EventFilter::default()).expect("room");
        let mut fast = hub.follow(EventFilter::default()).expect("room");
        let mut other = hub
            .follow(EventFilter {
                services: vec!["orders".into()],
                ..EventFilter::default()
            })
            .expect("room");
        for offset in 0..10 {
            hub.publish(&event("payments"), 0, offset);
            while let Ok(item) = fast.items.try_recv() {
                assert!(matches!(item, Item::Event(_)));
            }
        }
        assert!(other.items.try_recv().is_err(), "filtered out");
        let mut got = Vec::new();
        while let Ok(item) = slow.items.try_recv() {
            got.push(item);
        }
        assert_eq!(got.len(), 4, "its buffer");
        hub.publish(&event("payments"), 0, 10);
        assert!(matches!(slow.items.try_recv(), Ok(Item::Skipped(6))));
        let Ok(Item::Event(json)) = slow.items.try_recv() else {
            panic!("the next event after the count");
        };
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["kafka_offset"], 10);
        assert_eq!(value["attributes"]["a"], 1);
        assert_eq!(hub.metrics.skipped.get(), 6);
    }

    #[test]
    fn followers_are_capped_and_leave_when_dropped() {
        let hub = Hub::new(1, 4, metrics());
        let first = hub.follow(EventFilter::default()).expect("room");
        assert!(hub.follow(EventFilter::default()).is_err());
        assert_eq!(hub.metrics.followers.get(), 1);
        drop(first);
        assert!(hub.is_idle());
        assert!(hub.follow(EventFilter::default()).is_ok());
    }
}
