//! Where every event received goes, per source: sent (Kafka acknowledged it), rejected (it is
//! malformed or too long) or dropped (valid, but not sent: Kafka unavailable or failing, a full
//! queue). received == sent + rejected + dropped, always, apart from events in flight. Kept as
//! Prometheus counters and as the numbers `GET /api/v1/ingest/status` shows.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::IntCounter;
use serde::Serialize;

use crate::metrics::Metrics;

/// Where events come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v1/logs`.
    Http,
    /// Syslog over TCP.
    SyslogTcp,
    /// Syslog over UDP.
    SyslogUdp,
    /// Syslog over TLS (RFC 5425).
    SyslogTls,
    /// Files tailed (`LOGSTREAM_FILE_PATHS`).
    File,
    /// WebSocket upstreams fanned in (`LOGSTREAM_WS_SOURCES`).
    Websocket,
}

/// How many sources there are.
const SOURCES: usize = 6;

impl Source {
    pub const ALL: [Source; SOURCES] = [
        Source::Http,
        Source::SyslogTcp,
        Source::SyslogUdp,
        Source::SyslogTls,
        Source::File,
        Source::Websocket,
    ];

    /// The `source` label value.
    pub fn label(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::SyslogTcp => "syslog_tcp",
            Source::SyslogUdp => "syslog_udp",
            Source::SyslogTls => "syslog_tls",
            Source::File => "file",
            Source::Websocket => "websocket",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a valid event was not sent (the `reason` of the dropped counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The Kafka circuit breaker is open: the sender was told (503), or the datagram lost.
    Unavailable,
    /// The producer's queue is full (UDP, which cannot wait).
    Overflow,
    /// Kafka did not acknowledge it within the message timeout.
    KafkaFailed,
    /// The kernel dropped the datagram: the UDP socket's receive buffer was full (counted as
    /// received too, from the socket's drop counter).
    ReceiveBuffer,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Unavailable => "unavailable",
            DropReason::Overflow => "overflow",
            DropReason::KafkaFailed => "kafka_failed",
            DropReason::ReceiveBuffer => "receive_buffer",
        }
    }
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    connections: AtomicU64,
}

/// The counters of every source.
pub struct Accounting {
    metrics: Metrics,
    counts: [Counts; SOURCES],
    /// Each source's received and sent series, looked up once (they count every event).
    received: [IntCounter; SOURCES],
    sent: [IntCounter; SOURCES],
}

/// One source's numbers, as the status endpoint shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceStatus {
    /// `http`, `syslog_tcp`, `syslog_udp`, `syslog_tls`, `file` or `websocket`.
    #[schema(value_type = String)]
    pub source: &'static str,
    pub connections: u64,
    pub received: u64,
    pub sent: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// Received, neither sent, rejected nor dropped yet (in Kafka's hands).
    pub in_flight: u64,
}

impl Accounting {
    pub fn new(metrics: Metrics) -> Self {
        // Every source's series exist from the start (at zero), so rates and sums work at once.
        let series = |vec: &prometheus::IntCounterVec| {
            Source::ALL.map(|source| vec.with_label_values(&[source.label()]))
        };
        Self {
            received: series(&metrics.received),
            sent: series(&metrics.sent),
            metrics,
            counts: Default::default(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn received(&self, source: Source, n: u64) {
        self.received[source.index()].inc_by(n);
        self.counts[source.index()]
            .received
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn rejected(&self, source: Source, reason: &'static str) {
        self.rejected_n(source, reason, 1);
    }

    pub fn rejected_n(&self, source: Source, reason: &'static str, n: u64) {
        self.metrics
            .rejected
            .with_label_values(&[source.label(), reason])
            .inc_by(n);
        self.counts[source.index()]
            .rejected
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self, source: Source, why: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        self.metrics
            .dropped
            .with_label_values(&[source.label(), why.label()])
            .inc_by(n);
        self.counts[source.index()]
            .dropped
            .fetch_add(n, Ordering::Relaxed);
    }

    /// One record acknowledged by Kafka (called from the producer's delivery callback).
    pub fn sent(&self, source: Source) {
        self.sent[source.index()].inc();
        self.metrics.kafka_sent.inc();
        self.counts[source.index()]
            .sent
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records committed to Kafka in a transaction (the file source's; not this instance's
    /// seq accounting, which is the publisher's).
    pub fn committed(&self, source: Source, n: u64) {
        self.sent[source.index()].inc_by(n);
        self.counts[source.index()]
            .sent
            .fetch_add(n, Ordering::Relaxed);
    }

    /// One record Kafka did not acknowledge (the delivery callback).
    pub fn failed(&self, source: Source) {
        self.metrics.kafka_failed.inc();
        self.dropped(source, DropReason::KafkaFailed, 1);
    }

    pub fn connected(&self, source: Source) {
        self.metrics
            .connections
            .with_label_values(&[source.label()])
            .inc();
        self.counts[source.index()]
            .connections
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn disconnected(&self, source: Source) {
        self.metrics
            .connections
            .with_label_values(&[source.label()])
            .dec();
        self.counts[source.index()]
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Every source's numbers.
    pub fn status(&self) -> Vec<SourceStatus> {
        Source::ALL
            .iter()
            .map(|&source| {
                let c = &self.counts[source.index()];
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let (received, sent, rejected, dropped) = (
                    get(&c.received),
                    get(&c.sent),
                    get(&c.rejected),
                    get(&c.dropped),
                );
                SourceStatus {
                    source: source.label(),
                    connections: get(&c.connections),
                    received,
                    sent,
                    rejected,
                    dropped,
                    in_flight: received.saturating_sub(sent + rejected + dropped),
                }
            })
            .collect()
    }
}
