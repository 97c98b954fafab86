//! Syslog in: UDP (one message per datagram, `udp`), TCP (RFC 6587 framing, `tcp`) and TLS
//! (RFC 5425: TCP's framing inside TLS, `tls` reads the certificate). A
//! message is read as the collector reads a record without a `content-type` (RFC 5424, RFC 3164
//! with or without `<PRI>`, else a plain message): service from the app-name (or tag), host from
//! the hostname, else the sender's address.

pub mod tcp;
pub mod tls;
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
    /// The record one message becomes, or why it cannot be one; `now_ms` dates a message
    /// without a time (and gives RFC 3164 its year). A syslog line the collector will read as
    /// this service reads it goes as it came (`text/syslog-*`, as the generator sends them);
    /// anything else (a plain line, replaced bytes, a host taken from the sender) as JSON.
    fn record(
        &self,
        mut message: Vec<u8>,
        peer: SocketAddr,
        now_ms: i64,
    ) -> Result<Encoded, LineError> {
        message.truncate(trimmed_len(&message));
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
        let mut event = if message.trim_ascii_start().starts_with(b"{") {
            text_line::event_from_line(LineFormat::Auto, &message, &self.default_service, now_ms)?
        } else {
            match Publisher::line_as_is(message, &self.default_service, now_ms)? {
                Ok(as_is) => return Ok(as_is),
                Err(event) => event,
            }
        };
        if event.host.is_none() {
            event.host = Some(peer.ip().to_string());
        }
        Publisher::encode(&event)
            .map_err(|e| LineError::new("invalid_field", e.to_string(), Some("attributes")))
    }
}

/// The length of a message without the line break (or NUL) a sender may have ended it with.
fn trimmed_len(message: &[u8]) -> usize {
    message
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
        .map_or(0, |i| i + 1)
}
