//! Whose turn it is to finish a transaction. The committer writes several batches at once, each
//! on its own connection: a later one copies its events while the one before finishes, then
//! waits for that one's end before it touches the rows both share (window counts, alert
//! episodes, detector snapshots, the partitions' offsets), so batches still end in order and
//! each offset fence finds the offsets the batch before it stored.

use std::time::Duration;

use tokio::sync::watch;

/// The end of the batch before this one (none for the first).
#[derive(Clone)]
pub struct Turn(Option<watch::Receiver<bool>>);

/// Ends a batch's turn, for the batch after it (also when dropped).
pub struct Done(watch::Sender<bool>);

impl Turn {
    /// Nothing to wait for.
    pub fn first() -> Self {
        Self(None)
    }

    /// A new batch's end: the handle that ends it, and the turn of the batch after it.
    pub fn new_end() -> (Done, Turn) {
        let (tx, rx) = watch::channel(false);
        (Done(tx), Turn(Some(rx)))
    }

    /// Waits until the batch before has ended (stored, found conflicting, or given up).
    pub async fn wait(&self) {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            // An error means the sender is gone: that batch has ended too.
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    /// Waits as [`Turn::wait`] for at most `patience`; false when the batch before is still
    /// going on.
    pub async fn wait_within(&self, patience: Duration) -> bool {
        tokio::time::timeout(patience, self.wait()).await.is_ok()
    }
}

impl Done {
    pub fn finish(self) {
        let _ = self.0.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_ends_when_the_batch_before_does() {
        assert!(Turn::first().wait_within(Duration::ZERO).await);
        let (done, turn) = Turn::new_end();
        assert!(!turn.wait_within(Duration::from_millis(20)).await);
        done.finish();
        assert!(turn.wait_within(Duration::from_millis(20)).await);
        let (done, turn) = Turn::new_end();
        drop(done);
        assert!(turn.wait_within(Duration::from_millis(20)).await);
    }
}
