//! What the writer hands the committer (a full [`Job`]) and gets back (its [`Outcome`]), and the
//! channel between them: the writer knows its ends only, not who commits.

use std::collections::BTreeMap;

use logstream_core::window::Watermark;
use tokio::sync::mpsc;

use crate::pipeline::batch::Batch;

/// Batches written at once: one finishing, the next copying its events meanwhile (each on its
/// own PostgreSQL backend). Two `COPY` streams load this project's 2-core machine 1.5 times as
/// fast as one. Three in flight stored 7-10% more than two while each batch's serial tail was
/// long (one statement per partition's offset, the sketch merge on every window); since it is
/// short, the third stream mostly adds contention in PostgreSQL (relation extension, WAL and
/// buffer locks), and two with batches of 30,000 stored more (e2e-bench, 2026-12-05, stored /
/// binary `\copy` per round: three of 10,000: 0.95, 0.99; two of 10,000: 0.97, 0.93, 0.94;
/// two of 30,000: 1.03, 1.04, 0.99). The writer hands a batch off early while one of them is
/// free.
pub const IN_FLIGHT: usize = 2;

/// A batch on its way to PostgreSQL.
pub struct Job {
    pub batch: Batch,
    /// Per partition of the batch, the offset PostgreSQL must hold for the batch to apply
    /// (None: no row yet): the fence against another member having stored them.
    pub expected: BTreeMap<i32, Option<i64>>,
    /// The watermark as of the batch's last record.
    pub watermark: Watermark,
    /// The watermark before the batch's first record (to build parts of it again).
    pub watermark_before: Watermark,
}

/// What became of a job; the batch comes back emptied, for reuse.
pub enum Outcome {
    Stored(Batch),
    /// Another member had stored offsets of the batch's partitions (listed): nothing of the
    /// batch was written, and every one of them must be read again from what PostgreSQL holds.
    /// The batch comes back unless its write failed unexpectedly (a panic).
    Conflict(Vec<i32>, Option<Batch>),
}

/// The writer's ends of the hand-off.
pub struct WriterEnds {
    pub jobs: mpsc::Sender<Job>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
}

/// The committer's ends of the hand-off.
pub struct CommitterEnds {
    pub jobs: mpsc::Receiver<Job>,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
}

/// The hand-off: up to [`IN_FLIGHT`] batches being written and one waiting; the writer fills the
/// next meanwhile.
pub fn channel() -> (WriterEnds, CommitterEnds) {
    let (jobs, jobs_rx) = mpsc::channel(1);
    let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
    (
        WriterEnds { jobs, outcomes },
        CommitterEnds {
            jobs: jobs_rx,
            outcomes: outcomes_tx,
        },
    )
}
