//! Syslog in: UDP (one message per datagram, `udp`) and TCP (RFC 6587 framing, `tcp`). A
//! message is read as the collector reads a record without a `content-type` (RFC 5424, RFC 3164
//! with or without `<PRI>`, else a plain message): service from the app-name (or tag), host from
//! the hostname, else the sender's address.

pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use logstream_core::ingest::text_line::{self, LineFormat};
use logstream_core::ingest::LineError;

use crate::accounting::Accounting;
use crate::publisher::{Encoded, Publisher};

/// What both listeners share.
pub struct Syslog {
    pub publisher: Arc<Publisher>,
    pub accounting: Arc<Accounting>,
    /// Service of a message that names none.
    pub default_service: String,
    /// Longest message accepted.
    pub max_message_bytes: usize,
}

impl Syslog {
    /// The record one message becomes, or why it cannot be one.
    fn record(&self, message: &[u8], peer: SocketAddr) -> Result<Encoded, LineError> {
        let message = trim(message);
        if message.is_empty() {
            return Err(LineError::new("empty", "empty message", None));
        }
        if message.len() > self.max_message_bytes {
            return Err(LineError::new(
                "too_long",
                format!("{} bytes is more than the limit", message.len()),
                None,
            ));
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut event =
            text_line::event_from_line(LineFormat::Auto, message, &self.default_service, now_ms)?;
        if event.host.is_none() {
            event.host = Some(peer.ip().to_string());
        }
        Publisher::encode(&event)
            .map_err(|e| LineError::new("invalid_field", e.to_string(), Some("attributes")))
    }
}

/// A message without the line break (or NUL) a sender may have ended it with.
fn trim(message: &[u8]) -> &[u8] {
    let end = message
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
        .map_or(0, |i| i + 1);
    &message[..end]
}
