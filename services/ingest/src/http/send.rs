//! Sending a request's accepted events to Kafka, counted, and waiting until Kafka acknowledged
//! them all: what every HTTP endpoint that takes events does before it answers.

use std::sync::Arc;
use std::time::Instant;

use super::parse::{self, Parsed};
use super::Ingest;
use crate::accounting::{DropReason, Source};
use crate::publisher::{Acks, Encoded};

/// Why a request's events were not all acknowledged: answered with 503 and `Retry-After`.
pub struct Unsent {
    pub error: String,
    /// Events Kafka acknowledged (they are stored; a retry of the body repeats them).
    pub accepted: usize,
    pub failed: usize,
}

/// Counts the body's events (received, rejected), sends the accepted ones and waits for Kafka's
/// acknowledgements: how many were sent, or why not all. Events Kafka refuses as too large
/// become rejections of `parsed`.
pub async fn send(
    ingest: &Arc<Ingest>,
    parsed: &mut Parsed,
    traceparent: Option<&str>,
) -> Result<usize, Unsent> {
    let accounting = &ingest.accounting;
    accounting.received(Source::Http, parsed.received as u64);
    for (reason, n) in &parsed.rejected_by_reason {
        accounting.rejected_n(Source::Http, reason, *n);
    }
    let accepted = std::mem::take(&mut parsed.accepted);
    if !accepted.is_empty() && !ingest.publisher.available() {
        accounting.dropped(Source::Http, DropReason::Unavailable, accepted.len() as u64);
        return Err(Unsent {
            error: "Kafka is unavailable (circuit breaker open): nothing was sent".into(),
            accepted: 0,
            failed: 0,
        });
    }
    let started = Instant::now();
    let acks = Acks::new(Source::Http);
    let (handed, refused) = hand_over(ingest, &accepted, traceparent, &acks, parsed).await;
    let waited = tokio::time::timeout(ingest.settings.ack_timeout, acks.at_most(0)).await;
    accounting
        .metrics()
        .ack_seconds
        .with_label_values(&[Source::Http.label()])
        .observe(started.elapsed().as_secs_f64());
    let failed = acks.failed() + refused;
    if waited.is_err() || failed > 0 {
        let unacknowledged = failed + acks.outstanding();
        let why = if waited.is_err() {
            "did not acknowledge in time"
        } else {
            "failed to take"
        };
        let sent = handed + refused;
        return Err(Unsent {
            error: format!("Kafka {why} {unacknowledged} of {sent} events; send the body again"),
            accepted: sent.saturating_sub(unacknowledged),
            failed: unacknowledged,
        });
    }
    Ok(handed)
}

/// Hands the accepted events to Kafka; how many were handed, and how many Kafka refused for
/// its own reasons (those it refused for theirs, too large, are rejections of `parsed`).
async fn hand_over(
    ingest: &Ingest,
    accepted: &[(usize, Encoded)],
    traceparent: Option<&str>,
    acks: &Arc<Acks>,
    parsed: &mut Parsed,
) -> (usize, usize) {
    let (mut handed, mut refused) = (0, 0);
    for (line, record) in accepted {
        match ingest.publisher.send(record, traceparent, acks).await {
            Ok(()) => handed += 1,
            Err(e) if ingest.publisher.refused(Source::Http, &e) => {
                parsed.reject(parse::Rejection {
                    line: *line,
                    error: format!("Kafka refused the event: {e}"),
                    field: None,
                    reason: "too_large_for_kafka",
                });
            }
            Err(_) => refused += 1,
        }
    }
    (handed, refused)
}
