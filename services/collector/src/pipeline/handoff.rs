//! What the writer hands the committer (a full [`Job`]) and gets back (its [`Outcome`]), and the
//! channel between them: the writer knows its ends only, not who commits.

use std::collections::BTreeMap;

use logstream_core::window::Watermark;
use tokio::sync::mpsc;

use crate::pipeline::batch::Batch;

/// A full batch on its way to PostgreSQL.
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

/// The hand-off: one batch being written, one waiting; the writer fills a third meanwhile.
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
