//! Stage 3, out of the process: the `committer` writes each batch while the next fills, first
//! its dead letters (`dlq`) and `routed` copies, then one PostgreSQL transaction (`store`:
//! events, window counts, alert episodes and the partitions' offsets together); up to three
//! batches at once, taking `turn`s to finish in order. Beside it,
//! `alert_publisher` takes the alert transitions the batches queued to `logs.alerts`, and the
//! `notifier` to Alertmanager and a webhook; `alert_fast_lane` sends critical alerts before
//! their batch is stored. New destinations (an archive, a search cluster)
//! go here, beside `routed`.

pub mod alert_fast_lane;
pub mod alert_publisher;
pub mod committer;
pub mod dlq;
pub mod notifier;
pub mod routed;
#[cfg(test)]
mod storage_fuzz;
pub mod store;
pub mod turn;
