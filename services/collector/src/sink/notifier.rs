//! Pushes alert transitions out of the system: to Alertmanager's API v2 (`POST /api/v2/alerts`:
//! firing alerts repeated every `repeat` so Alertmanager keeps them, `endsAt` on resolve) and
//! to a generic webhook (each transition's JSON, as on `logs.alerts`). Fed by the publisher, so
//! only the collector that publishes notifies; when it starts leading, the alerts firing in
//! PostgreSQL are posted again. A target that fails is retried at the next repeat; storage and
//! publishing never wait for it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use logstream_service::shutdown::CancellationToken;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Most webhook deliveries kept for retrying; older ones are dropped (and counted).
const MAX_WEBHOOK_BACKLOG: usize = 10_000;

/// What the publisher tells the notifier.
#[derive(Debug)]
pub enum Notice {
    /// This collector publishes now: post what is firing.
    Leading,
    /// A transition as published on logs.alerts.
    Transition(Value),
    /// A transition the fast lane sent and notified once already: kept to repeat only.
    Repeat(Value),
    /// From the fast lane: notified once now, not kept (the publisher's notifier repeats it).
    Once(Value),
}

pub struct Notifier {
    pub http: reqwest::Client,
    /// Alertmanager's base URL (`http://host:9093`).
    pub alertmanager: Option<String>,
    pub webhook: Option<String>,
    pub pool: PgPool,
    pub repeat: Duration,
    pub metrics: Metrics,
}

/// What is to be sent.
#[derive(Default)]
struct Outbox {
    /// Alertmanager alerts firing, by episode.
    firing: BTreeMap<String, Value>,
    /// Alertmanager resolutions not accepted yet.
    resolved: Vec<Value>,
    /// Webhook deliveries not accepted yet, oldest first.
    webhook: VecDeque<Value>,
}

impl Notifier {
    pub async fn run(self, mut notices: mpsc::Receiver<Notice>, shutdown: CancellationToken) {
        let mut out = Outbox::default();
        let mut tick = tokio::time::interval(self.repeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                notice = notices.recv() => match notice {
                    None => return,
                    Some(Notice::Leading) => self.load_firing(&mut out).await,
                    Some(Notice::Transition(published)) => {
                        self.take(&mut out, published);
                        self.send(&mut out, false).await;
                    }
                    Some(Notice::Repeat(published)) => self.keep_firing(&mut out, &published),
                    Some(Notice::Once(published)) => self.once(&mut out, published).await,
                },
                _ = tick.tick() => self.send(&mut out, true).await,
            }
        }
    }

    /// The episodes firing in PostgreSQL, to post again.
    async fn load_firing(&self, out: &mut Outbox) {
        if self.alertmanager.is_none() {
            return;
        }
        let rows: Result<Vec<(String,)>, _> = sqlx::query_as(
            "SELECT json_build_object('kind', kind, 'severity', severity, 'key', key,
                    'status', status, 'first_seen', first_seen, 'last_seen', last_seen,
                    'count', count, 'samples', sample, 'source_partition', source_partition)::text
             FROM alerts WHERE status = 'firing'",
        )
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => {
                for (text,) in rows {
                    if let Ok(payload) = serde_json::from_str::<Value>(&text) {
                        out.firing.insert(episode_id(&payload), am_alert(&payload));
                    }
                }
                self.send(out, true).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read firing alerts to notify"),
        }
    }

    /// Files one transition for the targets.
    fn take(&self, out: &mut Outbox, payload: Value) {
        if self.alertmanager.is_some() {
            let id = episode_id(&payload);
            if payload["transition"] == "resolved" {
                out.firing.remove(&id);
                out.resolved.push(am_alert(&payload));
            } else {
                out.firing.insert(id, am_alert(&payload));
            }
        }
        if self.webhook.is_some() {
            self.queue_webhook(out, payload);
        }
    }

    /// Queues a webhook delivery, dropping (and counting) the oldest past the backlog's bound.
    fn queue_webhook(&self, out: &mut Outbox, payload: Value) {
        if out.webhook.len() >= MAX_WEBHOOK_BACKLOG {
            out.webhook.pop_front();
            self.metrics.alerts.notifications_dropped.inc();
        }
        out.webhook.push_back(payload);
    }

    /// Keeps a firing transition notified already, to repeat it.
    fn keep_firing(&self, out: &mut Outbox, payload: &Value) {
        if self.alertmanager.is_some() && payload["transition"] != "resolved" {
            out.firing.insert(episode_id(payload), am_alert(payload));
        }
    }

    /// Notifies one transition now without keeping it for repeats (a webhook delivery that
    /// fails waits with the others).
    async fn once(&self, out: &mut Outbox, payload: Value) {
        if let Some(base) = &self.alertmanager {
            let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            if let Err(e) = self.post(&url, &json!([am_alert(&payload)])).await {
                self.failed("alertmanager", &e);
            }
        }
        if self.webhook.is_some() {
            self.queue_webhook(out, payload);
            self.send(out, false).await;
        }
    }

    /// Sends what waits: resolutions and webhook deliveries always, the firing alerts when
    /// `repeat` (else only the new ones went into `firing` and are sent with the rest).
    async fn send(&self, out: &mut Outbox, repeat: bool) {
        if let Some(base) = &self.alertmanager {
            let mut batch: Vec<Value> = std::mem::take(&mut out.resolved);
            if repeat || !batch.is_empty() || !out.firing.is_empty() {
                batch.extend(out.firing.values().cloned());
            }
            if !batch.is_empty() {
                let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
                if let Err(e) = self.post(&url, &Value::Array(batch.clone())).await {
                    self.failed("alertmanager", &e);
                    // Resolutions are kept for the next try; firing ones are always resent.
                    out.resolved
                        .extend(batch.into_iter().filter(|a| a.get("endsAt").is_some()));
                }
            }
        }
        if let Some(url) = &self.webhook {
            while let Some(payload) = out.webhook.front() {
                if let Err(e) = self.post(url, payload).await {
                    self.failed("webhook", &e);
                    break;
                }
                out.webhook.pop_front();
            }
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(), String> {
        let response = self
            .http
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }

    fn failed(&self, target: &str, error: &str) {
        tracing::warn!(target, %error, "alert notification failed; retrying later");
        self.metrics
            .alerts
            .notifications_failed
            .with_label_values(&[target])
            .inc();
    }
}

/// The episode a transition belongs to.
fn episode_id(payload: &Value) -> String {
    format!(
        "{}|{}|{}|{}",
        payload["kind"], payload["key"], payload["first_seen"], payload["source_partition"]
    )
}

/// An Alertmanager API v2 alert of a transition's episode (`endsAt` once resolved).
fn am_alert(payload: &Value) -> Value {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let kind = text(&payload["kind"]);
    let mut alert = json!({
        "labels": {
            "alertname": format!("logstream_{kind}"),
            "kind": kind,
            "key": text(&payload["key"]),
            "severity": text(&payload["severity"]),
            "source": "logstream",
        },
        "annotations": {
            "summary": format!("{} on {} ({} events)", kind, text(&payload["key"]), payload["count"]),
            "samples": payload["samples"].to_string(),
        },
        "startsAt": payload["first_seen"],
    });
    if payload["status"] == "resolved" {
        alert["endsAt"] = payload["last_seen"].clone();
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_alerts_carry_labels_and_end_when_resolved() {
        let payload = json!({"kind": "sql_injection", "key": "ip:192.0.2.1", "severity": "critical",
            "status": "resolved", "transition": "resolved", "first_seen": "2026-01-01T00:00:00Z",
            "last_seen": "2026-01-01T00:05:00Z", "count": 7, "samples": ["GET /x"], "source_partition": 3});
        let alert = am_alert(&payload);
        assert_eq!(alert["labels"]["alertname"], "logstream_sql_injection");
        assert_eq!(alert["labels"]["key"], "ip:192.0.2.1");
        assert_eq!(alert["endsAt"], "2026-01-01T00:05:00Z");
        let firing = am_alert(&json!({"kind": "scanner", "status": "firing", "first_seen": "t"}));
        assert!(firing.get("endsAt").is_none());
    }
}
