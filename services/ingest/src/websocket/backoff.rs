//! How long an upstream's reader waits before connecting again: the services' exponential
//! backoff ([`Backoff`]), with equal jitter (each delay between half of it and all of it), so
//! upstreams that failed together do not all come back in the same instant.

use std::time::Duration;

use logstream_service::retry::Backoff;
use tokio_util::sync::CancellationToken;

/// Delays between connection attempts: doubling from the first up to the maximum, jittered.
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
}

impl Reconnect {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            backoff: Backoff::new(first, max),
        }
    }

    /// The delay to wait now (the one after is about twice as long, up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        jittered(self.backoff.next_delay(), rand::random::<f64>())
    }

    /// Starts again from the first delay (after a connection that worked).
    pub fn reset(&mut self) {
        self.backoff.reset();
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

/// `delay` with equal jitter: half of it, plus `u` (in 0..=1) times the other half.
pub fn jittered(delay: Duration, u: f64) -> Duration {
    let u = if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = delay / 2;
    half + (delay - half).mul_f64(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let d = Duration::from_millis(1000);
        assert_eq!(jittered(d, 0.0), Duration::from_millis(500));
        assert_eq!(jittered(d, 1.0), d);
        assert_eq!(jittered(d, 7.0), d);
        assert_eq!(jittered(d, f64::NAN), Duration::from_millis(500));
        assert_eq!(jittered(Duration::ZERO, 0.5), Duration::ZERO);
        for i in 0..=100 {
            let j = jittered(d, f64::from(i) / 100.0);
            assert!(j >= d / 2 && j <= d, "{j:?}");
        }
    }

    #[test]
    fn delays_grow_to_the_maximum_and_reset() {
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(100), ms(1000));
        let delays: Vec<Duration> = (0..8).map(|_| r.next_delay()).collect();
        for (delay, unjittered) in delays
            .iter()
            .zip([100, 200, 400, 800, 1000, 1000, 1000, 1000])
        {
            assert!(
                *delay >= ms(unjittered) / 2 && *delay <= ms(unjittered),
                "{delays:?}"
            );
        }
        r.reset();
        assert!(r.next_delay() <= ms(100));
    }

    #[tokio::test]
    async fn waiting_stops_at_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut r = Reconnect::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!r.wait(&shutdown).await);
    }
}
