//! A weighted choice: the generator's mixes of services, levels, formats and statuses.

use rand::Rng;

/// A weighted choice among `T`s. Weights are relative; zero-weight entries are never chosen.
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    items: Vec<T>,
    cumulative: Vec<u32>,
}

/// The weights given cannot be drawn from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("weights must not all be zero and must sum to at most 4294967295")]
pub struct InvalidWeights;

impl<T> Weighted<T> {
    pub fn new(entries: impl IntoIterator<Item = (T, u32)>) -> Result<Self, InvalidWeights> {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total: u32 = 0;
        for (item, weight) in entries {
            if weight == 0 {
                continue;
            }
            total = total.checked_add(weight).ok_or(InvalidWeights)?;
            items.push(item);
            cumulative.push(total);
        }
        if items.is_empty() {
            return Err(InvalidWeights);
        }
        Ok(Self { items, cumulative })
    }

    /// From items and their cumulative weights, checked by the caller (increasing, as many as
    /// the items, not empty).
    pub(crate) fn from_cumulative(items: Vec<T>, cumulative: Vec<u32>) -> Self {
        Self { items, cumulative }
    }

    pub fn pick<R: Rng>(&self, rng: &mut R) -> &T {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.random_range(0..total);
        let index = self.cumulative.partition_point(|&c| c <= x);
        &self.items[index.min(self.items.len() - 1)]
    }
}
