//! Beside the data path: the periodic chores (`housekeeping`: lag of every partition, whether
//! this member is left idle, `log_events` partitions and retention) and the status endpoint
//! (`status`).

pub mod housekeeping;
pub mod status;
