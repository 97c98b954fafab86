//! Syslog over UDP (RFC 5426): one message per datagram. UDP cannot wait, so a message that
//! cannot be handed to Kafka at once (breaker open, producer queue full) is dropped and counted,
//! never hidden.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::Syslog;
use crate::accounting::{DropReason, Source};
use crate::publisher::{Acks, SendError};

const SOURCE: Source = Source::SyslogUdp;

pub async fn run(socket: UdpSocket, syslog: Arc<Syslog>, shutdown: CancellationToken) {
    let acks = Acks::new(SOURCE);
    let mut buffer = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(error = %e, "syslog udp receive failed");
                    continue;
                }
            },
        };
        let accounting = &syslog.accounting;
        accounting.received(SOURCE, 1);
        let record = match syslog.record(&buffer[..n], peer) {
            Ok(record) => record,
            Err(e) => {
                accounting.rejected(SOURCE, e.reason);
                tracing::debug!(%peer, error = %e, "syslog udp message rejected");
                continue;
            }
        };
        if !syslog.publisher.available() {
            accounting.dropped(SOURCE, DropReason::Unavailable, 1);
            continue;
        }
        match syslog.publisher.try_send(&record, None, &acks) {
            Ok(()) => {}
            Err(SendError::Full) => accounting.dropped(SOURCE, DropReason::Overflow, 1),
            Err(SendError::Refused(e)) => {
                accounting.rejected(SOURCE, "kafka_refused");
                tracing::warn!(%peer, error = %e, "kafka refused a syslog udp message");
            }
        }
    }
}
