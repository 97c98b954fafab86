//! Stage 3, out of the process: the `committer` writes each batch while the next fills, first
//! its dead letters (`dlq`) and `routed` copies, then one PostgreSQL transaction (`store`:
//! events, window counts and the partitions' offsets together). New destinations (an archive,
//! a search cluster) go here, beside `routed`.

pub mod committer;
pub mod dlq;
pub mod routed;
#[cfg(test)]
mod storage_fuzz;
pub mod store;
