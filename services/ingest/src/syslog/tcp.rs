//! Syslog over TCP (RFC 6587; both framings, told apart per frame), and over TLS (RFC 5425: the
//! same framing inside TLS, handshake within 10 s). Backpressured: while the
//! Kafka breaker is open, or while a connection has too many events unacknowledged, the
//! connection is not read (the sender's buffers fill and it waits); nothing is buffered without
//! bound. Connections beyond the limit are refused and counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use logstream_core::ingest::framing::Framer;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Syslog;
use crate::accounting::Source;
use crate::publisher::Acks;

/// Longest a TLS client may take to finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Bytes read at a time (per connection: 1,000 idle connections hold 16 MiB).
const READ_BYTES: usize = 16 * 1024;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    /// Events of one connection in Kafka's hands, at most, before it is read again.
    pub in_flight: usize,
    /// How long a closing connection waits for Kafka's acknowledgements.
    pub ack_timeout: Duration,
}

/// The connection limit both stream listeners (TCP and TLS) share.
pub fn connection_permits(limits: &TcpLimits) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(limits.max_connections))
}

/// Accepts connections until `shutdown`: plain TCP, or TLS when `tls` is given; each holds one
/// of `permits` while open.
pub async fn serve(
    listener: TcpListener,
    syslog: Arc<Syslog>,
    (limits, permits): (TcpLimits, Arc<Semaphore>),
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let source = if tls.is_some() {
        Source::SyslogTls
    } else {
        Source::SyslogTcp
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(error = %e, "syslog tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            syslog
                .accounting
                .metrics()
                .connections_refused
                .with_label_values(&[source.label()])
                .inc();
            tracing::warn!(%peer, limit = limits.max_connections, "syslog {} connection refused: at the connection limit (LOGSTREAM_SYSLOG_MAX_CONNECTIONS)", source.label());
            continue;
        };
        let reading = Reading {
            peer,
            source,
            syslog: syslog.clone(),
            limits,
            shutdown: shutdown.clone(),
        };
        match tls.clone() {
            None => connections.spawn(reading.run(stream, permit)),
            Some(acceptor) => connections.spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => reading.run(stream, permit).await,
                    outcome => {
                        let error = match outcome {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no handshake within {HANDSHAKE:?}"),
                        };
                        reading.refused(&error);
                    }
                }
            }),
        };
        while connections.try_join_next().is_some() {}
    }
    // Connections stop reading on shutdown and wait for their acknowledgements.
    while connections.join_next().await.is_some() {}
}

/// One connection being read.
struct Reading {
    peer: SocketAddr,
    source: Source,
    syslog: Arc<Syslog>,
    limits: TcpLimits,
    shutdown: CancellationToken,
}

impl Reading {
    /// A TLS connection that could not start.
    fn refused(&self, error: &str) {
        self.syslog
            .accounting
            .metrics()
            .connections_refused
            .with_label_values(&[self.source.label()])
            .inc();
        tracing::warn!(peer = %self.peer, %error, "syslog tls handshake failed");
    }

    async fn run<S: AsyncRead + Unpin>(self, mut stream: S, _permit: OwnedSemaphorePermit) {
        let Reading {
            peer,
            source,
            syslog,
            limits,
            shutdown,
        } = self;
        let accounting = syslog.accounting.clone();
        accounting.connected(source);
        let acks = Acks::new(source);
        let mut framer = Framer::new(syslog.max_message_bytes);
        let mut buffer = vec![0u8; READ_BYTES];
        'reading: loop {
            // Read only while the breaker is closed and Kafka keeps up with this connection.
            loop {
                if !syslog.publisher.available() {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'reading,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                } else if acks.outstanding() > limits.in_flight {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'reading,
                        _ = acks.at_most(limits.in_flight / 2) => {}
                    }
                } else {
                    break;
                }
            }
            let n = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = stream.read(&mut buffer) => match read {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "syslog {} read failed", source.label());
                        break;
                    }
                },
            };
            if n == 0 {
                break;
            }
            framer.push(&buffer[..n]);
            // One clock reading per read: the messages of one read arrived together.
            let now_ms = chrono::Utc::now().timestamp_millis();
            while let Some(frame) = framer.next_frame() {
                take(&syslog, source, frame, peer, now_ms, &acks).await;
            }
        }
        if let Some(frame) = framer.finish() {
            let now_ms = chrono::Utc::now().timestamp_millis();
            take(&syslog, source, frame, peer, now_ms, &acks).await;
        }
        if tokio::time::timeout(limits.ack_timeout, acks.at_most(0))
            .await
            .is_err()
        {
            tracing::warn!(%peer, outstanding = acks.outstanding(), "syslog {} connection closed before Kafka acknowledged all its events", source.label());
        }
        accounting.disconnected(source);
    }
}

/// Counts one frame and sends its event, or rejects it.
async fn take(
    syslog: &Syslog,
    source: Source,
    frame: logstream_core::ingest::framing::Frame,
    peer: SocketAddr,
    now_ms: i64,
    acks: &Arc<Acks>,
) {
    let accounting = &syslog.accounting;
    accounting.received(source, 1);
    let record = match frame {
        Err(e) => {
            accounting.rejected(source, e.reason());
            tracing::debug!(%peer, error = %e, "syslog tcp frame rejected");
            return;
        }
        Ok(message) => match syslog.record(message, peer, now_ms) {
            Ok(record) => record,
            Err(e) => {
                accounting.rejected(source, e.reason);
                tracing::debug!(%peer, error = %e, "syslog tcp message rejected");
                return;
            }
        },
    };
    if let Err(e) = syslog.publisher.send(&record, None, acks).await {
        syslog.publisher.refused(source, &e);
        tracing::warn!(%peer, error = %e, "kafka refused a syslog tcp message");
    }
}
