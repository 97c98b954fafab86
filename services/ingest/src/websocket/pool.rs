//! The parser workers (`LOGSTREAM_WS_WORKERS` of them): each takes a frame from the queue, reads
//! its events ([`parse`](super::parse)) and hands each to Kafka without waiting. A WebSocket
//! upstream cannot be told to slow down without stalling its reader (and then its pings, and
//! the other frames behind), so an event the producer cannot take at once is dropped and
//! counted, as UDP's are: `overflow` when the producer's queue is full, `unavailable` while
//! the Kafka breaker is open. Every event counts as received once and ends sent, rejected or
//! dropped, per source and per upstream. The workers stop when the readers are gone and the
//! queue is empty.

use std::sync::Arc;

use logstream_core::LogEvent;
use tokio::sync::{mpsc, Mutex};

use super::parse::{self, Parsing};
use super::queue::Queued;
use super::status::Upstream;
use crate::accounting::{Accounting, DropReason, Source};
use crate::publisher::{Publisher, SendError};

const SOURCE: Source = Source::Websocket;

/// What the fan-in needs from the rest of the service.
pub struct FanIn {
    pub publisher: Arc<Publisher>,
    pub accounting: Arc<Accounting>,
    /// Service of an event that names none.
    pub default_service: String,
    /// Longest line (or JSON object) accepted.
    pub max_line_bytes: usize,
}

/// What every worker shares.
pub struct Workers {
    publisher: Arc<Publisher>,
    accounting: Arc<Accounting>,
    parsing: Parsing,
}

impl Workers {
    pub fn new(fan_in: FanIn) -> Self {
        Self {
            publisher: fan_in.publisher,
            accounting: fan_in.accounting,
            parsing: Parsing {
                default_service: fan_in.default_service,
                max_line_bytes: fan_in.max_line_bytes,
            },
        }
    }

    /// Reads one frame's events and hands them to Kafka, counting each.
    fn take(&self, frame: Queued) {
        let upstream = &frame.upstream;
        let now_ms = chrono::Utc::now().timestamp_millis();
        parse::each_event(&frame.data, frame.binary, &self.parsing, now_ms, |read| {
            self.accounting.received(SOURCE, 1);
            upstream.received(1);
            match read {
                Ok(event) => self.send(upstream, event),
                Err(e) => {
                    self.accounting.rejected(SOURCE, e.reason);
                    upstream.rejected();
                    tracing::debug!(upstream = upstream.url(), error = %e, "websocket event rejected");
                }
            }
        });
        // The frame's place in its upstream's share is given back here (dropped).
    }

    /// Hands one event to Kafka at once, or drops or rejects it.
    fn send(&self, upstream: &Upstream, mut event: LogEvent) {
        if event.host.is_none() {
            event.host = Some(upstream.host().to_owned());
        }
        let record = match Publisher::encode(&event) {
            Ok(record) => record,
            Err(e) => {
                self.accounting.rejected(SOURCE, "invalid_field");
                upstream.rejected();
                tracing::debug!(upstream = upstream.url(), error = %e, "websocket event not encodable");
                return;
            }
        };
        if !self.publisher.available() {
            self.accounting.dropped(SOURCE, DropReason::Unavailable, 1);
            upstream.dropped();
            return;
        }
        match self.publisher.try_send(&record, None, upstream.acks()) {
            Ok(()) => upstream.handed(),
            Err(SendError::Full) => {
                self.accounting.dropped(SOURCE, DropReason::Overflow, 1);
                upstream.dropped();
            }
            Err(SendError::Refused(e)) => {
                if self.publisher.refused(SOURCE, &e) {
                    upstream.rejected();
                } else {
                    upstream.dropped();
                }
                tracing::warn!(upstream = upstream.url(), error = %e, "kafka refused a websocket event");
            }
        }
    }
}

/// One worker: frames from the queue until it is closed and empty.
pub async fn work(queue: Arc<Mutex<mpsc::Receiver<Queued>>>, workers: Arc<Workers>) {
    loop {
        // The lock is held only while waiting for the next frame, not while reading it.
        let next = queue.lock().await.recv().await;
        let Some(frame) = next else {
            return;
        };
        workers.take(frame);
        // A long burst of frames must not hold this runtime thread from the readers.
        tokio::task::yield_now().await;
    }
}
