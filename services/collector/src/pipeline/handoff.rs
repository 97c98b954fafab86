//! What the writer hands the committer (a full [`Job`]) and gets back (its [`Outcome`]).

use std::collections::BTreeMap;

use logstream_core::window::Watermark;

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
    Conflict(Vec<i32>, Batch),
}
