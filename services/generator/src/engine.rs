//! The generation engine: one thread that produces events at the target rate and hands them to
//! the Kafka producer. Start retunes a running engine; stop waits until every generated event was
//! acknowledged or counted as failed, so the totals it returns are final.
//!
//! Rate control: the thread computes how many events are due since the run began
//! (`rate × elapsed`) and produces the difference every millisecond. It never runs more than one
//! second ahead of or behind schedule.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logstream_core::api::{BreakerState, Counters, GeneratorSettings, InstanceStatus};
use logstream_core::format;
use logstream_core::scenario::Injector;
use logstream_core::synth::Synthesizer;
use logstream_service::trace_context;
use rdkafka::producer::{BaseRecord, Producer};

use crate::breaker::Breaker;
use crate::delivery::{self, EventProducer, RecordHeaders};
use crate::metrics::Metrics;

/// What a generation thread needs, shared with the engine.
struct Shared {
    producer: EventProducer,
    breaker: Arc<Breaker>,
    metrics: Metrics,
    topic: String,
    instance_id: String,
    host: String,
    /// Last seq handed out; seq values are 1, 2, 3, … for the life of the process.
    seq: AtomicU64,
}

struct Run {
    stop: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

pub struct Engine {
    shared: Arc<Shared>,
    run: Mutex<Option<Run>>,
    flush_timeout: Duration,
}

impl Engine {
    pub fn new(
        producer: EventProducer,
        breaker: Arc<Breaker>,
        metrics: Metrics,
        topic: String,
        instance_id: String,
        host: String,
        flush_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                producer,
                breaker,
                metrics,
                topic,
                instance_id,
                host,
                seq: AtomicU64::new(0),
            }),
            run: Mutex::new(None),
            flush_timeout,
        }
    }

    pub fn producer_client(&self) -> &rdkafka::client::Client<crate::delivery::DeliveryCounter> {
        self.shared.producer.client()
    }

    fn lock_run(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        // A poisoned lock only means a thread panicked while holding it; the data is a handle.
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts generating with `settings`, replacing (retuning) a run in progress. Blocking.
    /// Every event of the run carries `run_span`'s trace context in its `traceparent` header;
    /// the span ends when the run does.
    pub fn start(
        &self,
        settings: GeneratorSettings,
        run_span: tracing::Span,
    ) -> std::io::Result<()> {
        let mut run = self.lock_run();
        if let Some(old) = run.take() {
            halt(old);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        self.shared
            .metrics
            .target_rate
            .set(settings.rate_per_second as i64);
        let shared = self.shared.clone();
        let (stop2, finished2) = (stop.clone(), finished.clone());
        let thread = std::thread::Builder::new()
            .name("generate".into())
            .spawn(move || {
                let traceparent = trace_context::traceparent(&run_span);
                generate(&shared, &settings, traceparent.as_deref(), &stop2);
                finished2.store(true, Ordering::Release);
                drop(run_span);
            })?;
        tracing::info!(instance_id = %self.shared.instance_id, "generation started");
        *run = Some(Run {
            stop,
            finished,
            thread,
        });
        Ok(())
    }

    /// Stops generating and waits until every generated event is acknowledged or failed
    /// (bounded by the flush timeout). Blocking.
    pub fn stop(&self) -> bool {
        if let Some(old) = self.lock_run().take() {
            halt(old);
            tracing::info!(instance_id = %self.shared.instance_id, "generation stopped");
        }
        self.shared.metrics.target_rate.set(0);
        delivery::drain(&self.shared.producer, self.flush_timeout)
    }

    pub fn is_running(&self) -> bool {
        self.lock_run()
            .as_ref()
            .is_some_and(|r| !r.finished.load(Ordering::Acquire))
    }

    pub fn status(&self) -> InstanceStatus {
        let m = &self.shared.metrics;
        let running = self.is_running();
        InstanceStatus {
            instance_id: self.shared.instance_id.clone(),
            counters: Counters {
                running,
                target_rate: if running {
                    m.target_rate.get().max(0) as u64
                } else {
                    0
                },
                current_rate: m.rate_current.get(),
                generated_total: self.shared.seq.load(Ordering::Acquire),
                sent_total: m.sent.get(),
                failed_total: m.failed.get(),
                rate_limited_total: m.rate_limited.get(),
                in_flight: self.shared.producer.in_flight_count().max(0) as u64,
                circuit_breaker_state: self.shared.breaker.state(),
            },
        }
    }

    /// Feeds the breaker its stall check four times a second.
    pub async fn watch_breaker(
        self: Arc<Self>,
        shutdown: logstream_service::shutdown::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.shared
                .breaker
                .check_stall(self.shared.producer.in_flight_count());
        }
    }

    /// Samples the achieved rate once a second into `log_generation_rate_current`.
    pub async fn sample_rate(
        self: Arc<Self>,
        shutdown: logstream_service::shutdown::CancellationToken,
    ) {
        let mut last = self.shared.seq.load(Ordering::Acquire);
        let mut last_at = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.shared.seq.load(Ordering::Acquire);
            let elapsed = last_at.elapsed().as_secs_f64().max(1e-3);
            self.shared
                .metrics
                .rate_current
                .set((now - last) as f64 / elapsed);
            self.shared
                .metrics
                .in_flight
                .set(self.shared.producer.in_flight_count() as i64);
            last = now;
            last_at = Instant::now();
        }
    }
}

fn halt(run: Run) {
    run.stop.store(true, Ordering::Release);
    if run.thread.join().is_err() {
        tracing::error!("generation thread panicked");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What one run's events are made from.
struct Source<'a> {
    synth: Synthesizer,
    injector: Injector,
    traceparent: Option<&'a str>,
    payload: Vec<u8>,
}

impl Source<'_> {
    /// Generates one event and hands it to the producer.
    fn emit(&mut self, shared: &Shared, elapsed: Duration, timestamp: i64) {
        let mut generated = self.synth.next_generated(timestamp);
        let label = self
            .injector
            .apply(elapsed, &mut self.synth, &mut generated);
        self.payload.clear();
        let format = match format::encode_into(
            generated.format,
            &generated.event,
            generated.access.as_ref(),
            &mut self.payload,
        ) {
            Ok(format) => format,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode event");
                return;
            }
        };
        let seq = shared.seq.fetch_add(1, Ordering::AcqRel) + 1;
        shared.metrics.generated.inc();
        let record = BaseRecord::to(&shared.topic)
            .key(generated.event.service.as_str())
            .payload(self.payload.as_slice())
            .headers(
                RecordHeaders {
                    content_type: format.content_type(),
                    instance_id: &shared.instance_id,
                    seq,
                    traceparent: self.traceparent,
                    label: label.as_deref(),
                }
                .to_kafka(),
            );
        delivery::send_blocking(&shared.producer, &shared.metrics, record);
    }
}

/// How often a half-open breaker lets one probe event through.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The generation loop (runs on its own thread).
fn generate(
    shared: &Shared,
    settings: &GeneratorSettings,
    traceparent: Option<&str>,
    stop: &AtomicBool,
) {
    let mut synth = Synthesizer::new(rand::random(), shared.host.clone());
    if let Some(levels) = &settings.levels {
        synth = synth.with_levels(levels.clone());
    }
    if let Some(formats) = &settings.formats {
        synth = synth.with_formats(formats.clone());
    }
    let mut source = Source {
        synth,
        injector: Injector::new(settings.schedule.clone(), rand::random()),
        traceparent,
        payload: Vec::with_capacity(512),
    };
    let rate = settings.rate_per_second as f64;
    let began = Instant::now();
    let mut produced: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let elapsed = began.elapsed();
        if settings.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let schedule = source.injector.schedule();
        let due = (schedule.effective_seconds(elapsed) * rate) as u64;
        let max_lag = (rate * schedule.rate_factor(elapsed)).max(1.0) as u64;
        // Never try to catch up more than one second of backlog at once.
        if due > produced + max_lag {
            produced = due - max_lag;
        }
        if !shared.breaker.permits() {
            // Open: generate nothing (no events into the void); resume at the rate, no burst.
            produced = due;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if shared.breaker.state() == BreakerState::HalfOpen {
            // Probing: one event at a time until Kafka acknowledges one (closed) or not (open).
            if due > produced {
                source.emit(shared, elapsed, now_ms());
            }
            produced = due;
            std::thread::sleep(PROBE_EVERY);
            continue;
        }
        let timestamp = now_ms();
        while produced < due && !stop.load(Ordering::Relaxed) {
            source.emit(shared, elapsed, timestamp);
            produced += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
