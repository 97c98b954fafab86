//! Event-time windows: which windows an event falls in (tumbling or sliding), the aggregates per
//! (window, service, level) accumulated over a batch — count and latency sketch — and the
//! watermark that decides when a window is complete and which events arrive late.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use crate::event::Level;
use crate::sketch::LatencySketch;

/// Dead-letter reason of an event whose time is implausibly far from now.
pub const TIMESTAMP_OUT_OF_RANGE: &str = "timestamp_out_of_range";

/// Start (epoch ms) of the tumbling window of `size_ms` that contains `timestamp_ms`.
/// Works for timestamps before the epoch too (floor division).
pub fn window_start(timestamp_ms: i64, size_ms: i64) -> i64 {
    debug_assert!(size_ms > 0);
    timestamp_ms.div_euclid(size_ms) * size_ms
}

/// A window shape: `size_ms` long, a new one starting every `slide_ms` (tumbling when equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSpec {
    pub size_ms: i64,
    pub slide_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowSpecError {
    #[error("window size and slide must be positive")]
    NotPositive,
    #[error("window size {size_ms} ms must be a multiple of its slide {slide_ms} ms")]
    NotMultiple { size_ms: i64, slide_ms: i64 },
}

impl WindowSpec {
    pub fn tumbling(size_ms: i64) -> Result<Self, WindowSpecError> {
        Self::sliding(size_ms, size_ms)
    }

    pub fn sliding(size_ms: i64, slide_ms: i64) -> Result<Self, WindowSpecError> {
        if size_ms <= 0 || slide_ms <= 0 {
            return Err(WindowSpecError::NotPositive);
        }
        if size_ms % slide_ms != 0 {
            return Err(WindowSpecError::NotMultiple { size_ms, slide_ms });
        }
        Ok(Self { size_ms, slide_ms })
    }

    pub fn is_tumbling(&self) -> bool {
        self.size_ms == self.slide_ms
    }

    /// Starts of every window of this shape that contains `timestamp_ms`, latest first.
    pub fn starts(&self, timestamp_ms: i64) -> impl Iterator<Item = i64> {
        let last = window_start(timestamp_ms, self.slide_ms);
        let slide = self.slide_ms;
        (0..self.size_ms / self.slide_ms).map(move |k| last - k * slide)
    }
}

/// Identifies one aggregate row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    pub window_start_ms: i64,
    pub window_size_ms: i64,
    pub slide_ms: i64,
    pub service: String,
    pub level: Level,
}

/// What one row accumulates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub count: i64,
    /// Latencies of the access events among them (empty when none carried one).
    pub latency: LatencySketch,
}

/// A [`WindowKey`] with the service as its index in [`Windows::services`]: adding an event to
/// its windows then allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SlotKey {
    window_start_ms: i64,
    window_size_ms: i64,
    slide_ms: i64,
    service: u32,
    level: Level,
}

/// Aggregates per window key for a set of window shapes.
#[derive(Debug, Clone)]
pub struct Windows {
    specs: Vec<WindowSpec>,
    /// The services seen since the last clear, and each one's index.
    services: Vec<String>,
    service_index: FxHashMap<String, u32>,
    rows: FxHashMap<SlotKey, Aggregate>,
}

impl Windows {
    pub fn new(specs: Vec<WindowSpec>) -> Self {
        Self {
            specs,
            services: Vec::new(),
            service_index: FxHashMap::default(),
            rows: FxHashMap::default(),
        }
    }

    pub fn specs(&self) -> &[WindowSpec] {
        &self.specs
    }

    /// Adds one event (and its latency, for access events) to every window containing it.
    pub fn add(&mut self, timestamp_ms: i64, service: &str, level: Level, latency_us: Option<u64>) {
        let service = match self.service_index.get(service) {
            Some(&index) => index,
            None => {
                let index = self.services.len() as u32;
                self.services.push(service.to_owned());
                self.service_index.insert(service.to_owned(), index);
                index
            }
        };
        for spec in &self.specs {
            for start in spec.starts(timestamp_ms) {
                let key = SlotKey {
                    window_start_ms: start,
                    window_size_ms: spec.size_ms,
                    slide_ms: spec.slide_ms,
                    service,
                    level,
                };
                let row = self.rows.entry(key).or_default();
                row.count += 1;
                if let Some(us) = latency_us {
                    row.latency.add(us);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, sorted by key (a stable order keeps concurrent upserts deadlock-free).
    pub fn sorted(&self) -> Vec<(WindowKey, &Aggregate)> {
        let mut rows: Vec<_> = self
            .rows
            .iter()
            .map(|(key, aggregate)| {
                let key = WindowKey {
                    window_start_ms: key.window_start_ms,
                    window_size_ms: key.window_size_ms,
                    slide_ms: key.slide_ms,
                    service: self.services[key.service as usize].clone(),
                    level: key.level,
                };
                (key, aggregate)
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.services.clear();
        self.service_index.clear();
    }
}

/// The event-time watermark: the highest event time seen (per partition, so it can be stored
/// with each partition's offset and survive a restart) minus the allowed lateness. A window is
/// complete once the watermark reaches its end; an event whose window is already complete is
/// late (it still updates the window).
#[derive(Debug, Clone)]
pub struct Watermark {
    lateness_ms: i64,
    highest: HashMap<i32, i64>,
    max: Option<i64>,
}

impl Watermark {
    pub fn new(lateness_ms: i64) -> Self {
        Self {
            lateness_ms,
            highest: HashMap::new(),
            max: None,
        }
    }

    /// Starts a partition from its stored highest event time (never moves the watermark back).
    pub fn restore(&mut self, partition: i32, highest_ms: i64) {
        self.observe(partition, highest_ms);
    }

    pub fn observe(&mut self, partition: i32, timestamp_ms: i64) {
        let highest = self.highest.entry(partition).or_insert(timestamp_ms);
        *highest = (*highest).max(timestamp_ms);
        self.max = Some(self.max.map_or(timestamp_ms, |m| m.max(timestamp_ms)));
    }

    /// Highest event time seen on `partition`.
    pub fn highest(&self, partition: i32) -> Option<i64> {
        self.highest.get(&partition).copied()
    }

    /// The watermark (None before any event).
    pub fn current(&self) -> Option<i64> {
        self.max.map(|m| m.saturating_sub(self.lateness_ms))
    }

    /// Whether an event at `timestamp_ms` is late: the last window of `spec` that contains it
    /// is already complete.
    pub fn is_late(&self, timestamp_ms: i64, spec: WindowSpec) -> bool {
        let end = window_start(timestamp_ms, spec.slide_ms) + spec.size_ms;
        self.current().is_some_and(|w| end <= w)
    }
}

/// Whether an event time is too far from `now_ms` to be believed: further in the future than
/// `max_future_ms`, or older than `max_past_ms`.
pub fn out_of_range(timestamp_ms: i64, now_ms: i64, max_past_ms: i64, max_future_ms: i64) -> bool {
    timestamp_ms > now_ms.saturating_add(max_future_ms)
        || timestamp_ms < now_ms.saturating_sub(max_past_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000;

    fn tumbling(size: i64) -> WindowSpec {
        WindowSpec::tumbling(size).expect("valid")
    }

    #[test]
    fn window_edges() {
        assert_eq!(window_start(0, 10_000), 0);
        assert_eq!(window_start(9_999, 10_000), 0);
        assert_eq!(window_start(10_000, 10_000), 10_000);
        assert_eq!(window_start(-1, 10_000), -10_000);
    }

    #[test]
    fn sliding_windows_contain_the_event() {
        let spec = WindowSpec::sliding(300 * S, 60 * S).expect("valid");
        let starts: Vec<i64> = spec.starts(430 * S).collect();
        assert_eq!(starts, vec![420 * S, 360 * S, 300 * S, 240 * S, 180 * S]);
        assert_eq!(
            WindowSpec::sliding(300 * S, 70 * S),
            Err(WindowSpecError::NotMultiple {
                size_ms: 300 * S,
                slide_ms: 70 * S
            })
        );
        assert_eq!(WindowSpec::sliding(0, 0), Err(WindowSpecError::NotPositive));
        assert_eq!(
            tumbling(10 * S).starts(15 * S).collect::<Vec<_>>(),
            [10 * S]
        );
    }

    #[test]
    fn aggregates_per_key_and_shape() {
        let mut windows = Windows::new(vec![tumbling(10 * S), tumbling(60 * S)]);
        windows.add(S, "orders", Level::Info, Some(5_000));
        windows.add(9 * S, "orders", Level::Info, None);
        windows.add(11 * S, "orders", Level::Info, None);
        windows.add(11 * S, "users", Level::Error, None);
        let rows = windows.sorted();
        let get = |start, size, service: &str, level| {
            rows.iter()
                .find(|(k, _)| {
                    k.window_start_ms == start
                        && k.window_size_ms == size
                        && k.service == service
                        && k.level == level
                })
                .map(|(_, a)| a.count)
        };
        assert_eq!(get(0, 10 * S, "orders", Level::Info), Some(2));
        assert_eq!(get(10 * S, 10 * S, "orders", Level::Info), Some(1));
        assert_eq!(get(0, 60 * S, "orders", Level::Info), Some(3));
        assert_eq!(get(10 * S, 10 * S, "users", Level::Error), Some(1));
        assert_eq!(rows[0].1.latency.count(), 1);
        windows.clear();
        assert!(windows.is_empty());
    }

    /// The window-edge table: events arrive in the order listed, with a 10 s tumbling window and
    /// 5 s allowed lateness.
    #[test]
    fn window_edge_table() {
        let spec = tumbling(10 * S);
        let now = 1_000_000 * S;
        let (max_past, max_future) = (3_600 * S, 3_600 * S);
        struct Case {
            at: i64,
            window: i64,
            late: bool,
            dead_letter: bool,
        }
        let t = |s: f64| now + (s * 1000.0) as i64;
        let cases = [
            // In order.
            Case {
                at: t(1.0),
                window: t(0.0),
                late: false,
                dead_letter: false,
            },
            Case {
                at: t(12.0),
                window: t(10.0),
                late: false,
                dead_letter: false,
            },
            // Out of order, within lateness: watermark is 12 − 5 = 7 s, window [0, 10) still open.
            Case {
                at: t(9.999),
                window: t(0.0),
                late: false,
                dead_letter: false,
            },
            // The window's end exactly: belongs to the next window.
            Case {
                at: t(10.0),
                window: t(10.0),
                late: false,
                dead_letter: false,
            },
            // Time moves to 16 s: watermark 11 s passes the end of [0, 10).
            Case {
                at: t(16.0),
                window: t(10.0),
                late: false,
                dead_letter: false,
            },
            // Now an event of [0, 10) is late: counted late, still lands in its window.
            Case {
                at: t(3.0),
                window: t(0.0),
                late: true,
                dead_letter: false,
            },
            // Within lateness of the highest time (16 − 5 = 11 s ≤ 14 s): on time.
            Case {
                at: t(14.0),
                window: t(10.0),
                late: false,
                dead_letter: false,
            },
            // Far in the future or the past: dead-lettered, not windowed.
            Case {
                at: t(3_601.0 + 1_000.0),
                window: 0,
                late: false,
                dead_letter: true,
            },
            Case {
                at: t(-4_000.0),
                window: 0,
                late: false,
                dead_letter: true,
            },
        ];
        let mut watermark = Watermark::new(5 * S);
        let mut windows = Windows::new(vec![spec]);
        let mut late = 0;
        for (i, case) in cases.iter().enumerate() {
            let dead = out_of_range(case.at, now + 1_000 * S, max_past, max_future);
            assert_eq!(dead, case.dead_letter, "case {i}: dead letter");
            if dead {
                continue;
            }
            assert_eq!(
                watermark.is_late(case.at, spec),
                case.late,
                "case {i}: late"
            );
            late += i32::from(case.late);
            assert_eq!(
                spec.starts(case.at).next(),
                Some(case.window),
                "case {i}: window"
            );
            watermark.observe(0, case.at);
            windows.add(case.at, "s", Level::Info, None);
        }
        assert_eq!(late, 1);
        let counts: Vec<(i64, i64)> = windows
            .sorted()
            .iter()
            .map(|(k, a)| (k.window_start_ms - now, a.count))
            .collect();
        assert_eq!(counts, vec![(0, 3), (10 * S, 4)]);
        assert_eq!(watermark.current(), Some(t(11.0)));
    }

    #[test]
    fn watermark_never_moves_back() {
        let mut w = Watermark::new(5 * S);
        assert_eq!(w.current(), None);
        w.observe(1, 100 * S);
        w.restore(2, 50 * S);
        w.observe(1, 20 * S);
        assert_eq!(w.current(), Some(95 * S));
        assert_eq!(w.highest(1), Some(100 * S));
        assert_eq!(w.highest(2), Some(50 * S));
    }

    proptest! {
        #[test]
        fn event_lies_inside_its_windows(ts in -4_102_444_800_000i64..4_102_444_800_000, slide in 1i64..3_600_000, k in 1i64..10) {
            let spec = WindowSpec::sliding(slide * k, slide).expect("valid");
            let starts: Vec<i64> = spec.starts(ts).collect();
            prop_assert_eq!(starts.len() as i64, k);
            for start in starts {
                prop_assert!(start <= ts && ts < start + spec.size_ms);
                prop_assert_eq!(start.rem_euclid(slide), 0);
            }
        }

        #[test]
        fn totals_are_preserved(ts in proptest::collection::vec(0i64..1_000_000, 0..200)) {
            let mut windows = Windows::new(vec![WindowSpec::sliding(30_000, 10_000).expect("valid")]);
            for t in &ts {
                windows.add(*t, "s", Level::Info, None);
            }
            let total: i64 = windows.sorted().iter().map(|(_, a)| a.count).sum();
            prop_assert_eq!(total as usize, ts.len() * 3);
        }

        /// Whatever the arrival order, the windows hold the same counts; an event is late only
        /// when it is older than the watermark.
        #[test]
        fn arrival_order_does_not_change_counts(mut ts in proptest::collection::vec(0i64..200_000, 1..100), seed in any::<u64>()) {
            let spec = WindowSpec::tumbling(10_000).expect("valid");
            let count = |order: &[i64]| {
                let mut windows = Windows::new(vec![spec]);
                let mut watermark = Watermark::new(5_000);
                for &t in order {
                    if watermark.is_late(t, spec) {
                        prop_assert!(t < watermark.current().unwrap_or(i64::MIN));
                    }
                    watermark.observe(0, t);
                    windows.add(t, "s", Level::Info, None);
                }
                Ok(windows.sorted().into_iter().map(|(k, a)| (k.window_start_ms, a.count)).collect::<Vec<_>>())
            };
            let sorted_counts = { let mut s = ts.clone(); s.sort_unstable(); count(&s)? };
            let n = ts.len();
            for i in 0..n { ts.swap(i, (seed as usize).wrapping_add(i * 7) % n); }
            prop_assert_eq!(count(&ts)?, sorted_counts);
        }
    }
}
