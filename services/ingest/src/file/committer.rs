//! The file source's committer, on a thread of its own, so that reading the next batch goes on
//! while Kafka acknowledges the last one: each batch handed over is one transaction (its
//! records, then its checkpoint), committed in the order given. When one fails, the batches
//! handed over after it (read on top of it) are skipped until the reader has gone back to the
//! last committed checkpoint and hands over batches of a new epoch. A producer that can no
//! longer go on (fenced, broken) is replaced.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use logstream_service::retry::Backoff;
use prometheus::Histogram;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{self, Checkpoint};
use super::transaction::{Target, Transactions, TxnError};
use crate::publisher::Encoded;

/// One batch for one transaction.
pub struct Handoff {
    /// Batches of an epoch read on from where the batches before them end.
    pub epoch: u64,
    pub first_seq: u64,
    pub records: Vec<Encoded>,
    pub checkpoint: Vec<u8>,
}

/// How a batch ended, in the order the batches were handed over.
#[derive(Debug)]
pub enum Outcome {
    /// Committed; `too_large` of its records were refused by Kafka for their size.
    Committed { epoch: u64, too_large: u64 },
    /// Aborted: read again from the last committed checkpoint; when the producer had to be made
    /// again (a commit whose outcome was not known), that checkpoint as Kafka has it.
    Failed {
        epoch: u64,
        error: String,
        checkpoint: Option<Checkpoint>,
    },
    /// Not tried: a batch before it failed.
    Skipped,
}

/// The committer's ends: hand batches to it, read their outcomes; it stops once the handoff
/// end is dropped and every batch is done.
pub struct Committer {
    pub handoffs: SyncSender<Handoff>,
    pub outcomes: Receiver<Outcome>,
    pub thread: JoinHandle<()>,
}

/// Starts the committer with `producer` (made again from `target` when it breaks).
pub fn spawn(
    producer: Transactions,
    target: Target,
    commit_seconds: Histogram,
    shutdown: CancellationToken,
) -> std::io::Result<Committer> {
    // One batch waits while one commits: the reader reads the next meanwhile.
    let (handoffs, incoming) = sync_channel(1);
    let (report, outcomes) = channel();
    let thread = std::thread::Builder::new()
        .name("file-commit".into())
        .spawn(move || {
            run(
                producer,
                &target,
                &incoming,
                &report,
                &commit_seconds,
                &shutdown,
            )
        })?;
    Ok(Committer {
        handoffs,
        outcomes,
        thread,
    })
}

fn run(
    mut producer: Transactions,
    target: &Target,
    incoming: &Receiver<Handoff>,
    report: &Sender<Outcome>,
    commit_seconds: &Histogram,
    shutdown: &CancellationToken,
) {
    let mut failed_epoch: Option<u64> = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    for handoff in incoming {
        let epoch = handoff.epoch;
        if failed_epoch.is_some_and(|failed| epoch <= failed) {
            let _ = report.send(Outcome::Skipped);
            continue;
        }
        let timer = commit_seconds.start_timer();
        match commit(&producer, &handoff) {
            Ok(too_large) => {
                timer.observe_duration();
                backoff.reset();
                let _ = report.send(Outcome::Committed { epoch, too_large });
            }
            Err(e) => {
                failed_epoch = Some(epoch);
                let mut checkpoint = None;
                if let TxnError::Fatal(_) = e {
                    // The new producer completes or aborts what the old one left open; then the
                    // checkpoint in Kafka says what is committed.
                    match reopen(target, shutdown) {
                        Some((fresh, committed)) => {
                            producer = fresh;
                            checkpoint = Some(committed);
                        }
                        None => return,
                    }
                }
                let _ = report.send(Outcome::Failed {
                    epoch,
                    error: e.to_string(),
                    checkpoint,
                });
                std::thread::sleep(backoff.next_delay());
            }
        }
    }
}

/// Blocking: one batch as one transaction; how many records Kafka refused for their size.
fn commit(producer: &Transactions, handoff: &Handoff) -> Result<u64, TxnError> {
    producer.begin()?;
    let mut too_large = 0;
    for (i, record) in handoff.records.iter().enumerate() {
        match producer.send(record, handoff.first_seq + i as u64) {
            Ok(true) => {}
            Ok(false) => too_large += 1,
            Err(e) => return Err(producer.abort(e)),
        }
    }
    producer.commit(&handoff.checkpoint)?;
    Ok(too_large)
}

/// A new producer (fencing the broken one) and the checkpoint committed last, retried until
/// made or `shutdown`.
fn reopen(target: &Target, shutdown: &CancellationToken) -> Option<(Transactions, Checkpoint)> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        let opened = Transactions::open(target)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                checkpoint::load(
                    &target.brokers,
                    &target.checkpoint_topic,
                    &target.key,
                    target.timeout,
                )
                .map(|c| (p, c.unwrap_or_default()))
                .map_err(|e| e.to_string())
            });
        match opened {
            Ok(ready) => return Some(ready),
            Err(e) if shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "file source: no transactional producer at shutdown; the last lines are read again at the next start");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "file source: cannot make a new transactional producer; trying again");
                std::thread::sleep(backoff.next_delay());
            }
        }
    }
}
