//! Retry with exponential backoff, the one way every logstream service waits before trying
//! again (a database or broker not reachable yet, a batch that failed to store, a topic that
//! cannot be created yet).

use std::time::Duration;

use crate::shutdown::CancellationToken;

/// Delays that double from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            next: first,
            max: max.max(first),
        }
    }

    /// The delay to wait now; the one after is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Starts again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Waits the next delay; false when `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// The delays, endlessly (for policies that take an iterator of waits).
impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let delays: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        assert_eq!(Backoff::new(ms(300), ms(10)).next_delay(), ms(300));
    }

    #[tokio::test]
    async fn waiting_stops_at_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!b.wait(&shutdown).await);
    }
}
