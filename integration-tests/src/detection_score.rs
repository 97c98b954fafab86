//! Scores alerts against ground truth (pure; used by `detection-bench`).
//!
//! The truth is the generator's `label` header: every event an anomaly injected or changed is
//! labelled `<anomaly>:<episode>` (brute force and scanner add the attacker: `scanner:2.1`).
//! One labelled episode becomes one expected alert per key the detectors key it by: a spike is
//! a `rate_spike` of each service it touched, an error burst an `error_rate` of its service,
//! each attack kind one alert per attacking address (`ip:<address>`).
//!
//! An alert (a `fired` transition) matches an expected one of its kind and key when the event
//! that fired it lies within the labelled events' span (with [`SLACK_MS`] either side);
//! `brute_force` alerts keyed by user (`user:<name>`, one user failing from many addresses)
//! are right when any brute-force episode was on, but detect no address's episode. Per kind: recall is the share of expected
//! alerts raised, precision the share of alerts that were the first match of an expected one
//! (a repeat for the same episode counts against it), latency the time from the event that
//! fired the alert to the alert's record on `logs.alerts`.

use std::collections::BTreeMap;

/// How far outside its labelled events' span an alert may fire and still match.
pub const SLACK_MS: i64 = 2_000;

/// One labelled event, as read from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The `label` header.
    pub label: String,
    /// The record key (the service).
    pub service: String,
    /// The client address of an access-log event.
    pub client_ip: Option<String>,
    /// Event time.
    pub at_ms: i64,
}

/// One `fired` transition read from `logs.alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub kind: String,
    pub key: String,
    /// The event time of the event that fired it (the episode's `first_seen`).
    pub first_seen_ms: i64,
    /// The record's timestamp on `logs.alerts`.
    pub published_ms: i64,
    /// When the collector read the event that fired it (`read_at`).
    pub read_ms: Option<i64>,
}

/// One alert the detectors should raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub kind: String,
    pub key: String,
    pub episode: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub events: u64,
}

/// The alert kind and episode a label stands for, and whether it is keyed by client address.
fn kind_of(label: &str) -> Option<(&'static str, &str, bool)> {
    let (anomaly, episode) = label.split_once(':')?;
    let (kind, by_address) = match anomaly {
        "spike" => ("rate_spike", false),
        "error_burst" => ("error_rate", false),
        "critical" => ("critical", false),
        "sql_injection" => ("sql_injection", true),
        "xss" => ("xss", true),
        "path_traversal" => ("path_traversal", true),
        "brute_force" => ("brute_force", true),
        "scanner" => ("scanner", true),
        _ => return None,
    };
    Some((kind, episode, by_address))
}

/// The expected alerts of the labelled events.
pub fn expected(labelled: &[Labelled]) -> Vec<Expected> {
    let mut by_id: BTreeMap<(&str, String, &str), Expected> = BTreeMap::new();
    for event in labelled {
        let Some((kind, episode, by_address)) = kind_of(&event.label) else {
            continue;
        };
        let key = match (by_address, &event.client_ip) {
            (true, Some(ip)) => format!("ip:{ip}"),
            (true, None) => continue,
            (false, _) => event.service.clone(),
        };
        let entry = by_id
            .entry((kind, key.clone(), episode))
            .or_insert_with(|| Expected {
                kind: kind.to_owned(),
                key,
                episode: episode.to_owned(),
                first_ms: event.at_ms,
                last_ms: event.at_ms,
                events: 0,
            });
        entry.first_ms = entry.first_ms.min(event.at_ms);
        entry.last_ms = entry.last_ms.max(event.at_ms);
        entry.events += 1;
    }
    by_id.into_values().collect()
}

/// The score of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindScore {
    pub expected: usize,
    pub detected: usize,
    pub alerts: usize,
    /// Alerts matching an expected alert already matched.
    pub repeats: usize,
    /// Alerts matching nothing expected.
    pub false_alerts: usize,
    /// Milliseconds from the firing event to the alert record, per detected expectation.
    pub latencies_ms: Vec<i64>,
    /// Milliseconds from the collector reading the firing event to the alert record.
    pub from_read_ms: Vec<i64>,
}

impl KindScore {
    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0)
            .then(|| (self.alerts - self.repeats - self.false_alerts) as f64 / self.alerts as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.detected as f64 / self.expected as f64)
    }

    /// The `q` quantile (0..=1) of the latencies from the event, nearest rank.
    pub fn latency_ms(&self, q: f64) -> Option<i64> {
        quantile(&self.latencies_ms, q)
    }

    /// The `q` quantile of the latencies from the collector's read.
    pub fn from_read_ms(&self, q: f64) -> Option<i64> {
        quantile(&self.from_read_ms, q)
    }
}

fn quantile(values: &[i64], q: f64) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// One user failing from many addresses.
fn is_user_keyed(alert: &Fired) -> bool {
    alert.kind == "brute_force" && alert.key.starts_with("user:")
}

fn matches(expected: &Expected, alert: &Fired) -> bool {
    let in_span = alert.first_seen_ms >= expected.first_ms - SLACK_MS
        && alert.first_seen_ms <= expected.last_ms + SLACK_MS;
    let key = alert.key == expected.key || is_user_keyed(alert);
    alert.kind == expected.kind && key && in_span
}

/// Scores `alerts` against `expected`, per kind (every kind either has).
pub fn score(expected: &[Expected], alerts: &[Fired]) -> BTreeMap<String, KindScore> {
    let mut scores: BTreeMap<String, KindScore> = BTreeMap::new();
    for e in expected {
        scores.entry(e.kind.clone()).or_default().expected += 1;
    }
    let mut alerts: Vec<&Fired> = alerts.iter().collect();
    alerts.sort_by_key(|a| a.first_seen_ms);
    let mut detected = vec![false; expected.len()];
    for alert in alerts {
        let s = scores.entry(alert.kind.clone()).or_default();
        s.alerts += 1;
        if is_user_keyed(alert) {
            // Right when a brute-force episode was on, but it names no address to detect.
            if !expected.iter().any(|e| matches(e, alert)) {
                s.false_alerts += 1;
            }
            continue;
        }
        let open = expected
            .iter()
            .enumerate()
            .find(|(i, e)| !detected[*i] && matches(e, alert));
        match open {
            Some((i, _)) => {
                detected[i] = true;
                s.detected += 1;
                s.latencies_ms
                    .push(alert.published_ms - alert.first_seen_ms);
                if let Some(read) = alert.read_ms {
                    s.from_read_ms.push(alert.published_ms - read);
                }
            }
            None if expected.iter().any(|e| matches(e, alert)) => s.repeats += 1,
            None => s.false_alerts += 1,
        }
    }
    scores
}

/// Alerts a fixed threshold without baseline or hysteresis would raise: one per service and
/// tumbling window of `window_ms` holding at least `threshold` errors (`errors`: service and
/// event time of every error event).
pub fn fixed_threshold_alerts(errors: &[(String, i64)], window_ms: i64, threshold: u64) -> u64 {
    let mut windows: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    for (service, at) in errors {
        *windows
            .entry((service.as_str(), at.div_euclid(window_ms)))
            .or_default() += 1;
    }
    windows.values().filter(|n| **n >= threshold).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(label: &str, ip: Option<&str>, at_ms: i64) -> Labelled {
        Labelled {
            label: label.into(),
            service: "orders".into(),
            client_ip: ip.map(str::to_owned),
            at_ms,
        }
    }

    fn fired(kind: &str, key: &str, at: i64) -> Fired {
        Fired {
            kind: kind.into(),
            key: key.into(),
            first_seen_ms: at,
            published_ms: at + 40,
            read_ms: Some(at + 10),
        }
    }

    #[test]
    fn labels_become_one_expectation_per_kind_key_and_episode() {
        let events = [
            labelled("sql_injection:3", Some("10.0.0.1"), 1_000),
            labelled("sql_injection:3", Some("10.0.0.1"), 5_000),
            labelled("sql_injection:3", Some("10.0.0.2"), 2_000),
            labelled("scanner:3.1", Some("10.0.0.1"), 3_000),
            labelled("spike:1", None, 100),
            labelled("unknown:1", None, 100),
        ];
        let e = expected(&events);
        assert_eq!(e.len(), 4);
        let sqli = e
            .iter()
            .find(|x| x.kind == "sql_injection" && x.key == "ip:10.0.0.1")
            .expect("sqli");
        assert_eq!(
            (sqli.first_ms, sqli.last_ms, sqli.events),
            (1_000, 5_000, 2)
        );
        assert!(e
            .iter()
            .any(|x| x.kind == "rate_spike" && x.key == "orders"));
    }

    #[test]
    fn repeats_and_strays_count_against_precision() {
        let e = expected(&[
            labelled("xss:1", Some("10.0.0.1"), 10_000),
            labelled("xss:1", Some("10.0.0.1"), 20_000),
            labelled("xss:2", Some("10.0.0.1"), 90_000),
        ]);
        let alerts = [
            fired("xss", "ip:10.0.0.1", 10_000),
            fired("xss", "ip:10.0.0.1", 15_000), // a repeat within episode 1
            fired("xss", "ip:10.0.0.9", 15_000), // nothing labelled there
            fired("xss", "ip:10.0.0.1", 300_000), // long after
        ];
        let s = &score(&e, &alerts)["xss"];
        assert_eq!((s.expected, s.detected, s.alerts), (2, 1, 4));
        assert_eq!((s.repeats, s.false_alerts), (1, 2));
        assert_eq!(s.precision(), Some(0.25));
        assert_eq!(s.recall(), Some(0.5));
        assert_eq!(s.latency_ms(0.99), Some(40));
        assert_eq!(s.from_read_ms(0.5), Some(30));
    }

    #[test]
    fn user_keyed_brute_force_matches_its_time() {
        let e = expected(&[
            labelled("brute_force:2.1", Some("10.0.0.1"), 1_000),
            labelled("brute_force:2.2", Some("10.0.0.2"), 1_500),
        ]);
        let alerts = [
            fired("brute_force", "ip:10.0.0.1", 1_000),
            fired("brute_force", "user:admin", 1_500),
        ];
        let s = &score(&e, &alerts)["brute_force"];
        assert_eq!((s.detected, s.false_alerts, s.repeats), (1, 0, 0));
        assert_eq!(s.precision(), Some(1.0));
    }

    #[test]
    fn fixed_threshold_counts_windows_over_it() {
        let errors: Vec<(String, i64)> = (0..30)
            .map(|i| ("a".to_owned(), i * 1_000))
            .chain((0..5).map(|i| ("b".to_owned(), i)))
            .collect();
        assert_eq!(fixed_threshold_alerts(&errors, 10_000, 10), 3);
        assert_eq!(fixed_threshold_alerts(&errors, 10_000, 5), 4);
    }
}
