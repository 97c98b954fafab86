//! Sampling of raw storage while the collector is far behind. Off unless configured: once the
//! records being read are older than a threshold (Kafka's timestamp against the clock), the raw
//! rows of low-level events (DEBUG and INFO by default) are kept at a ratio; windows, stats and
//! detection still count every event, and the events left out are counted, so the accounting
//! still closes. Sampling stops once the lag is below half the threshold.
//!
//! Whether an event is kept depends only on its Kafka partition and offset: the same record
//! gets the same answer however often it is read again (a rewind, a batch built again).

use crate::Level;

/// When to sample, and how much to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRule {
    /// Sampling starts once the lag exceeds this (ms), and stops below half of it.
    pub lag_ms: i64,
    /// Raw rows kept of the events sampled, per million.
    pub keep_per_million: u32,
    /// Events at or below this level are sampled; higher ones are always stored.
    pub max_level: Level,
}

/// The sampling of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    keep_per_million: u32,
    max_level: Level,
}

impl Sample {
    /// Whether the raw row of an event at `level`, read from `partition` at `offset`, is stored.
    pub fn keeps(&self, level: Level, partition: i32, offset: i64) -> bool {
        level > self.max_level || position(partition, offset) < u64::from(self.keep_per_million)
    }
}

/// A place in 0..1,000,000 for a record, spread evenly (splitmix64 of its partition and offset).
fn position(partition: i32, offset: i64) -> u64 {
    let mut z = (offset as u64) ^ ((partition as u64) << 48) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1_000_000
}

/// Decides, batch by batch, whether sampling is on (with hysteresis).
#[derive(Debug, Clone)]
pub struct Sampler {
    rule: Option<SampleRule>,
    active: bool,
}

impl Sampler {
    /// A sampler following `rule`; never samples without one.
    pub fn new(rule: Option<SampleRule>) -> Self {
        Self {
            rule,
            active: false,
        }
    }

    /// Takes the lag (ms; None: unknown, which changes nothing) of the record that opens a
    /// batch, and returns that batch's sampling (None: store every event).
    pub fn update(&mut self, lag_ms: Option<i64>) -> Option<Sample> {
        let rule = self.rule?;
        if let Some(lag) = lag_ms {
            if !self.active && lag > rule.lag_ms {
                self.active = true;
            } else if self.active && lag < rule.lag_ms / 2 {
                self.active = false;
            }
        }
        self.active.then_some(Sample {
            keep_per_million: rule.keep_per_million,
            max_level: rule.max_level,
        })
    }

    pub fn is_active(&self) -> bool {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule() -> SampleRule {
        SampleRule {
            lag_ms: 10_000,
            keep_per_million: 100_000,
            max_level: Level::Info,
        }
    }

    #[test]
    fn starts_above_the_threshold_and_stops_below_half_of_it() {
        let mut sampler = Sampler::new(Some(rule()));
        assert_eq!(sampler.update(Some(9_000)), None);
        assert!(sampler.update(Some(10_001)).is_some());
        assert!(sampler.update(Some(6_000)).is_some(), "still above half");
        assert!(
            sampler.update(None).is_some(),
            "unknown lag changes nothing"
        );
        assert_eq!(sampler.update(Some(4_999)), None);
        assert!(!sampler.is_active());
    }

    #[test]
    fn never_samples_without_a_rule() {
        let mut sampler = Sampler::new(None);
        assert_eq!(sampler.update(Some(i64::MAX)), None);
    }

    #[test]
    fn higher_levels_are_always_kept() {
        let mut sampler = Sampler::new(Some(SampleRule {
            keep_per_million: 0,
            ..rule()
        }));
        let sample = sampler.update(Some(20_000)).expect("on");
        for offset in 0..1_000 {
            assert!(sample.keeps(Level::Warn, 3, offset));
            assert!(sample.keeps(Level::Fatal, 3, offset));
            assert!(!sample.keeps(Level::Info, 3, offset));
            assert!(!sample.keeps(Level::Debug, 3, offset));
        }
    }

    proptest! {
        /// Over many consecutive offsets, the share kept is close to the ratio, and the answer
        /// for a record never changes.
        #[test]
        fn keeps_the_ratio_and_the_same_answer(
            per_million in 0u32..=1_000_000,
            partition in 0i32..64,
            start in 0i64..1_000_000_000,
        ) {
            let sample = Sample { keep_per_million: per_million, max_level: Level::Info };
            let n = 20_000;
            let kept = (start..start + n)
                .filter(|o| sample.keeps(Level::Info, partition, *o))
                .count() as f64;
            let expected = n as f64 * f64::from(per_million) / 1e6;
            prop_assert!((kept - expected).abs() <= 6.0 * expected.sqrt() + 2.0,
                "kept {kept} of {n}, expected {expected}");
            for o in start..start + 100 {
                prop_assert_eq!(sample.keeps(Level::Debug, partition, o),
                    sample.keeps(Level::Debug, partition, o));
            }
        }
    }
}
