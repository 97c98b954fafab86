//! One task per upstream: connect (bounded by the connect timeout), read frames into the queue,
//! and connect again after any end, waiting a jittered exponential backoff (reset after a
//! connection that delivered frames or lived long). A Ping goes out every ping interval; an
//! upstream from which nothing came (no frame, no Pong) for the stall timeout is stalled: the
//! connection is dropped and made again. A frame over the size limit (refused by its header, so
//! never buffered), a text frame that is not UTF-8 or a protocol violation ends the connection
//! and counts as one event received and rejected (`too_large`, `not_utf8`, `protocol_error`).
//! The reader never waits for the workers: a frame its queue share has no room for is dropped
//! and counted (`overflow`), so a slow pool never stops the reading of any upstream. At
//! shutdown the connection is closed (1001, going away).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::backoff::Reconnect;
use super::connect::{self, Socket, Target};
use super::queue::{Queue, Share};
use super::status::Upstream;
use crate::accounting::{Accounting, DropReason, Source};

const SOURCE: Source = Source::Websocket;
/// A connection that lived this long worked: the next reconnection waits the first delay.
const RESET_AFTER: Duration = Duration::from_secs(10);
/// How long a Close may take to go out at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one overflow warning per upstream this often (each drop is counted anyway).
const OVERFLOW_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The readers' timing settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub ping_interval: Duration,
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

/// What every reader shares.
pub struct Readers {
    pub queue: Queue,
    pub accounting: Arc<Accounting>,
    /// The TLS client of `wss://` upstreams (none when there is none).
    pub tls: Option<TlsConnector>,
    /// The frame size limits.
    pub config: WebSocketConfig,
    pub timing: Timing,
}

/// One upstream's reader.
pub struct Reader {
    pub target: Target,
    pub upstream: Arc<Upstream>,
    /// Its share of the queue.
    pub share: Share,
    pub readers: Arc<Readers>,
}

/// How a connection ended.
enum End {
    Shutdown,
    /// Closed by the upstream, or the connection went away.
    Closed(String),
    /// Stalled, or failed.
    Failed(String),
}

/// What happened while reading.
enum Step {
    Shutdown,
    Message(Option<Result<Message, WsError>>),
    Ping,
}

impl Reader {
    /// Reads the upstream until `shutdown`, connecting again after every end.
    pub async fn run(self, shutdown: CancellationToken) {
        let timing = self.readers.timing;
        let mut reconnect = Reconnect::new(timing.backoff_first, timing.backoff_max);
        while !shutdown.is_cancelled() {
            let dial = connect::dial(&self.target, self.readers.tls.as_ref(), self.readers.config);
            let dialed = tokio::select! {
                _ = shutdown.cancelled() => break,
                dialed = tokio::time::timeout(timing.connect_timeout, dial) => dialed,
            };
            match dialed {
                Err(_) => self.failed(format!(
                    "connect: no connection within {} ms (LOGSTREAM_WS_CONNECT_TIMEOUT_MS)",
                    timing.connect_timeout.as_millis()
                )),
                Ok(Err(e)) => self.failed(format!("connect: {e}")),
                Ok(Ok(socket)) => {
                    if !self.connected(socket, &shutdown, &mut reconnect).await {
                        break;
                    }
                }
            }
            if !reconnect.wait(&shutdown).await {
                break;
            }
        }
        tracing::debug!(upstream = self.upstream.url(), "websocket reader stopped");
    }

    /// Reads one connection until it ends; false at shutdown.
    async fn connected(
        &self,
        mut socket: Socket,
        shutdown: &CancellationToken,
        reconnect: &mut Reconnect,
    ) -> bool {
        let accounting = &self.readers.accounting;
        accounting.connected(SOURCE);
        self.upstream.connected();
        tracing::info!(
            upstream = self.upstream.url(),
            "websocket upstream connected"
        );
        let started = Instant::now();
        let mut frames = 0u64;
        let end = self.read(&mut socket, shutdown, &mut frames).await;
        if frames > 0 || started.elapsed() >= RESET_AFTER {
            reconnect.reset();
        }
        let going_on = match end {
            End::Shutdown => {
                let away = CloseFrame {
                    code: CloseCode::Away,
                    reason: Utf8Bytes::from_static("logstream-ingest shutting down"),
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(Some(away))).await;
                false
            }
            End::Closed(why) => {
                // Answers the upstream's Close (tungstenite queued the reply), if it sent one.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
                tracing::info!(
                    upstream = self.upstream.url(),
                    frames,
                    "websocket upstream {why}"
                );
                self.upstream.failed(why);
                true
            }
            End::Failed(why) => {
                self.failed(why);
                true
            }
        };
        self.upstream.disconnected();
        accounting.disconnected(SOURCE);
        going_on
    }

    /// Frames into the queue until the connection ends; counts the data frames in `frames`.
    async fn read(
        &self,
        socket: &mut Socket,
        shutdown: &CancellationToken,
        frames: &mut u64,
    ) -> End {
        let timing = self.readers.timing;
        let mut ping =
            tokio::time::interval_at(Instant::now() + timing.ping_interval, timing.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let mut warned: Option<Instant> = None;
        loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => Step::Shutdown,
                message = socket.next() => Step::Message(message),
                _ = ping.tick() => Step::Ping,
            };
            let message = match step {
                Step::Shutdown => return End::Shutdown,
                Step::Ping => {
                    if let Some(end) = self.ping(socket, heard).await {
                        return end;
                    }
                    continue;
                }
                Step::Message(None) => return End::Closed("closed the connection".into()),
                Step::Message(Some(Err(e))) => return self.error(e),
                Step::Message(Some(Ok(message))) => message,
            };
            heard = Instant::now();
            let (data, binary) = match message {
                Message::Text(text) => (Bytes::from(text), false),
                Message::Binary(data) => (data, true),
                Message::Close(frame) => {
                    return End::Closed(match frame {
                        Some(frame) => format!("closed the connection: {frame}"),
                        None => "closed the connection".into(),
                    })
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            *frames += 1;
            self.offer(data, binary, &mut warned);
        }
    }

    /// Sends a Ping, unless the upstream stalled (nothing heard since `heard` for the stall
    /// timeout, or the Ping cannot be written); then how the connection ends.
    async fn ping(&self, socket: &mut Socket, heard: Instant) -> Option<End> {
        let timing = self.readers.timing;
        if heard.elapsed() >= timing.stall_timeout {
            return Some(End::Failed(format!(
                "stalled: no frame and no pong for {} ms (LOGSTREAM_WS_STALL_TIMEOUT_MS)",
                heard.elapsed().as_millis()
            )));
        }
        let ping = Message::Ping(Bytes::from_static(b"logstream"));
        match tokio::time::timeout(timing.ping_interval, socket.send(ping)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(self.error(e)),
            Err(_) => Some(End::Failed(format!(
                "stalled: a ping could not be written within {} ms",
                timing.ping_interval.as_millis()
            ))),
        }
    }

    /// Queues one data frame, or drops and counts it when its share is full.
    fn offer(&self, data: Bytes, binary: bool, warned: &mut Option<Instant>) {
        self.upstream.frame();
        let size = data.len();
        let Err(full) = self
            .readers
            .queue
            .try_push(&self.share, &self.upstream, &data, binary)
        else {
            return;
        };
        // Not read: the frame counts as one event, received and dropped.
        let accounting = &self.readers.accounting;
        accounting.received(SOURCE, 1);
        accounting.dropped(SOURCE, DropReason::Overflow, 1);
        self.upstream.received(1);
        self.upstream.dropped();
        if warned.is_none_or(|at| at.elapsed() >= OVERFLOW_WARNING_EVERY) {
            *warned = Some(Instant::now());
            tracing::warn!(upstream = self.upstream.url(), size, reason = %full, "websocket frames dropped: the parser workers do not keep up (LOGSTREAM_WS_WORKERS)");
        }
    }

    /// How a read or write error ends the connection; a frame refused for what it is (too
    /// large, not UTF-8, a protocol violation) counts as an event received and rejected.
    fn error(&self, error: WsError) -> End {
        let Some(reason) = rejection(&error) else {
            return match error {
                WsError::ConnectionClosed | WsError::AlreadyClosed => {
                    End::Closed("closed the connection".into())
                }
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                    End::Closed("dropped the connection without a close".into())
                }
                e => End::Failed(e.to_string()),
            };
        };
        let accounting = &self.readers.accounting;
        accounting.received(SOURCE, 1);
        accounting.rejected(SOURCE, reason);
        self.upstream.received(1);
        self.upstream.rejected();
        End::Failed(match error {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => format!(
                "a frame of {size} bytes, over the limit of {max_size} (LOGSTREAM_WS_MAX_FRAME_BYTES)"
            ),
            e => e.to_string(),
        })
    }

    fn failed(&self, why: String) {
        tracing::warn!(upstream = self.upstream.url(), error = %why, "websocket upstream failed");
        self.upstream.failed(why);
    }
}

/// The rejection reason of an error that a frame the upstream sent caused, if it is one.
fn rejection(error: &WsError) -> Option<&'static str> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some("too_large"),
        WsError::Utf8(_) => Some("not_utf8"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some("protocol_error"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_the_upstream_got_wrong_are_rejections_and_other_errors_are_not() {
        let too_large = WsError::Capacity(CapacityError::MessageTooLong {
            size: 5 << 20,
            max_size: 1 << 20,
        });
        assert_eq!(rejection(&too_large), Some("too_large"));
        assert_eq!(rejection(&WsError::Utf8("bad".into())), Some("not_utf8"));
        let violation = WsError::Protocol(ProtocolError::NonZeroReservedBits);
        assert_eq!(rejection(&violation), Some("protocol_error"));
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(rejection(&reset), None);
        assert_eq!(
            rejection(&WsError::Io(std::io::Error::other("reset"))),
            None
        );
        assert_eq!(rejection(&WsError::ConnectionClosed), None);
    }
}
