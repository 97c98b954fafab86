//! Each upstream's state and counters, as `GET /api/v1/ingest/status` (and `/stats`) shows
//! them under `websocket`: connected or not, connections made, the last error and when, and
//! where its events went. Per upstream, received == sent + rejected + dropped + in_flight: an
//! event counts as received when a worker reads it from its frame (a frame dropped before that,
//! its queue share being full, counts as one event received and dropped); sent and in_flight
//! come from the upstream's own [`Acks`] (Kafka's delivery reports), and what Kafka failed to
//! acknowledge is counted in dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use logstream_service::sync::lock;

use crate::accounting::Source;
use crate::publisher::Acks;

/// One upstream's state, as `GET /api/v1/ingest/status` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    /// The upstream's URL (without any user name or password it held).
    pub url: String,
    /// Whether a connection is open now.
    pub connected: bool,
    /// Connections made since the service started (1 for an upstream that never dropped).
    pub connects: u64,
    /// Data frames (text and binary) read.
    pub frames: u64,
    /// Events read from its frames (a frame dropped unread counts as one).
    pub received: u64,
    /// Events Kafka acknowledged.
    pub sent: u64,
    /// Events refused for what they are (and frames refused whole: too large, not UTF-8).
    pub rejected: u64,
    /// Valid events not sent: its queue share full, the producer's queue full, the Kafka
    /// breaker open, or Kafka not acknowledging.
    pub dropped: u64,
    /// Events handed to Kafka, not acknowledged or failed yet.
    pub in_flight: u64,
    /// Why the last connection ended or could not be made (`stalled: ...`, `closed by the
    /// upstream ...`, `connect: ...`); none while it never failed.
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The last error of an upstream and when it happened.
#[derive(Debug, Clone)]
struct LastError {
    error: String,
    at: DateTime<Utc>,
}

/// One upstream's live counters, shared by its reader and the parser workers.
pub struct Upstream {
    url: String,
    host: String,
    connected: AtomicBool,
    connects: AtomicU64,
    frames: AtomicU64,
    received: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    /// Events the producer took (sent, failed or in flight).
    handed: AtomicU64,
    /// This upstream's events in Kafka's hands (the delivery callback reports on them).
    acks: Arc<Acks>,
    last_error: Mutex<Option<LastError>>,
}

impl Upstream {
    /// `url` as shown (no credentials); `host` is the host of an event that names none.
    pub fn new(url: String, host: String) -> Self {
        Self {
            url,
            host,
            connected: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            received: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            acks: Acks::new(Source::Websocket),
            last_error: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host of an event that names none: the upstream's.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn acks(&self) -> &Arc<Acks> {
        &self.acks
    }

    pub fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
    }

    pub fn disconnected(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    /// Why the last connection ended or could not be made.
    pub fn failed(&self, error: String) {
        *lock(&self.last_error) = Some(LastError {
            error,
            at: Utc::now(),
        });
    }

    pub fn frame(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handed(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn status(&self) -> UpstreamStatus {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = lock(&self.last_error).clone();
        // Kafka's reports may land between the loads: a moment's difference, never a negative.
        let in_flight = self.acks.outstanding() as u64;
        let failed = self.acks.failed() as u64;
        let handed = get(&self.handed);
        UpstreamStatus {
            url: self.url.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            connects: get(&self.connects),
            frames: get(&self.frames),
            received: get(&self.received),
            sent: handed.saturating_sub(in_flight + failed),
            rejected: get(&self.rejected),
            dropped: get(&self.dropped) + failed,
            in_flight,
            last_error: last.as_ref().map(|l| l.error.clone()),
            last_error_at: last.map(|l| l.at),
        }
    }
}

/// Every upstream's state.
#[derive(Default)]
pub struct Upstreams {
    each: Vec<Arc<Upstream>>,
}

impl Upstreams {
    pub fn new(each: Vec<Arc<Upstream>>) -> Self {
        Self { each }
    }

    pub fn status(&self) -> Vec<UpstreamStatus> {
        self.each.iter().map(|u| u.status()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_the_last_error_show() {
        let upstream = Upstream::new("ws://h/x".into(), "h".into());
        upstream.connected();
        upstream.frame();
        upstream.received(3);
        upstream.rejected();
        upstream.dropped();
        upstream.failed("stalled".into());
        upstream.disconnected();
        let s = upstream.status();
        assert_eq!(
            (
                s.connected,
                s.connects,
                s.frames,
                s.received,
                s.rejected,
                s.dropped,
                s.sent
            ),
            (false, 1, 1, 3, 1, 1, 0)
        );
        assert_eq!(s.last_error.as_deref(), Some("stalled"));
        assert!(s.last_error_at.is_some());
        assert!(Upstreams::default().status().is_empty());
    }
}
