//! A mergeable latency sketch: counts in logarithmic buckets (as in DDSketch), so two sketches
//! merge by adding their buckets, and any quantile is read back within [`RELATIVE_ERROR`].
//!
//! Bucket 0 holds latencies up to [`UNIT_US`]; bucket `i > 0` holds latencies in
//! `(UNIT_US·γ^(i-1), UNIT_US·γ^i]` with γ = [`GAMMA`]; latencies above the last bucket count in
//! it. Stored as a PostgreSQL `bigint[]` without trailing zeros, merged there by adding arrays
//! element by element (`logstream_sketch_merge`).

use std::sync::LazyLock;

use crate::needle::Needle;

/// Growth factor between bucket bounds.
pub const GAMMA: f64 = 1.04;
/// Largest relative error of a quantile read back: (γ − 1) / (γ + 1), just under 2%.
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);
/// Latencies up to this many microseconds share bucket 0.
pub const UNIT_US: u64 = 100;
/// Number of buckets: the last starts above 10 minutes.
pub const BUCKETS: usize = 400;

/// Bucket counts, indexed from 0; trailing zeros are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    buckets: Vec<i64>,
}

/// The bucket a latency falls in.
pub fn bucket_of(latency_us: u64) -> usize {
    if latency_us <= UNIT_US {
        return 0;
    }
    let ratio = latency_us as f64 / UNIT_US as f64;
    // ceil(log_γ(ratio)); the small epsilon keeps exact bounds in their own bucket.
    let index = (ratio.ln() / GAMMA.ln() - 1e-9).ceil() as usize;
    index.clamp(1, BUCKETS - 1)
}

/// The value a bucket stands for: the point with the same relative distance to both bounds.
pub fn bucket_value_us(index: usize) -> f64 {
    if index == 0 {
        return UNIT_US as f64;
    }
    UNIT_US as f64 * GAMMA.powi(index as i32) * 2.0 / (GAMMA + 1.0)
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch from stored bucket counts (negative counts, which nothing writes, read as zero).
    pub fn from_buckets(buckets: Vec<i64>) -> Self {
        let mut buckets: Vec<i64> = buckets.into_iter().map(|n| n.max(0)).collect();
        buckets.truncate(BUCKETS);
        while buckets.last() == Some(&0) {
            buckets.pop();
        }
        Self { buckets }
    }

    pub fn buckets(&self) -> &[i64] {
        &self.buckets
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn count(&self) -> i64 {
        self.buckets.iter().sum()
    }

    pub fn add(&mut self, latency_us: u64) {
        let index = bucket_of(latency_us);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, 0);
        }
        self.buckets[index] += 1;
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in microseconds; None when empty. Nearest rank.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_value_us(index));
            }
        }
        None
    }
}

/// The latency of an event whose attributes carry the design's `http.latency_ms` (access logs),
/// read without parsing the whole attributes object.
pub fn latency_us_of_attributes(attributes: &str) -> Option<u64> {
    static LATENCY: LazyLock<Needle> = LazyLock::new(|| Needle::new("\"latency_ms\""));
    let rest = LATENCY
        .after(attributes)?
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
        .unwrap_or(rest.len());
    let ms: f64 = rest[..end].parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_ordered_and_bounded() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(UNIT_US), 0);
        assert_eq!(bucket_of(UNIT_US + 1), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut last = 0;
        for us in (0..5_000_000).step_by(997) {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn reads_attributes_latency() {
        assert_eq!(
            latency_us_of_attributes(r#"{"http":{"status":200,"latency_ms":12.345,"x":1}}"#),
            Some(12_345)
        );
        assert_eq!(
            latency_us_of_attributes(r#"{"latency_ms" : 7}"#),
            Some(7_000)
        );
        assert_eq!(latency_us_of_attributes(r#"{"latency_ms":null}"#), None);
        assert_eq!(latency_us_of_attributes(r#"{"latency_ms":-1}"#), None);
        assert_eq!(latency_us_of_attributes(r#"{"other":1}"#), None);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut sketch = LatencySketch::new();
        for ms in 1..=1000u64 {
            sketch.add(ms * 1000);
        }
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = sketch.quantile_us(q).expect("not empty") / 1000.0;
            assert!(
                (got - exact).abs() / exact <= RELATIVE_ERROR + 1e-9,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(LatencySketch::new().quantile_us(0.5), None);
    }

    proptest! {
        #[test]
        fn quantile_within_relative_error(mut values in proptest::collection::vec(101u64..100_000_000, 1..300), q in 0.0f64..=1.0) {
            let mut sketch = LatencySketch::new();
            for v in &values {
                sketch.add(*v);
            }
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = sketch.quantile_us(q).expect("not empty");
            prop_assert!((got - exact).abs() / exact <= RELATIVE_ERROR + 1e-9, "{} vs {}", got, exact);
        }

        #[test]
        fn merge_equals_adding_everything(a in proptest::collection::vec(0u64..10_000_000, 0..100), b in proptest::collection::vec(0u64..10_000_000, 0..100)) {
            let (mut left, mut right, mut all) = (LatencySketch::new(), LatencySketch::new(), LatencySketch::new());
            for v in &a { left.add(*v); all.add(*v); }
            for v in &b { right.add(*v); all.add(*v); }
            left.merge(&right);
            prop_assert_eq!(&left, &all);
            prop_assert_eq!(LatencySketch::from_buckets(all.buckets().to_vec()), all);
        }
    }
}
