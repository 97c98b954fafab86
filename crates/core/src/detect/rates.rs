//! Per-service rates on event time, against a learned baseline: `error_rate` (errors),
//! `rate_spike` (all events far above normal) and `rate_drop` (a service falling silent).
//!
//! Each service keeps a ring of one-second buckets spanning the window (events and errors).
//! The window's sums are tested on every event, so an alert fires as soon as its condition
//! holds, not when a window closes. The baseline is an exponentially weighted moving average of
//! completed buckets, learned only from buckets that are not anomalous themselves (an attack
//! does not teach itself as normal), and used only after a warm-up. A condition must hold against an
//! absolute floor *and* a relative jump; an episode resolves once the window has stayed under
//! the clear ratio of its threshold for `clear_buckets` seconds (hysteresis).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::episodes::{Episodes, Hit, Kind, Severity};
use super::rules::{DropRule, RateRule};

/// Seconds traffic must stay far above its baseline before it is learned as the new level:
/// a spike is shorter, a service that grew for good is not alerted on forever.
pub const ADAPT_AFTER_BUCKETS: u32 = 60;

/// Width of one bucket.
pub const BUCKET_MS: i64 = 1_000;
/// Most services tracked per detector set (more count under "other").
pub const MAX_SERVICES: usize = 1_000;

/// What one service's window holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    /// Events and errors per bucket, ring indexed by bucket number modulo the length.
    events: Vec<u64>,
    errors: Vec<u64>,
    /// Baselines per bucket (EWMA), None before the first completed bucket.
    events_baseline: Option<f64>,
    errors_baseline: Option<f64>,
    /// Completed buckets learned from.
    learned: u32,
    /// Completed buckets in a row that were calm, per kind (for resolving).
    calm: HashMap<Kind, u32>,
    /// Completed buckets in a row whose events were far above the baseline.
    #[serde(default)]
    high: u32,
}

/// The rates of every service seen on one partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rates {
    services: HashMap<String, Series>,
    /// The bucket the clock is in (event time).
    bucket: Option<i64>,
}

/// The rules rates are tested against.
#[derive(Debug, Clone, Copy)]
pub struct RateRules {
    pub errors: Option<RateRule>,
    pub spike: Option<RateRule>,
    pub drop: Option<DropRule>,
    pub buckets: usize,
    pub alpha: f64,
    pub warmup_buckets: u32,
}

impl Rates {
    /// Counts one event of `service` at `at_ms` and tests the window; `error` when its level is
    /// ERROR or above.
    pub fn observe(
        &mut self,
        rules: &RateRules,
        episodes: &mut Episodes,
        service: &str,
        at_ms: i64,
        error: bool,
        sample: &str,
    ) {
        let bucket = at_ms.div_euclid(BUCKET_MS);
        let now = self.bucket.unwrap_or(bucket);
        if bucket + rules.buckets as i64 <= now {
            return; // older than the window: nothing to count it in
        }
        let service = if self.services.contains_key(service) || self.services.len() < MAX_SERVICES {
            service
        } else {
            "other"
        };
        let series = self
            .services
            .entry(service.to_owned())
            .or_insert_with(|| Series {
                events: vec![0; rules.buckets],
                errors: vec![0; rules.buckets],
                ..Series::default()
            });
        let slot = bucket.rem_euclid(rules.buckets as i64) as usize;
        series.events[slot] += 1;
        if error {
            series.errors[slot] += 1;
        }
        let warm = series.learned >= rules.warmup_buckets;
        if let (Some(rule), true) = (&rules.errors, error && warm) {
            let sum: u64 = series.errors.iter().sum();
            let events: u64 = series.events.iter().sum();
            if sum as f64 >= error_threshold(rule, series, events, rules.buckets) {
                episodes.hit(rate_hit(Kind::ErrorRate, service, at_ms, sample));
            }
        }
        if let (Some(rule), true) = (&rules.spike, warm) {
            let sum: u64 = series.events.iter().sum();
            if above(rule, sum, series.events_baseline, rules.buckets) {
                episodes.hit(rate_hit(Kind::RateSpike, service, at_ms, sample));
            }
        }
    }

    /// Moves the clock to `at_ms`: every bucket completed since is learned from (or resolves
    /// episodes), and silent services are tested for a drop.
    pub fn advance(&mut self, rules: &RateRules, episodes: &mut Episodes, at_ms: i64) {
        let bucket = at_ms.div_euclid(BUCKET_MS);
        let Some(mut now) = self.bucket else {
            self.bucket = Some(bucket);
            return;
        };
        // At most one window of buckets to complete (a jump in time empties them all).
        let jump = (bucket - now).min(rules.buckets as i64);
        let n = rules.buckets as i64;
        for _ in 0..jump.max(0) {
            now += 1;
            let slot = now.rem_euclid(n) as usize;
            for (service, series) in &mut self.services {
                complete(rules, episodes, service, series, slot, now * BUCKET_MS);
            }
        }
        self.bucket = Some(self.bucket.map_or(bucket, |b| b.max(bucket)));
    }

    pub fn services(&self) -> usize {
        self.services.len()
    }
}

/// One bucket of a service completes: episodes that have calmed down resolve, a drop is tested,
/// the bucket is learned from (unless anomalous); then the slot is emptied for the bucket that
/// starts.
fn complete(
    rules: &RateRules,
    episodes: &mut Episodes,
    service: &str,
    series: &mut Series,
    slot: usize,
    at_ms: i64,
) {
    // The window of completed buckets: all but the slot that is about to start again.
    let events_sum: u64 = series.events.iter().sum::<u64>() - series.events[slot];
    let errors_sum: u64 = series.errors.iter().sum::<u64>() - series.errors[slot];
    let n = rules.buckets;
    for (kind, rule, sum) in [
        (Kind::ErrorRate, rules.errors, errors_sum),
        (Kind::RateSpike, rules.spike, events_sum),
    ] {
        let Some(rule) = rule else { continue };
        if !episodes.is_open(kind, service) {
            continue;
        }
        let limit = match kind {
            Kind::ErrorRate => error_threshold(&rule, series, events_sum, n),
            _ => threshold(&rule, series.events_baseline, n),
        };
        let calm = series.calm.entry(kind).or_default();
        if (sum as f64) < rule.clear_ratio * limit {
            *calm += 1;
            if *calm >= rule.clear_buckets {
                episodes.resolve(kind, service, at_ms);
                *calm = 0;
            }
        } else {
            *calm = 0;
        }
    }
    if let (Some(rule), Some(base)) = (rules.drop, series.events_baseline) {
        let expected = base * (n - 1) as f64;
        let open = episodes.is_open(Kind::RateDrop, service);
        if series.learned >= rules.warmup_buckets && expected >= rule.min_expected {
            if !open && (events_sum as f64) <= rule.ratio * expected {
                episodes.hit(rate_hit(Kind::RateDrop, service, at_ms, "event rate fell"));
            } else if open && (events_sum as f64) >= rule.clear_ratio * expected {
                episodes.resolve(Kind::RateDrop, service, at_ms);
            }
        }
    }
    learn(rules, series, (slot + n - 1) % n);
    series.events[slot] = 0;
    series.errors[slot] = 0;
}

/// Learns the baselines from the bucket in `ended` (the one that just ended), unless the
/// bucket itself is far above the baseline (or, for events, far below it): an anomaly must not
/// teach itself as normal. Buckets between are learned from even while an episode is open, so
/// a lasting change of level (traffic settling at twice its old rate) becomes the new normal and
/// the episode it opened resolves; traffic far above the baseline for longer than
/// [`ADAPT_AFTER_BUCKETS`] seconds is learned from too (a service that grew for good).
fn learn(rules: &RateRules, series: &mut Series, ended: usize) {
    let n = rules.buckets;
    let warm = series.learned >= rules.warmup_buckets;
    let (e, r) = (series.events[ended] as f64, series.errors[ended] as f64);
    let usual = |value: f64, baseline: Option<f64>, rule: Option<RateRule>| {
        !warm
            || match (baseline, rule) {
                (Some(b), Some(rule)) => value < rule.ratio * b.max(rule.min_expected / n as f64),
                _ => true,
            }
    };
    // Only where drops are watched (enough expected): sparse services have empty seconds.
    let not_a_drop = match (rules.drop, series.events_baseline) {
        (Some(drop), Some(b)) if warm && b * (n - 1) as f64 >= drop.min_expected => {
            e > drop.ratio * b
        }
        _ => true,
    };
    let a = rules.alpha;
    let high = !usual(e, series.events_baseline, rules.spike);
    series.high = if high {
        series.high.saturating_add(1)
    } else {
        0
    };
    if (!high && not_a_drop) || series.high > ADAPT_AFTER_BUCKETS {
        series.events_baseline = Some(series.events_baseline.map_or(e, |b| b + a * (e - b)));
    }
    if usual(r, series.errors_baseline, rules.errors) {
        series.errors_baseline = Some(series.errors_baseline.map_or(r, |b| b + a * (r - b)));
    }
    series.learned = series.learned.saturating_add(1);
}

/// The window sum a rule fires at: the floor, and the jump over the baseline's window sum.
fn threshold(rule: &RateRule, baseline: Option<f64>, buckets: usize) -> f64 {
    let expected = baseline.unwrap_or(0.0) * buckets as f64;
    (rule.floor as f64).max(rule.ratio * expected.max(rule.min_expected))
}

/// The window's error count `error_rate` fires at: as [`threshold`], with the expected errors
/// scaled up by how far the window's events are above their baseline. Twice the requests with
/// twice the errors is a rate spike, not an error incident; what counts is the errors beyond
/// the usual share of the traffic.
fn error_threshold(rule: &RateRule, series: &Series, events_sum: u64, buckets: usize) -> f64 {
    let traffic = match series.events_baseline {
        Some(base) if base > 0.0 => (events_sum as f64 / (base * buckets as f64)).max(1.0),
        _ => 1.0,
    };
    let scaled = series.errors_baseline.map(|errors| errors * traffic);
    threshold(rule, scaled, buckets)
}

fn above(rule: &RateRule, sum: u64, baseline: Option<f64>, buckets: usize) -> bool {
    sum as f64 >= threshold(rule, baseline, buckets)
}

fn rate_hit<'a>(kind: Kind, service: &'a str, at_ms: i64, sample: &'a str) -> Hit<'a> {
    Hit {
        kind,
        key: service,
        severity: Severity::Warning,
        at_ms,
        events: 1,
        sample,
        quiet_ms: None,
    }
}
