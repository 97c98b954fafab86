//! The batch's alert changes as the columns of `alerts` (one array per column, for an `UNNEST`
//! upsert), and its transitions as `alert_outbox` rows with their published JSON. Pure: the
//! sink runs the statements.

use chrono::{DateTime, Utc};
use logstream_core::detect::episodes::Transition;
use serde_json::json;

use crate::messages::AlertChange;

/// One array per column of `alerts`, row i across all of them.
#[derive(Default)]
pub struct AlertColumns {
    pub kinds: Vec<&'static str>,
    pub severities: Vec<&'static str>,
    pub keys: Vec<String>,
    pub first_seen: Vec<DateTime<Utc>>,
    pub last_seen: Vec<DateTime<Utc>>,
    pub counts: Vec<i64>,
    /// JSON arrays of sample messages.
    pub samples: Vec<String>,
    pub statuses: Vec<&'static str>,
    pub partitions: Vec<i32>,
}

/// One array per column of `alert_outbox`.
#[derive(Default)]
pub struct OutboxColumns {
    pub kinds: Vec<&'static str>,
    pub keys: Vec<String>,
    pub first_seen: Vec<DateTime<Utc>>,
    pub partitions: Vec<i32>,
    pub transitions: Vec<&'static str>,
    /// The published record: the episode as of the transition.
    pub payloads: Vec<String>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn status(resolved: bool) -> &'static str {
    if resolved {
        "resolved"
    } else {
        "firing"
    }
}

/// The rows of `alerts`: the last state of each episode in `changes`.
pub fn alert_columns(changes: &[AlertChange]) -> AlertColumns {
    let mut c = AlertColumns::default();
    let mut seen = std::collections::HashMap::new();
    for change in changes.iter().rev() {
        let e = &change.change.episode;
        let id = (e.kind, e.key.as_str(), e.first_seen_ms, change.partition);
        if seen.insert(id, ()).is_some() {
            continue; // a later change of the same episode is already in
        }
        c.kinds.push(e.kind.as_str());
        c.severities.push(e.severity.as_str());
        c.keys.push(e.key.clone());
        c.first_seen.push(time(e.first_seen_ms));
        c.last_seen.push(time(e.last_seen_ms));
        c.counts.push(i64::try_from(e.count).unwrap_or(i64::MAX));
        c.samples.push(json!(e.samples).to_string());
        c.statuses.push(status(e.resolved));
        c.partitions.push(change.partition);
    }
    c
}

/// The rows of `alert_outbox`: every transition in `changes`, in order.
pub fn outbox_columns(changes: &[AlertChange]) -> OutboxColumns {
    let mut c = OutboxColumns::default();
    for change in changes {
        let Some(transition) = change.change.transition else {
            continue;
        };
        let e = &change.change.episode;
        let transition = match transition {
            Transition::Fired => "fired",
            Transition::Resolved => "resolved",
        };
        c.kinds.push(e.kind.as_str());
        c.keys.push(e.key.clone());
        c.first_seen.push(time(e.first_seen_ms));
        c.partitions.push(change.partition);
        c.transitions.push(transition);
        c.payloads.push(
            json!({
                "kind": e.kind.as_str(),
                "severity": e.severity.as_str(),
                "key": e.key,
                "transition": transition,
                "status": status(e.resolved),
                "first_seen": time(e.first_seen_ms),
                "last_seen": time(e.last_seen_ms),
                "count": e.count,
                "samples": e.samples,
                "source_partition": change.partition,
                // When the collector read the event that made the transition.
                "read_at": change.change.read_ms.map(time),
            })
            .to_string(),
        );
    }
    c
}
