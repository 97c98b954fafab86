//! Periodic chores: consumer lag of every partition of the topic (high watermark − the next
//! offset PostgreSQL holds, whoever owns the partition, so a partition nobody consumes shows a
//! growing lag), whether this member has been left without partitions while some have no owner
//! (readiness, and a new join when that lasts), and `log_events` partitions (created ahead,
//! dropped after the retention, their event-time index kept summarized).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_service::shutdown::CancellationToken;
use logstream_service::sync::lock;

use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::pipeline::event_rows::day_of;
use crate::shared::{Committed, Problem};
use crate::sink::store::Store;
use crate::stored_offsets::StoredOffsets;

/// Lag of one partition, as last sampled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    /// Whether this collector holds the partition.
    pub owned: bool,
    pub next_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
}

/// What the lag sampler needs.
#[derive(Clone)]
pub struct LagSampler {
    pub broker: Arc<Broker>,
    pub offsets: Arc<StoredOffsets>,
    pub topic: String,
    pub committed: Committed,
    pub metrics: Metrics,
}

impl LagSampler {
    /// Sets `kafka_offsets_ahead_of_topic` of `partition`; above zero the topic is shorter than
    /// what PostgreSQL stored of it (deleted and recreated, or truncated), which no lag shows:
    /// said in the log at every sample.
    fn show_ahead(&self, partition: i32, next_offset: i64, high_watermark: i64) {
        let ahead = (next_offset - high_watermark).max(0);
        self.metrics
            .ahead
            .with_label_values(&[&partition.to_string()])
            .set(ahead);
        if ahead > 0 {
            tracing::error!(topic = %self.topic, partition, stored_next_offset = next_offset, high_watermark,
                "PostgreSQL holds offsets beyond the topic's end (was the topic deleted and recreated?): \
                 its records below the stored offset are not stored until the stored offsets are reset \
                 (README: Recreating the topic)");
        }
    }

    /// Samples the lag of every partition of the topic and sets `kafka_consumer_lag`. Owned
    /// partitions count from this member's committed offsets (the newest), the others from
    /// PostgreSQL's (what their owner, if any, stored); with PostgreSQL unreachable, only the
    /// owned ones are sampled.
    pub async fn sample(&self) -> Vec<PartitionLag> {
        let owned: BTreeMap<i32, Option<i64>> = lock(&self.committed).clone();
        let (broker, topic) = (self.broker.clone(), self.topic.clone());
        let all = tokio::task::spawn_blocking(move || broker.partitions(&topic))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| owned.keys().copied().collect());
        let stored = match self.offsets.load(&all).await {
            Ok(stored) => Some(stored),
            Err(e) => {
                tracing::debug!(error = %e, "lag: stored offsets unavailable");
                None
            }
        };
        let partitions: Vec<(i32, bool, Option<i64>)> = all
            .into_iter()
            .filter_map(|p| match (owned.get(&p), &stored) {
                (Some(next), _) => Some((p, true, *next)),
                (None, Some(stored)) => Some((p, false, stored.get(&p).map(|s| s.next_offset))),
                (None, None) => None,
            })
            .collect();
        let (broker, topic) = (self.broker.clone(), self.topic.clone());
        let marks: Vec<Option<(i64, i64)>> = tokio::task::spawn_blocking({
            let ids: Vec<i32> = partitions.iter().map(|p| p.0).collect();
            move || ids.iter().map(|&p| broker.watermarks(&topic, p)).collect()
        })
        .await
        .unwrap_or_default();
        partitions
            .into_iter()
            .zip(marks.into_iter().chain(std::iter::repeat(None)))
            .map(|((partition, owned, next_offset), marks)| {
                let lag = marks.map(|(low, high)| (high - next_offset.unwrap_or(low)).max(0));
                if let (Some((_, high)), Some(next)) = (marks, next_offset) {
                    self.show_ahead(partition, next, high);
                }
                if let Some(lag) = lag {
                    self.metrics
                        .lag
                        .with_label_values(&[&partition.to_string()])
                        .set(lag);
                }
                PartitionLag {
                    partition,
                    owned,
                    next_offset,
                    high_watermark: marks.map(|(_, high)| high),
                    lag,
                }
            })
            .collect()
    }
}

/// Samples lag every 5 s, and keeps `health` up to date: a member that has held no partition
/// for longer than `session_timeout` while partitions of the topic have no owner in `group`
/// (a group coordinator that lost its assignment, a member that never rejoined) is unhealthy.
/// Past twice the session timeout it asks the consumer thread to join again (`rejoin`), and
/// again every twice the session timeout while the stall lasts.
pub async fn lag_loop(
    sampler: LagSampler,
    group: String,
    session_timeout: Duration,
    health: Problem,
    rejoin: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut idle_since: Option<Instant> = Some(Instant::now());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        sampler.sample().await;
        let holds_any = !lock(&sampler.committed).is_empty();
        let problem = if holds_any {
            idle_since = None;
            None
        } else {
            let since = idle_since.get_or_insert_with(Instant::now);
            let idle = since.elapsed();
            if idle <= session_timeout {
                None
            } else {
                let unowned = unowned_partitions(&sampler, &group).await;
                if stalled(idle, &unowned, session_timeout) {
                    tracing::warn!(
                        ?unowned,
                        idle_s = idle.as_secs(),
                        "no partition held while some have no owner: joining the group again"
                    );
                    rejoin.store(true, Ordering::Release);
                    // The next request, if this one does not help, one stall period later.
                    *since = Instant::now()
                        .checked_sub(session_timeout)
                        .unwrap_or_else(Instant::now);
                }
                idle_problem(idle, &unowned, &sampler.topic, &group)
            }
        };
        if let Some(problem) = &problem {
            tracing::warn!(%problem, "consumer group");
        }
        *lock(&health) = problem;
    }
}

/// The partitions of the sampled topic no member of `group` owns, asked of the broker.
async fn unowned_partitions(sampler: &LagSampler, group: &str) -> Result<Vec<i32>, String> {
    let (broker, group, topic) = (
        sampler.broker.clone(),
        group.to_owned(),
        sampler.topic.clone(),
    );
    tokio::task::spawn_blocking(move || broker.unowned_partitions(&group, &topic))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// Whether a member idle for `idle` is stalled: past twice the session timeout while the broker
/// says partitions have no owner (not when the broker cannot be asked: joining again would not
/// help while it is unreachable).
fn stalled(idle: Duration, unowned: &Result<Vec<i32>, String>, session_timeout: Duration) -> bool {
    idle > 2 * session_timeout && matches!(unowned, Ok(unowned) if !unowned.is_empty())
}

/// Why a member that has held no partition for `idle` (past the session timeout) is unhealthy,
/// given the partitions of `topic` no member of `group` owns; None when every partition has an
/// owner (more members than partitions leaves some idle, rightly).
fn idle_problem(
    idle: Duration,
    unowned: &Result<Vec<i32>, String>,
    topic: &str,
    group: &str,
) -> Option<String> {
    let idle = idle.as_secs();
    match unowned {
        Ok(unowned) if unowned.is_empty() => None,
        Ok(unowned) => Some(format!(
            "held no partition of {topic} for {idle} s while partitions {unowned:?} have no owner in group {group}"
        )),
        Err(e) => Some(format!(
            "held no partition of {topic} for {idle} s, and group {group} cannot be described: {e}"
        )),
    }
}

/// Keeps `log_events` partitioned ahead and bounded: creates the partitions of today and the
/// next two days, and drops every day's partition once all of it is older than the retention.
pub async fn partition_loop(store: Arc<Store>, retention_hours: u64, shutdown: CancellationToken) {
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let today = day_of(now);
        if let Err(e) = store.ensure_partitions(today..=today + 2).await {
            tracing::warn!(error = %e, "cannot create log_events partitions ahead");
        }
        let cutoff = now - retention_hours as i64 * 3_600_000;
        match store.drop_partitions_before(cutoff).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(?dropped, "retention: dropped old log_events partitions")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: cannot drop old partitions"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// How often the event-time index's new block ranges are summarized: besides its range, a search
/// reads at most the rows written since the last time (the newest, mostly still cached).
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Keeps the event-time BRIN index of `log_events` summarized as rows arrive (see
/// [`Store::summarize_time_index`]).
pub async fn time_index_loop(store: Arc<Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SUMMARY_INTERVAL) => {}
        }
        match store.summarize_time_index().await {
            Ok(done) => tracing::debug!(
                ranges = done.ranges,
                skipped = done.skipped,
                "event-time index: new block ranges summarized (partitions being vacuumed: next time)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "event-time index: cannot summarize new block ranges")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{idle_problem, stalled};
    use std::time::Duration;

    #[test]
    fn an_idle_member_is_a_problem_only_while_partitions_have_no_owner() {
        let idle = Duration::from_secs(42);
        assert_eq!(idle_problem(idle, &Ok(vec![]), "logs.raw", "g"), None);
        assert_eq!(
            idle_problem(idle, &Ok(vec![1, 4]), "logs.raw", "g").as_deref(),
            Some("held no partition of logs.raw for 42 s while partitions [1, 4] have no owner in group g")
        );
        assert!(
            idle_problem(idle, &Err("timed out".into()), "logs.raw", "g")
                .is_some_and(|p| p.contains("cannot be described: timed out"))
        );
    }

    #[test]
    fn a_member_joins_again_only_when_idle_past_two_sessions_while_partitions_have_no_owner() {
        let session = Duration::from_secs(10);
        let (short, long) = (Duration::from_secs(15), Duration::from_secs(25));
        assert!(!stalled(short, &Ok(vec![0, 1]), session));
        assert!(stalled(long, &Ok(vec![0, 1]), session));
        assert!(
            !stalled(long, &Ok(vec![]), session),
            "every partition has an owner"
        );
        assert!(
            !stalled(long, &Err("timed out".into()), session),
            "the broker cannot be asked"
        );
    }
}
