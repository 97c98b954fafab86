//! Stage 1, the Kafka source: a consumer-group member on its own thread (`consumer`) that reads
//! records in partition order and hands them to the pipeline as [`crate::messages::Input`];
//! `rebalance` starts newly assigned partitions from the offsets PostgreSQL holds and flushes
//! revoked ones; `backpressure` pauses the partitions while storage is behind.

pub mod backpressure;
pub mod consumer;
pub mod rebalance;
