//! Backpressure between Kafka and storage. The queue to the writer is bounded; when it stays
//! full for longer than `pause_after` (storage slow or down), or resident memory is over 90% of
//! the limit while records are still queued, the consumer pauses every owned partition (Kafka
//! pause/resume) instead of buffering, and resumes once the queue has drained to half.
//! While paused it keeps polling, so rebalances and group heartbeats go on.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use crate::messages::{Input, Record};
use crate::metrics::Metrics;

/// What became of a record handed to [`Valve::send`].
pub enum Sent {
    Yes,
    /// The queue stayed full: the record is handed back (keep it, in order, and pause).
    Full(Record),
    /// The writer is gone.
    Closed,
}

pub struct Valve {
    paused: bool,
    capacity: usize,
    pause_after: Duration,
    /// Resident memory from which partitions are paused (a share of the limit).
    pause_at_bytes: u64,
    memory_checked: Instant,
    /// Calls since the clock was last read for the memory check.
    unchecked_calls: u32,
    over_memory: bool,
    metrics: Metrics,
}

/// Calls of [`Valve::regulate`] (one per record when busy) between two reads of the clock for
/// the memory check, while not paused.
const CLOCK_EVERY: u32 = 64;

/// Tenths of the memory limit at which partitions are paused. Resident memory is sampled every
/// 100 ms, and what is already fetched and batched keeps arriving after a pause: pausing at the
/// limit itself, a backlog of 10 million records read under 20,000 events/s of live traffic
/// peaked at 520 MiB against a limit of 512.
const PAUSE_AT_TENTHS: u64 = 9;

impl Valve {
    pub fn new(
        capacity: usize,
        pause_after: Duration,
        memory_limit_bytes: u64,
        metrics: Metrics,
    ) -> Self {
        Self {
            paused: false,
            capacity,
            pause_after,
            pause_at_bytes: memory_limit_bytes / 10 * PAUSE_AT_TENTHS,
            memory_checked: Instant::now(),
            unchecked_calls: 0,
            over_memory: false,
            metrics,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Queues `record`, waiting up to `pause_after` for room.
    pub fn send(&self, tx: &Sender<Input>, record: Record) -> Sent {
        let mut input = Input::Record(record);
        let mut deadline = None;
        loop {
            match tx.try_send(input) {
                Ok(()) => return Sent::Yes,
                Err(TrySendError::Closed(_)) => return Sent::Closed,
                Err(TrySendError::Full(back)) => {
                    let Input::Record(record) = back else {
                        return Sent::Closed;
                    };
                    // The clock is read only once the queue is full.
                    let now = Instant::now();
                    if now >= *deadline.get_or_insert(now + self.pause_after) {
                        return Sent::Full(record);
                    }
                    input = Input::Record(record);
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// Pauses or resumes the partitions for the current state: `backlog` records waiting to be
    /// queued, the queue's fill, resident memory.
    pub fn regulate<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tx: &Sender<Input>,
        backlog: usize,
    ) {
        let queued = self.capacity.saturating_sub(tx.capacity());
        let over_memory = self.over_memory();
        if self.paused {
            let drained = backlog == 0 && queued <= self.capacity / 2;
            if drained && (!over_memory || queued == 0) {
                self.set(consumer, false);
            } else {
                // Partitions assigned while paused must not flow either.
                self.set(consumer, true);
            }
        } else if backlog > 0 || (over_memory && queued > self.capacity / 2) {
            tracing::warn!(
                backlog,
                queued,
                over_memory,
                "storage is behind; pausing Kafka partitions"
            );
            self.metrics.pauses.inc();
            self.set(consumer, true);
        }
    }

    fn set<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, pause: bool) {
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let result = if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        };
        match result {
            Ok(()) => {
                if self.paused && !pause {
                    tracing::info!("storage caught up; resuming Kafka partitions");
                }
                self.paused = pause;
                self.metrics.paused.set(i64::from(pause));
            }
            Err(e) => tracing::warn!(error = %e, pause, "cannot pause/resume partitions"),
        }
    }

    /// Whether resident memory is over the pausing point (sampled at most every 100 ms, and, while
    /// records flow, at least every [`CLOCK_EVERY`] records).
    fn over_memory(&mut self) -> bool {
        self.unchecked_calls += 1;
        if !self.paused && self.unchecked_calls < CLOCK_EVERY {
            return self.over_memory;
        }
        self.unchecked_calls = 0;
        if self.memory_checked.elapsed() >= Duration::from_millis(100) {
            self.memory_checked = Instant::now();
            self.over_memory = resident_bytes().is_some_and(|rss| rss > self.pause_at_bytes);
        }
        self.over_memory
    }
}

/// This process's resident set size, from `/proc/self/statm` (None where there is no procfs).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_resident_memory() {
        let rss = resident_bytes().expect("procfs");
        assert!(rss > 1 << 20, "{rss}");
    }
}
