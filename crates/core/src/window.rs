//! Event-time tumbling windows: which window an event falls in, and counts per
//! (window start, window size, service, level) accumulated over a batch.

use std::collections::HashMap;

use crate::event::Level;

/// Start (epoch ms) of the tumbling window of `size_ms` that contains `timestamp_ms`.
/// Works for timestamps before the epoch too (floor division).
pub fn window_start(timestamp_ms: i64, size_ms: i64) -> i64 {
    debug_assert!(size_ms > 0);
    timestamp_ms.div_euclid(size_ms) * size_ms
}

/// Identifies one aggregate row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    pub window_start_ms: i64,
    pub window_size_ms: i64,
    pub service: String,
    pub level: Level,
}

/// Counts of events per window key, for a set of window sizes.
#[derive(Debug, Clone)]
pub struct WindowCounts {
    sizes_ms: Vec<i64>,
    counts: HashMap<WindowKey, i64>,
}

impl WindowCounts {
    /// Counts for every size in `sizes_ms` (each must be positive).
    pub fn new(sizes_ms: Vec<i64>) -> Self {
        Self {
            sizes_ms,
            counts: HashMap::new(),
        }
    }

    /// Adds one event.
    pub fn add(&mut self, timestamp_ms: i64, service: &str, level: Level) {
        for &size in &self.sizes_ms {
            let key = WindowKey {
                window_start_ms: window_start(timestamp_ms, size),
                window_size_ms: size,
                service: service.to_owned(),
                level,
            };
            *self.counts.entry(key).or_insert(0) += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The counts, sorted by key (a stable order keeps concurrent upserts deadlock-free).
    pub fn sorted(&self) -> Vec<(&WindowKey, i64)> {
        let mut rows: Vec<_> = self.counts.iter().map(|(k, n)| (k, *n)).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }

    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_edges() {
        assert_eq!(window_start(0, 10_000), 0);
        assert_eq!(window_start(9_999, 10_000), 0);
        assert_eq!(window_start(10_000, 10_000), 10_000);
        assert_eq!(window_start(-1, 10_000), -10_000);
    }

    #[test]
    fn counts_per_key_and_size() {
        let mut counts = WindowCounts::new(vec![10_000, 60_000]);
        counts.add(1_000, "orders", Level::Info);
        counts.add(9_000, "orders", Level::Info);
        counts.add(11_000, "orders", Level::Info);
        counts.add(11_000, "users", Level::Error);
        let rows = counts.sorted();
        let get = |start, size, service: &str, level| {
            rows.iter()
                .find(|(k, _)| {
                    k.window_start_ms == start
                        && k.window_size_ms == size
                        && k.service == service
                        && k.level == level
                })
                .map(|(_, n)| *n)
        };
        assert_eq!(get(0, 10_000, "orders", Level::Info), Some(2));
        assert_eq!(get(10_000, 10_000, "orders", Level::Info), Some(1));
        assert_eq!(get(0, 60_000, "orders", Level::Info), Some(3));
        assert_eq!(get(10_000, 10_000, "users", Level::Error), Some(1));
        counts.clear();
        assert!(counts.is_empty());
    }

    proptest! {
        #[test]
        fn event_lies_inside_its_window(ts in -4_102_444_800_000i64..4_102_444_800_000, size in 1i64..86_400_000) {
            let start = window_start(ts, size);
            prop_assert!(start <= ts && ts < start + size);
            prop_assert_eq!(start.rem_euclid(size), 0);
        }

        #[test]
        fn totals_are_preserved(ts in proptest::collection::vec(0i64..1_000_000, 0..200)) {
            let mut counts = WindowCounts::new(vec![10_000]);
            for t in &ts {
                counts.add(*t, "s", Level::Info);
            }
            let total: i64 = counts.sorted().iter().map(|(_, n)| n).sum();
            prop_assert_eq!(total as usize, ts.len());
        }
    }
}
