//! The circuit breaker around Kafka delivery (the `failsafe` crate's state machine), used by
//! every service that produces events (generator, ingest).
//!
//! Failures: a failed delivery, the producer reporting all brokers down, and a stall (records
//! in flight but no delivery report for the stall time; checked four times a second, so a dead
//! broker opens the breaker in about stall + failures × 250 ms even though librdkafka would
//! keep the records queued until their message timeout). Successes: delivery reports. After
//! `failures` consecutive failures the breaker opens; after a backoff (doubling from the minimum
//! to the maximum; failsafe's own backoffs start at one second) it lets the producer try again
//! (half-open); the first acknowledgement closes it, another failure opens it again for longer.
//! While it is open the generator generates nothing and the ingest service refuses new events
//! (503 with `Retry-After`, TCP reads paused).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::retry::Backoff;
use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use failsafe::{Config, Instrument, StateMachine};
use logstream_core::api::BreakerState;
use prometheus::IntGauge;

/// Breaker settings (from [`crate::settings::BreakerArgs`]).
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub failures: u32,
    pub stall: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Keeps the state for status and the `circuit_breaker_state` gauge, and logs transitions.
#[derive(Clone)]
struct Observer {
    state: Arc<AtomicU8>,
    gauge: IntGauge,
    began: Instant,
    /// Milliseconds since `began` of the last move to half-open (a probe's stall starts there).
    half_open_at_ms: Arc<AtomicI64>,
}

impl Observer {
    fn set(&self, state: BreakerState) {
        let code = match state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.state.store(code, Ordering::Release);
        self.gauge.set(i64::from(code));
    }
}

impl Instrument for Observer {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        tracing::warn!("kafka circuit breaker open: producing paused");
        self.set(BreakerState::Open);
    }

    fn on_half_open(&self) {
        tracing::info!("kafka circuit breaker half-open: trying again");
        self.half_open_at_ms
            .store(self.began.elapsed().as_millis() as i64, Ordering::Release);
        self.set(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        tracing::info!("kafka circuit breaker closed: producing resumed");
        self.set(BreakerState::Closed);
    }
}

pub struct Breaker {
    machine: StateMachine<ConsecutiveFailures<Backoff>, Observer>,
    observer: Observer,
    settings: BreakerSettings,
    began: Instant,
    /// Milliseconds since `began` of the last delivery report the stall check knows of.
    last_report_ms: AtomicI64,
    /// Delivery reports so far, and the count the stall check saw last: a report costs one
    /// atomic addition, not a clock reading (reports come by the hundred thousand a second).
    reports: AtomicU64,
    seen_reports: AtomicU64,
    /// A failure was told to the state machine since its last success.
    failed_since_success: AtomicBool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings, gauge: IntGauge) -> Self {
        let began = Instant::now();
        let observer = Observer {
            state: Arc::new(AtomicU8::new(0)),
            gauge,
            began,
            half_open_at_ms: Arc::new(AtomicI64::new(0)),
        };
        observer.set(BreakerState::Closed);
        let policy = consecutive_failures(
            settings.failures,
            Backoff::new(settings.backoff_min, settings.backoff_max),
        );
        Self {
            machine: Config::new()
                .failure_policy(policy)
                .instrument(observer.clone())
                .build(),
            observer,
            settings,
            began,
            last_report_ms: AtomicI64::new(0),
            reports: AtomicU64::new(0),
            seen_reports: AtomicU64::new(0),
            failed_since_success: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> i64 {
        self.began.elapsed().as_millis() as i64
    }

    /// Whether the producer may be given records now (moves an open breaker to half-open after
    /// its backoff).
    pub fn permits(&self) -> bool {
        self.machine.is_call_permitted()
    }

    /// A delivery report of success. The state machine (behind a lock) hears of it only when
    /// it has something to learn: a failure to forget, or a breaker that is not closed.
    pub fn on_delivered(&self) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        let failed = self.failed_since_success.swap(false, Ordering::AcqRel);
        if failed || self.state() != BreakerState::Closed {
            self.machine.on_success();
        }
    }

    pub fn on_failure(&self, why: &str) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.last_report_ms.store(self.now_ms(), Ordering::Release);
        tracing::debug!(why, "kafka delivery failure recorded by the breaker");
        self.failed();
    }

    /// Tells the state machine of a failure, then marks it for the next success to clear (in
    /// that order: a success that comes between the two leaves the mark to the next one).
    fn failed(&self) {
        self.machine.on_error();
        self.failed_since_success.store(true, Ordering::Release);
    }

    /// Counts a stall as a failure: records in flight and no delivery report for the stall
    /// time (a half-open breaker's probe gets the whole stall time). Called periodically.
    pub fn check_stall(&self, in_flight: i32) {
        let reports = self.reports.load(Ordering::Relaxed);
        if self.seen_reports.swap(reports, Ordering::AcqRel) != reports {
            self.last_report_ms.store(self.now_ms(), Ordering::Release);
        }
        let since = self
            .last_report_ms
            .load(Ordering::Acquire)
            .max(self.observer.half_open_at_ms.load(Ordering::Acquire));
        let silent = self.now_ms() - since;
        if in_flight > 0 && silent >= self.settings.stall.as_millis() as i64 {
            tracing::debug!(in_flight, silent_ms = silent, "kafka delivery stalled");
            self.failed();
        }
        if in_flight == 0 {
            // Nothing outstanding: silence is not a stall.
            self.last_report_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.observer.state.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            1 => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            BreakerSettings {
                failures: 3,
                stall: Duration::from_millis(50),
                backoff_min: Duration::from_millis(100),
                backoff_max: Duration::from_millis(200),
            },
            IntGauge::new("g", "g").expect("gauge"),
        )
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let b = breaker();
        b.on_failure("x");
        b.on_failure("x");
        b.on_delivered();
        b.on_failure("x");
        b.on_failure("x");
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a success resets the count"
        );
        b.on_failure("x");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.observer.gauge.get(), 2);
        assert!(!b.permits());
        std::thread::sleep(Duration::from_millis(250));
        assert!(b.permits());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.on_delivered();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.observer.gauge.get(), 0);
    }

    #[test]
    fn a_stall_with_records_in_flight_counts_as_failure() {
        let b = breaker();
        b.check_stall(0);
        std::thread::sleep(Duration::from_millis(60));
        b.check_stall(0);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "nothing in flight: no stall"
        );
        std::thread::sleep(Duration::from_millis(60));
        for _ in 0..3 {
            b.check_stall(10);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }
}
