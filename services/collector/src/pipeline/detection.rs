//! Detection in the pipeline: one set of detectors (`logstream_core::detect`) per owned
//! partition, fed every event the batch stores, in offset order, so an alert is found as soon as
//! the event that makes it true is read.
//!
//! Exactly once across crashes and rebalances: detectors depend only on the sequence of events,
//! so their state is snapshotted (every `snapshot_every`, with the offset it reflects, in the
//! batch's transaction), and a partition taken on starts from its snapshot, reading the records
//! from the snapshot's offset to the stored one again through the detectors only (they are
//! stored already). Alert rows are upserts by episode and published transitions are unique, so
//! what the replay finds again changes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logstream_core::detect::episodes::Kind;
use logstream_core::detect::rules::Rules;
use logstream_core::detect::{Detectors, State};

use crate::messages::{AlertChange, DetectorSnapshot, StoredPosition};

pub struct Detection {
    rules: Rules,
    snapshot_every: Duration,
    partitions: BTreeMap<i32, Held>,
}

struct Held {
    detectors: Detectors,
    /// Records before this offset are stored already: seen by the detectors only.
    replay_until: Option<i64>,
    snapshot_at: Instant,
}

impl Detection {
    pub fn new(rules: Rules, snapshot_every: Duration) -> Self {
        Self {
            rules,
            snapshot_every,
            partitions: BTreeMap::new(),
        }
    }

    /// Takes `partition` on at what PostgreSQL holds: its snapshot (replaying up to the stored
    /// offset), or fresh detectors.
    pub fn assign(&mut self, partition: i32, stored: Option<&StoredPosition>) {
        let snapshot = stored.and_then(|s| s.detectors.as_ref().map(|d| (s, d)));
        let (state, replay_until) = match snapshot {
            Some((stored, snapshot)) => match serde_json::from_str::<State>(&snapshot.state) {
                Ok(state) => (state, Some(stored.next_offset)),
                Err(e) => {
                    tracing::warn!(partition, error = %e,
                        "detector snapshot unreadable; detectors start afresh");
                    (State::default(), None)
                }
            },
            None => (State::default(), None),
        };
        self.partitions.insert(
            partition,
            Held {
                detectors: Detectors::with_state(self.rules.clone(), state),
                replay_until,
                // Due with the first batch: every stored offset of the partition then has a
                // snapshot at or before it to start from.
                snapshot_at: Instant::now()
                    .checked_sub(self.snapshot_every)
                    .unwrap_or_else(Instant::now),
            },
        );
    }

    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Whether the record at `offset` of `partition` is stored already and only replayed.
    pub fn replaying(&mut self, partition: i32, offset: i64) -> bool {
        let Some(held) = self.partitions.get_mut(&partition) else {
            return false;
        };
        match held.replay_until {
            Some(until) if offset < until => true,
            Some(_) => {
                held.replay_until = None;
                false
            }
            None => false,
        }
    }

    pub fn detectors(&mut self, partition: i32) -> Option<&mut Detectors> {
        self.partitions
            .get_mut(&partition)
            .map(|h| &mut h.detectors)
    }

    /// What a batch ending at `next_offsets` carries: the alert changes of its partitions, and
    /// the snapshots that are due.
    pub fn take(
        &mut self,
        next_offsets: &BTreeMap<i32, i64>,
    ) -> (Vec<AlertChange>, Vec<DetectorSnapshot>) {
        let mut alerts = Vec::new();
        let mut snapshots = Vec::new();
        for (&partition, &next_offset) in next_offsets {
            let Some(held) = self.partitions.get_mut(&partition) else {
                continue;
            };
            alerts.extend(
                held.detectors
                    .drain()
                    .into_iter()
                    .map(|change| AlertChange { partition, change }),
            );
            if held.replay_until.is_none() && held.snapshot_at.elapsed() >= self.snapshot_every {
                match serde_json::to_string(held.detectors.state()) {
                    Ok(state) => {
                        held.snapshot_at = Instant::now();
                        snapshots.push(DetectorSnapshot {
                            partition,
                            next_offset,
                            state,
                        });
                    }
                    Err(e) => tracing::warn!(partition, error = %e, "cannot snapshot detectors"),
                }
            }
        }
        (alerts, snapshots)
    }

    /// Open episodes by kind, over every owned partition.
    pub fn firing(&self) -> BTreeMap<Kind, i64> {
        let mut firing: BTreeMap<Kind, i64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        for held in self.partitions.values() {
            for (kind, n) in held.detectors.state().episodes.open_by_kind() {
                *firing.entry(kind).or_default() += n as i64;
            }
        }
        firing
    }
}
