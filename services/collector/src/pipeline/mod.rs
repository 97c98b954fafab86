//! Stage 2, in memory: the `writer` takes the consumer's records in order, skips what is stored
//! already, and fills a `batch` (decode, event-time windows, dead letters, and the rows of
//! `event_rows` and `aggregate_rows` for PostgreSQL), which it hands to the sink as a
//! `handoff::Job` when full or due. `detection` keeps each partition's detectors, which see
//! every event the batch stores; their alert changes (`alert_rows`) and state snapshots travel
//! with the batch, so the sink stores them in the same transaction.

pub mod aggregate_rows;
pub mod alert_rows;
pub mod batch;
pub mod detection;
pub mod event_rows;
pub mod handoff;
pub mod writer;
