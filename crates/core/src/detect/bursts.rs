//! Bursts per key on event time: "N within W seconds" (failed logins or client errors from one
//! address) and "one user failing from N addresses within W seconds". Each key keeps at most
//! N timestamps, and keys idle past their window are pruned, so memory follows the number of
//! active sources, not the traffic.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Most keys tracked per counter; beyond, the stalest are pruned first.
pub const MAX_KEYS: usize = 100_000;

/// "At least `count` events within `window_ms`", per key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Burst {
    recent: HashMap<String, VecDeque<i64>>,
}

impl Burst {
    /// Counts one event of `key` at `at_ms`; true when the last `count` of the key fall within
    /// `window_ms`.
    pub fn add(&mut self, key: &str, at_ms: i64, count: usize, window_ms: i64) -> bool {
        if self.recent.len() >= MAX_KEYS && !self.recent.contains_key(key) {
            self.prune(at_ms, window_ms);
        }
        let times = self.recent.entry(key.to_owned()).or_default();
        let at = times.iter().rposition(|&t| t <= at_ms).map_or(0, |p| p + 1);
        times.insert(at, at_ms);
        while times.len() > count {
            times.pop_front();
        }
        times.len() == count
            && times
                .back()
                .zip(times.front())
                .is_some_and(|(b, f)| b - f <= window_ms)
    }

    /// Forgets keys whose last event is older than `window_ms` before `now_ms` (and, while
    /// still over [`MAX_KEYS`], the stalest).
    pub fn prune(&mut self, now_ms: i64, window_ms: i64) {
        self.recent
            .retain(|_, times| times.back().is_some_and(|&t| t + window_ms >= now_ms));
        if self.recent.len() >= MAX_KEYS {
            let mut last: Vec<i64> = self
                .recent
                .values()
                .filter_map(|t| t.back().copied())
                .collect();
            last.sort_unstable();
            let cutoff = last[last.len() / 2];
            self.recent
                .retain(|_, times| times.back().is_some_and(|&t| t > cutoff));
        }
    }

    pub fn keys(&self) -> usize {
        self.recent.len()
    }
}

/// "One key seen from at least `count` distinct sources within `window_ms`", per key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spread {
    /// key → source → when last seen.
    seen: HashMap<String, HashMap<String, i64>>,
}

impl Spread {
    /// Notes `source` for `key` at `at_ms`; the number of distinct sources within the window
    /// when it reaches `count` (None below).
    pub fn add(
        &mut self,
        key: &str,
        source: &str,
        at_ms: i64,
        count: usize,
        window_ms: i64,
    ) -> Option<usize> {
        if self.seen.len() >= MAX_KEYS && !self.seen.contains_key(key) {
            self.prune(at_ms, window_ms);
        }
        let sources = self.seen.entry(key.to_owned()).or_default();
        let last = sources.entry(source.to_owned()).or_insert(at_ms);
        *last = (*last).max(at_ms);
        sources.retain(|_, t| *t + window_ms >= at_ms);
        (sources.len() >= count).then_some(sources.len())
    }

    /// Forgets keys with no source within `window_ms` before `now_ms`.
    pub fn prune(&mut self, now_ms: i64, window_ms: i64) {
        self.seen.retain(|_, sources| {
            sources.retain(|_, t| *t + window_ms >= now_ms);
            !sources.is_empty()
        });
        if self.seen.len() >= MAX_KEYS {
            self.seen.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_needs_count_events_within_the_window() {
        let mut b = Burst::default();
        let hits: Vec<bool> = [0, 10_000, 20_000, 200_000, 201_000, 202_000]
            .iter()
            .map(|&t| b.add("ip", t, 3, 120_000))
            .collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
        b.prune(400_000, 120_000);
        assert_eq!(b.keys(), 0);
    }

    #[test]
    fn out_of_order_events_count_in_time_order() {
        let mut b = Burst::default();
        assert!(!b.add("ip", 100_000, 2, 1_000));
        assert!(!b.add("ip", 0, 2, 1_000), "the two are 100 s apart");
        assert!(b.add("ip", 100_500, 2, 1_000));
    }

    #[test]
    fn spread_counts_distinct_sources_in_the_window() {
        let mut s = Spread::default();
        assert_eq!(s.add("user:root", "a", 0, 3, 300_000), None);
        assert_eq!(s.add("user:root", "a", 1_000, 3, 300_000), None);
        assert_eq!(s.add("user:root", "b", 2_000, 3, 300_000), None);
        assert_eq!(s.add("user:root", "c", 3_000, 3, 300_000), Some(3));
        assert_eq!(
            s.add("user:root", "d", 400_000, 3, 300_000),
            None,
            "a, b, c expired"
        );
    }
}
