//! The batch's window counts as the columns of `log_window_aggregates` (one array per column,
//! for an `UNNEST` upsert). Pure: the sink runs the statement.

use chrono::{DateTime, Utc};
use logstream_core::window::{Aggregate, WindowKey};

/// One array per column, row i across all of them.
pub struct AggregateColumns<'a> {
    pub starts: Vec<DateTime<Utc>>,
    pub sizes: Vec<i32>,
    pub slides: Vec<i32>,
    pub services: Vec<&'a str>,
    pub levels: Vec<&'static str>,
    pub counts: Vec<i64>,
    /// Sketches as array literals ('{3,0,1}'), NULL when the window saw no latency.
    pub sketches: Vec<Option<String>>,
}

impl<'a> AggregateColumns<'a> {
    pub fn of(aggregates: &'a [(WindowKey, &'a Aggregate)]) -> Self {
        let n = aggregates.len();
        let mut c = Self {
            starts: Vec::with_capacity(n),
            sizes: Vec::with_capacity(n),
            slides: Vec::with_capacity(n),
            services: Vec::with_capacity(n),
            levels: Vec::with_capacity(n),
            counts: Vec::with_capacity(n),
            sketches: Vec::with_capacity(n),
        };
        for (key, aggregate) in aggregates {
            c.starts
                .push(DateTime::from_timestamp_millis(key.window_start_ms).unwrap_or_default());
            c.sizes.push((key.window_size_ms / 1000) as i32);
            c.slides.push((key.slide_ms / 1000) as i32);
            c.services.push(&key.service);
            c.levels.push(key.level.as_str());
            c.counts.push(aggregate.count);
            c.sketches.push((!aggregate.latency.is_empty()).then(|| {
                let buckets: Vec<String> = aggregate
                    .latency
                    .buckets()
                    .iter()
                    .map(i64::to_string)
                    .collect();
                format!("{{{}}}", buckets.join(","))
            }));
        }
        c
    }
}
