//! Detection: incidents and attacks found in the events as they are read, on event time, as
//! alert episodes. Pure and synchronous: the collector feeds each partition's decoded events to
//! its own [`Detectors`] (a service's events all meet in one partition) and drains the
//! [`Change`]s after each batch, to store them with the batch and publish the transitions.
//!
//! - `rates`: `error_rate`, `rate_spike`, `rate_drop` per service against a learned baseline;
//! - `injection`: `sql_injection`, `xss`, `path_traversal` in access-log requests;
//! - `access` + `bursts`: `brute_force` (failed logins per address, one user from many
//!   addresses; access logs and sshd/PAM lines) and `scanner` (client errors per address);
//! - `critical`: FATAL events and configured patterns, at once;
//! - `episodes`: one alert per (kind, key) while it lasts; `rules`: thresholds and windows.
//!
//! The whole state ([`State`]) serializes, so it can be stored with the offsets it reflects.

pub mod access;
pub mod bursts;
pub mod episodes;
pub mod injection;
pub mod rates;
pub mod rules;

use serde::{Deserialize, Serialize};

use crate::event::{Level, LogEvent};
use crate::needle::Needle;
use bursts::{Burst, Spread};
use episodes::{Change, Episodes, Hit, Kind, Severity};
use rates::{RateRules, Rates};
use rules::Rules;

/// How often (event time) idle burst keys are pruned.
const PRUNE_EVERY_MS: i64 = 10_000;

/// Everything the detectors remember.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub episodes: Episodes,
    rates: Rates,
    /// Failed logins per address.
    failures: Burst,
    /// Addresses per failing user.
    users: Spread,
    /// Client errors per address.
    client_errors: Burst,
    /// The highest event time seen.
    clock_ms: Option<i64>,
    pruned_ms: i64,
}

/// The detectors of one partition.
#[derive(Debug, Clone)]
pub struct Detectors {
    rules: Rules,
    rate_rules: RateRules,
    /// The critical rule's patterns, their searchers built once.
    critical: Vec<Needle>,
    state: State,
}

impl Detectors {
    pub fn new(rules: Rules) -> Self {
        Self::with_state(rules, State::default())
    }

    /// Detectors that go on from a stored state.
    pub fn with_state(rules: Rules, state: State) -> Self {
        let rate_rules = RateRules {
            errors: rules.error_rate.enabled.then_some(rules.error_rate),
            spike: rules.rate_spike.enabled.then_some(rules.rate_spike),
            drop: rules.rate_drop.enabled.then_some(rules.rate_drop),
            buckets: rules.window_seconds as usize,
            alpha: rules.baseline_alpha,
            warmup_buckets: rules.warmup_seconds,
        };
        let critical = rules
            .critical
            .patterns
            .iter()
            .map(|p| Needle::new(p))
            .collect();
        Self {
            rules,
            rate_rules,
            critical,
            state,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Reads one event.
    pub fn observe(&mut self, event: &LogEvent) {
        let at = event.timestamp_ms;
        self.advance(at);
        if self.rules.critical.enabled && self.is_critical(event) {
            self.state.episodes.hit(Hit {
                kind: Kind::Critical,
                key: &event.service,
                severity: Severity::Critical,
                at_ms: at,
                events: 1,
                sample: &event.message,
                quiet_ms: Some(i64::from(self.rules.critical.quiet_seconds) * 1000),
            });
        }
        let s = &mut self.state;
        let error = event.level >= Level::Error;
        s.rates.observe(
            &self.rate_rules,
            &mut s.episodes,
            &event.service,
            at,
            error,
            &event.message,
        );
        match access::request(event) {
            Some(request) => self.request(&request, at, &event.message),
            None => {
                if let Some(failure) = access::failed_daemon_login(&event.message) {
                    self.failed_login(&failure, at, &event.message);
                }
            }
        }
    }

    /// Notes that the events observed since the last stamp were read at `read_ms` (wall clock).
    pub fn stamp(&mut self, read_ms: i64) {
        self.state.episodes.stamp(read_ms);
    }

    /// Whether a critical alert fired and was not taken: it should go out now.
    pub fn urgent(&self) -> bool {
        self.state.episodes.urgent()
    }

    /// The critical alerts fired since the last call (see [`episodes::Episodes::take_urgent`]).
    pub fn take_urgent(&mut self) -> Vec<Change> {
        self.state.episodes.take_urgent()
    }

    /// What changed since the last drain.
    pub fn drain(&mut self) -> Vec<Change> {
        self.state.episodes.drain()
    }

    fn is_critical(&self, event: &LogEvent) -> bool {
        event.level == Level::Fatal || self.critical.iter().any(|p| p.is_in(&event.message))
    }

    /// Moves the event-time clock forward: rate buckets complete, quiet episodes resolve, idle
    /// burst keys are forgotten.
    fn advance(&mut self, at_ms: i64) {
        let s = &mut self.state;
        if s.clock_ms.is_some_and(|c| c >= at_ms) {
            return;
        }
        s.clock_ms = Some(at_ms);
        s.rates.advance(&self.rate_rules, &mut s.episodes, at_ms);
        s.episodes.expire(at_ms);
        if at_ms - s.pruned_ms >= PRUNE_EVERY_MS {
            s.pruned_ms = at_ms;
            let bf = &self.rules.brute_force;
            s.failures.prune(at_ms, i64::from(bf.window_seconds) * 1000);
            s.users
                .prune(at_ms, i64::from(bf.user_window_seconds) * 1000);
            s.client_errors
                .prune(at_ms, i64::from(self.rules.scanner.window_seconds) * 1000);
        }
    }

    /// An access-log request: an attack in it, a failed login, or a client error.
    fn request(&mut self, request: &access::Request, at: i64, message: &str) {
        let key = format!("ip:{}", request.client_ip);
        if self.rules.attacks.enabled {
            let found = injection::inspect(&request.path);
            let quiet_ms = Some(i64::from(self.rules.attacks.quiet_seconds) * 1000);
            for (kind, hit) in [
                (Kind::SqlInjection, found.sql_injection),
                (Kind::Xss, found.xss),
                (Kind::PathTraversal, found.path_traversal),
            ] {
                if hit {
                    self.state.episodes.hit(Hit {
                        kind,
                        key: &key,
                        severity: Severity::Critical,
                        at_ms: at,
                        events: 1,
                        sample: message,
                        quiet_ms,
                    });
                }
            }
            if found.any() {
                return;
            }
        }
        if let Some(failure) = access::failed_login(request) {
            self.failed_login(&failure, at, message);
        } else if (400..500).contains(&request.status) && self.rules.scanner.enabled {
            let rule = self.rules.scanner;
            let burst = self.state.client_errors.add(
                &key,
                at,
                rule.count as usize,
                i64::from(rule.window_seconds) * 1000,
            );
            self.burst_hit(
                Kind::Scanner,
                &key,
                burst,
                rule.count,
                at,
                message,
                rule.quiet_seconds,
            );
        }
    }

    /// A failed login: per address, and per user across addresses.
    fn failed_login(&mut self, failure: &access::LoginFailure, at: i64, message: &str) {
        let rule = self.rules.brute_force;
        if !rule.enabled {
            return;
        }
        let key = format!("ip:{}", failure.ip);
        let burst = self.state.failures.add(
            &key,
            at,
            rule.failures as usize,
            i64::from(rule.window_seconds) * 1000,
        );
        self.burst_hit(
            Kind::BruteForce,
            &key,
            burst,
            rule.failures,
            at,
            message,
            rule.quiet_seconds,
        );
        if let Some(user) = &failure.user {
            let key = format!("user:{user}");
            let spread = self.state.users.add(
                &key,
                &failure.ip,
                at,
                rule.user_ips as usize,
                i64::from(rule.user_window_seconds) * 1000,
            );
            self.burst_hit(
                Kind::BruteForce,
                &key,
                spread.is_some(),
                rule.user_ips,
                at,
                message,
                rule.quiet_seconds,
            );
        }
    }

    /// A burst opens an episode (counting the whole burst); while it is open, every further
    /// event extends it.
    #[allow(clippy::too_many_arguments)]
    fn burst_hit(
        &mut self,
        kind: Kind,
        key: &str,
        burst: bool,
        burst_events: u32,
        at: i64,
        message: &str,
        quiet_seconds: u32,
    ) {
        let open = self.state.episodes.is_open(kind, key);
        if !(open || burst) {
            return;
        }
        self.state.episodes.hit(Hit {
            kind,
            key,
            severity: Severity::Warning,
            at_ms: at,
            events: if open { 1 } else { u64::from(burst_events) },
            sample: message,
            quiet_ms: Some(i64::from(quiet_seconds) * 1000),
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::episodes::Transition;
    use super::*;

    pub(crate) fn event(at_ms: i64, level: Level, service: &str, message: &str) -> LogEvent {
        LogEvent {
            timestamp_ms: at_ms,
            level,
            service: service.to_owned(),
            component: None,
            host: None,
            message: message.to_owned(),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: None,
        }
    }

    fn access(at_ms: i64, ip: &str, method: &str, path: &str, status: u16) -> LogEvent {
        let mut e = event(
            at_ms,
            Level::Info,
            "web",
            &format!("{method} {path} {status}"),
        );
        e.attributes = Some(
            serde_json::json!({"http": {"client_ip": ip, "method": method, "path": path, "status": status}})
                .to_string(),
        );
        e
    }

    fn fired(changes: &[Change]) -> Vec<(Kind, String)> {
        changes
            .iter()
            .filter(|c| c.transition == Some(Transition::Fired))
            .map(|c| (c.episode.kind, c.episode.key.clone()))
            .collect()
    }

    /// `per_second` events of `service` per second from `from_s` to `to_s`, `errors` of them
    /// errors, evenly spread.
    fn traffic(
        d: &mut Detectors,
        service: &str,
        from_s: i64,
        to_s: i64,
        per_second: i64,
        errors: i64,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for s in from_s..to_s {
            for i in 0..per_second {
                let level = if i < errors {
                    Level::Error
                } else {
                    Level::Info
                };
                d.observe(&event(
                    s * 1000 + i * 1000 / per_second,
                    level,
                    service,
                    "m",
                ));
            }
            changes.extend(d.drain());
        }
        changes
    }

    #[test]
    fn steady_traffic_raises_nothing_and_an_error_burst_one_alert_fast() {
        let mut d = Detectors::new(Rules::default());
        assert!(fired(&traffic(&mut d, "payments", 0, 120, 100, 5)).is_empty());
        // Half the events become errors from second 120: the alert comes within that second.
        let mut first = None;
        for s in 120..180 {
            for i in 0..100 {
                let level = if i % 2 == 0 {
                    Level::Error
                } else {
                    Level::Info
                };
                d.observe(&event(
                    s * 1000 + i * 10,
                    level,
                    "payments",
                    "payment declined",
                ));
                let f = fired(&d.drain());
                if !f.is_empty() && first.is_none() {
                    first = Some((s * 1000 + i * 10, f));
                }
            }
        }
        let (at, alerts) = first.expect("the burst is found");
        assert_eq!(alerts, [(Kind::ErrorRate, "payments".to_owned())]);
        // The 10 s window's errors pass 3 × the baseline (and the floor) about 2.2 s in; the
        // alert comes with the event that makes it so.
        assert!((122_000..123_000).contains(&at), "found at {at} ms");
        // Back to normal: resolves once, and no new alert.
        let after = traffic(&mut d, "payments", 180, 240, 100, 5);
        let resolved = after
            .iter()
            .filter(|c| c.transition == Some(Transition::Resolved))
            .count();
        assert_eq!(resolved, 1);
        assert!(fired(&after).is_empty());
    }

    #[test]
    fn a_spike_is_one_alert_and_silence_a_drop() {
        let mut d = Detectors::new(Rules::default());
        traffic(&mut d, "web", 0, 60, 200, 0);
        let spike = traffic(&mut d, "web", 60, 70, 2000, 0);
        assert_eq!(fired(&spike), [(Kind::RateSpike, "web".to_owned())]);
        let mut d = Detectors::new(Rules::default());
        for s in 0..60 {
            traffic(&mut d, "web", s, s + 1, 200, 0);
            traffic(&mut d, "orders", s, s + 1, 200, 0);
        }
        let silent = traffic(&mut d, "orders", 60, 80, 200, 0);
        assert_eq!(fired(&silent), [(Kind::RateDrop, "web".to_owned())]);
    }

    #[test]
    fn a_spike_that_settles_at_a_new_level_resolves() {
        let mut d = Detectors::new(Rules::default());
        traffic(&mut d, "api", 0, 60, 100, 0);
        assert_eq!(
            fired(&traffic(&mut d, "api", 60, 75, 800, 0)),
            [(Kind::RateSpike, "api".to_owned())]
        );
        // Two and a half times the old rate from then on: the new normal, learned while the
        // episode is open, so it resolves and does not fire again.
        let after = traffic(&mut d, "api", 75, 200, 250, 0);
        let resolved = after
            .iter()
            .filter(|c| c.transition == Some(Transition::Resolved))
            .count();
        assert_eq!(resolved, 1);
        assert!(fired(&after).is_empty());
    }

    #[test]
    fn traffic_that_stays_far_higher_becomes_the_new_normal() {
        let mut d = Detectors::new(Rules::default());
        traffic(&mut d, "api", 0, 60, 100, 0);
        let higher = traffic(&mut d, "api", 60, 300, 1000, 0);
        assert_eq!(fired(&higher), [(Kind::RateSpike, "api".to_owned())]);
        let resolved = higher
            .iter()
            .filter(|c| c.transition == Some(Transition::Resolved))
            .count();
        assert_eq!(
            resolved, 1,
            "resolved once ten times the traffic is the usual"
        );
        // A spike over the new level is found again.
        let spike = traffic(&mut d, "api", 300, 315, 8000, 0);
        assert_eq!(fired(&spike), [(Kind::RateSpike, "api".to_owned())]);
    }

    #[test]
    fn a_traffic_spike_with_the_usual_error_share_is_no_error_incident() {
        let mut d = Detectors::new(Rules::default());
        assert!(fired(&traffic(&mut d, "api", 0, 60, 100, 5)).is_empty());
        let spike = traffic(&mut d, "api", 60, 75, 800, 40);
        assert_eq!(fired(&spike), [(Kind::RateSpike, "api".to_owned())]);
        // The same spike with a tenth of its events errors is both.
        let mut d = Detectors::new(Rules::default());
        traffic(&mut d, "api", 0, 60, 100, 5);
        let mut kinds: Vec<Kind> = fired(&traffic(&mut d, "api", 60, 75, 800, 400))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        kinds.sort();
        assert_eq!(kinds, [Kind::ErrorRate, Kind::RateSpike]);
    }

    #[test]
    fn attacks_are_one_alert_per_kind_and_address() {
        let mut d = Detectors::new(Rules::default());
        for i in 0..50 {
            d.observe(&access(
                i * 100,
                "203.0.113.5",
                "GET",
                "/api/v1/items?id=1%27%20OR%20%271%27%3D%271",
                403,
            ));
            d.observe(&access(
                i * 100 + 1,
                "198.51.100.2",
                "GET",
                "/api/v1/products?q=select+comfort",
                200,
            ));
        }
        assert_eq!(
            fired(&d.drain()),
            [(Kind::SqlInjection, "ip:203.0.113.5".to_owned())]
        );
    }

    #[test]
    fn brute_force_needs_eight_failures_and_a_typo_is_not_one() {
        let mut d = Detectors::new(Rules::default());
        d.observe(&access(0, "192.0.2.1", "POST", "/api/v1/login", 401));
        d.observe(&access(5_000, "192.0.2.1", "POST", "/api/v1/login", 401));
        d.observe(&access(9_000, "192.0.2.1", "POST", "/api/v1/login", 200));
        assert!(fired(&d.drain()).is_empty());
        for i in 0..8 {
            d.observe(&event(
                20_000 + i * 1000,
                Level::Info,
                "sshd",
                "Failed password for invalid user admin from 198.51.100.9 port 4022 ssh2",
            ));
        }
        assert_eq!(
            fired(&d.drain()),
            [(Kind::BruteForce, "ip:198.51.100.9".to_owned())]
        );
    }

    #[test]
    fn a_scanner_is_fourteen_client_errors_in_ninety_seconds() {
        let mut d = Detectors::new(Rules::default());
        for i in 0..13 {
            d.observe(&access(i * 5_000, "192.0.2.7", "GET", "/wp-admin/", 404));
        }
        assert!(fired(&d.drain()).is_empty());
        d.observe(&access(65_000, "192.0.2.7", "GET", "/.env", 404));
        assert_eq!(
            fired(&d.drain()),
            [(Kind::Scanner, "ip:192.0.2.7".to_owned())]
        );
    }

    #[test]
    fn fatal_events_alert_at_once() {
        let mut d = Detectors::new(Rules::default());
        d.observe(&event(900, Level::Error, "db", "disk 95% full"));
        assert!(!d.urgent());
        d.observe(&event(1_000, Level::Fatal, "db", "out of disk"));
        assert!(d.urgent(), "the alert should go out now");
        d.observe(&event(1_100, Level::Fatal, "db", "out of disk"));
        assert_eq!(fired(&d.drain()), [(Kind::Critical, "db".to_owned())]);
        assert!(!d.urgent());
        d.observe(&event(1_200, Level::Fatal, "db", "out of disk"));
        assert!(!d.urgent(), "the episode is open already");
    }

    #[test]
    fn fired_critical_alerts_are_taken_once_and_stay_among_the_changes() {
        let mut d = Detectors::new(Rules::default());
        d.observe(&event(1_000, Level::Fatal, "db", "out of disk"));
        d.stamp(5_000);
        d.observe(&event(1_100, Level::Fatal, "db", "out of disk"));
        let urgent = d.take_urgent();
        assert_eq!(fired(&urgent), [(Kind::Critical, "db".to_owned())]);
        assert_eq!(
            urgent[0].read_ms,
            Some(5_000),
            "stamped with when it was read"
        );
        assert!(d.take_urgent().is_empty(), "taken once");
        assert!(!d.urgent());
        assert_eq!(fired(&d.drain()), [(Kind::Critical, "db".to_owned())]);
    }

    #[test]
    fn a_critical_fire_soon_after_its_key_resolved_waits_for_its_batch() {
        let mut d = Detectors::new(Rules::default());
        d.observe(&event(1_000, Level::Fatal, "db", "out of disk"));
        d.stamp(10_000);
        assert_eq!(d.take_urgent().len(), 1);
        d.drain();
        // Far past the quiet time: the first episode resolves, and the same event fires the next.
        d.observe(&event(10_000_000, Level::Fatal, "db", "out of disk again"));
        d.stamp(11_000);
        assert!(
            d.take_urgent().is_empty(),
            "the resolve goes first, with the batch"
        );
        let changes = d.drain();
        let transitions: Vec<_> = changes.iter().map(|c| c.transition).collect();
        assert_eq!(
            transitions,
            [Some(Transition::Resolved), Some(Transition::Fired)],
            "in order in the batch"
        );
        // Resolved by a later ordinary event; a fire 5 s (read time) later still waits, one
        // past RESOLVE_ORDER_MS goes fast.
        d.observe(&event(20_000_000, Level::Info, "db", "fine"));
        d.stamp(100_000);
        d.drain();
        d.observe(&event(20_000_100, Level::Fatal, "db", "down"));
        d.stamp(105_000);
        assert!(d.take_urgent().is_empty(), "5 s after its key resolved");
        d.drain();
        d.observe(&event(30_000_000, Level::Info, "db", "fine"));
        d.stamp(200_000);
        d.drain();
        d.observe(&event(30_000_100, Level::Fatal, "db", "down"));
        d.stamp(200_000 + episodes::RESOLVE_ORDER_MS);
        assert_eq!(fired(&d.take_urgent()), [(Kind::Critical, "db".to_owned())]);
        d.observe(&event(20_000_100, Level::Fatal, "web", "crash"));
        d.stamp(40_000);
        assert_eq!(
            fired(&d.take_urgent()),
            [(Kind::Critical, "web".to_owned())]
        );
    }

    #[test]
    fn state_round_trips_and_goes_on() {
        let mut d = Detectors::new(Rules::default());
        for i in 0..14 {
            d.observe(&access(i * 1_000, "192.0.2.7", "GET", "/x", 404));
        }
        d.drain();
        let json = serde_json::to_string(d.state()).expect("serializes");
        let state: State = serde_json::from_str(&json).expect("deserializes");
        let mut again = Detectors::with_state(Rules::default(), state);
        again.observe(&access(15_000, "192.0.2.7", "GET", "/y", 404));
        let changes = again.drain();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].transition, None, "the same episode goes on");
    }

    proptest::proptest! {
        #[test]
        fn no_event_panics(
            at in proptest::prelude::any::<i64>(),
            level in 0usize..6,
            message in ".{0,120}",
            attributes in proptest::option::of(".{0,200}"),
            path in ".{0,120}",
            status in 0u16..700,
        ) {
            let mut d = Detectors::new(Rules::default());
            let mut e = event(at, Level::ALL[level], "svc", &message);
            e.attributes = attributes;
            d.observe(&e);
            d.observe(&access(at.saturating_add(1), "1.2.3.4", "GET", &path, status));
            d.observe(&event(at.saturating_sub(1_000_000), Level::Error, "svc", &message));
            let _ = d.drain();
        }
    }
}
