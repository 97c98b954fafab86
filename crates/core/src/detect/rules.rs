//! The detection rules: which detectors run, and their thresholds and windows. Read from a TOML
//! file (`LOGSTREAM_RULES`; `monitoring/rules/detection.toml` is the shipped default), every
//! value with a default, so an empty file means the defaults. Invalid rules fail at start with
//! the rule's name.

use serde::{Deserialize, Serialize};

/// Every rule. A detector whose section has `enabled = false` does not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Seconds the rate windows span (one-second buckets).
    pub window_seconds: u32,
    /// Weight of each completed second in the baselines (EWMA, 0 < alpha ≤ 1).
    pub baseline_alpha: f64,
    /// Seconds of a service's traffic learned before its rates are tested.
    pub warmup_seconds: u32,
    pub error_rate: RateRule,
    pub rate_spike: RateRule,
    pub rate_drop: DropRule,
    pub attacks: AttackRule,
    pub brute_force: BruteForceRule,
    pub scanner: BurstRule,
    pub critical: CriticalRule,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            window_seconds: 10,
            baseline_alpha: 0.05,
            warmup_seconds: 20,
            error_rate: RateRule {
                enabled: true,
                floor: 20,
                ratio: 3.0,
                min_expected: 5.0,
                clear_ratio: 0.5,
                clear_buckets: 10,
            },
            rate_spike: RateRule {
                enabled: true,
                floor: 200,
                ratio: 4.0,
                min_expected: 50.0,
                clear_ratio: 0.5,
                clear_buckets: 10,
            },
            rate_drop: DropRule {
                enabled: true,
                ratio: 0.1,
                clear_ratio: 0.5,
                min_expected: 100.0,
            },
            attacks: AttackRule {
                enabled: true,
                quiet_seconds: 60,
            },
            brute_force: BruteForceRule {
                enabled: true,
                failures: 8,
                window_seconds: 120,
                user_ips: 5,
                user_window_seconds: 300,
                quiet_seconds: 120,
            },
            scanner: BurstRule {
                enabled: true,
                count: 14,
                window_seconds: 90,
                quiet_seconds: 120,
            },
            critical: CriticalRule {
                enabled: true,
                patterns: Vec::new(),
                quiet_seconds: 60,
            },
        }
    }
}

/// A rate that fires when the window's sum reaches both `floor` and `ratio` × the baseline's
/// window sum (at least `min_expected`), and resolves after `clear_buckets` seconds under
/// `clear_ratio` × that threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub enabled: bool,
    pub floor: u64,
    pub ratio: f64,
    pub min_expected: f64,
    pub clear_ratio: f64,
    pub clear_buckets: u32,
}

/// A service whose window falls to `ratio` × its baseline (when it expects at least
/// `min_expected` events); resolves back at `clear_ratio` × the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropRule {
    pub enabled: bool,
    pub ratio: f64,
    pub clear_ratio: f64,
    pub min_expected: f64,
}

/// SQL injection, XSS and path traversal: one episode per (kind, client address), resolved
/// after `quiet_seconds` without another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackRule {
    pub enabled: bool,
    pub quiet_seconds: u32,
}

/// `failures` failed logins from one address within `window_seconds`, or one user failing from
/// `user_ips` addresses within `user_window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceRule {
    pub enabled: bool,
    pub failures: u32,
    pub window_seconds: u32,
    pub user_ips: u32,
    pub user_window_seconds: u32,
    pub quiet_seconds: u32,
}

/// `count` client errors (4xx not otherwise explained) from one address within
/// `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstRule {
    pub enabled: bool,
    pub count: u32,
    pub window_seconds: u32,
    pub quiet_seconds: u32,
}

/// FATAL events, and events whose message contains one of `patterns`, alert at once (one
/// episode per service while they keep coming).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalRule {
    pub enabled: bool,
    pub patterns: Vec<String>,
    pub quiet_seconds: u32,
}

/// Why rules cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("detection rules: {0}")]
pub struct RulesError(pub String);

impl Rules {
    /// Rules from TOML text (missing values, in any section, take their defaults), checked.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let error = |e: &dyn std::fmt::Display| RulesError(e.to_string().trim().to_owned());
        let given: toml::Table = toml::from_str(text).map_err(|e| error(&e))?;
        let mut merged = toml::Table::try_from(Rules::default()).map_err(|e| error(&e))?;
        merge(&mut merged, given);
        let rules: Rules = toml::Value::Table(merged)
            .try_into()
            .map_err(|e| error(&e))?;
        rules.check()?;
        Ok(rules)
    }

    /// Every value in its range, named when not.
    pub fn check(&self) -> Result<(), RulesError> {
        let fail = |what: &str| Err(RulesError(what.to_owned()));
        if !(2..=600).contains(&self.window_seconds) {
            return fail("window_seconds must be within 2..=600");
        }
        if !(self.baseline_alpha > 0.0 && self.baseline_alpha <= 1.0) {
            return fail("baseline_alpha must be within (0, 1]");
        }
        for (name, rule) in [
            ("error_rate", &self.error_rate),
            ("rate_spike", &self.rate_spike),
        ] {
            if !(rule.ratio >= 1.0 && rule.ratio.is_finite()) {
                return fail(&format!("{name}.ratio must be at least 1"));
            }
            if !(0.0..1.0).contains(&rule.clear_ratio) {
                return fail(&format!("{name}.clear_ratio must be within [0, 1)"));
            }
            if !(rule.min_expected >= 0.0 && rule.min_expected.is_finite()) {
                return fail(&format!("{name}.min_expected must not be negative"));
            }
        }
        let drop = &self.rate_drop;
        if !(0.0..1.0).contains(&drop.ratio) || !(drop.ratio..=1.0).contains(&drop.clear_ratio) {
            return fail("rate_drop: 0 <= ratio < 1 and ratio <= clear_ratio <= 1");
        }
        let bf = &self.brute_force;
        if bf.failures < 2
            || bf.user_ips < 2
            || bf.window_seconds == 0
            || bf.user_window_seconds == 0
        {
            return fail("brute_force: failures and user_ips at least 2, windows at least 1 s");
        }
        if self.scanner.count < 2 || self.scanner.window_seconds == 0 {
            return fail("scanner: count at least 2, window_seconds at least 1");
        }
        if self.critical.patterns.iter().any(String::is_empty) {
            return fail("critical.patterns must not hold an empty pattern");
        }
        Ok(())
    }
}

/// `given` laid over `base`, table by table.
fn merge(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_the_defaults_and_the_shipped_file_parses() {
        assert_eq!(Rules::parse("").expect("empty"), Rules::default());
        let shipped = include_str!("../../../../monitoring/rules/detection.toml");
        let rules = Rules::parse(shipped).expect("the shipped rules");
        assert_eq!(rules.brute_force.failures, 8);
    }

    #[test]
    fn overrides_and_errors_name_the_rule() {
        let rules = Rules::parse(
            "[scanner]\nenabled = false\ncount = 20\nwindow_seconds = 60\nquiet_seconds = 30\n",
        )
        .expect("valid");
        assert!(!rules.scanner.enabled);
        let e = Rules::parse("window_seconds = 1").expect_err("too short");
        assert!(e.to_string().contains("window_seconds"), "{e}");
        let rules = Rules::parse("[error_rate]\nfloor = 50").expect("a partial section");
        assert_eq!((rules.error_rate.floor, rules.error_rate.ratio), (50, 3.0));
        let e = Rules::parse("[error_rate]\nratio = 0.5").expect_err("below 1");
        assert!(e.to_string().contains("error_rate.ratio"), "{e}");
        let e = Rules::parse("windows = 3").expect_err("unknown");
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
