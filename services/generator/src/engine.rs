//! The generation engine: one thread that produces events at the target rate and hands them to
//! the Kafka producer. Start retunes a running engine; stop waits until every generated event was
//! acknowledged or counted as failed, so the totals it returns are final.
//!
//! Rate control: the thread computes how many events are due since the run began
//! (`rate × elapsed`) and produces the difference every millisecond. It never runs more than one
//! second ahead of or behind schedule.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logstream_core::api::{BreakerState, Counters, GeneratorSettings, InstanceStatus};
use logstream_core::format;
use logstream_core::scenario::Injector;
use logstream_core::synth::Synthesizer;
use logstream_service::sync::lock;
use logstream_service::trace_context;
use rdkafka::producer::{BaseRecord, Producer};

use crate::delivery::{self, EventProducer};
use crate::global_limit::Allowance;
use crate::metrics::Metrics;
use logstream_service::breaker::Breaker;
use logstream_service::record_headers::RecordHeaders;

/// What a generation thread needs, shared with the engine.
struct Shared {
    producer: EventProducer,
    breaker: Arc<Breaker>,
    allowance: Arc<Allowance>,
    metrics: Metrics,
    topic: String,
    instance_id: String,
    host: String,
    /// Last seq handed out; seq values are 1, 2, 3, … for the life of the process.
    seq: AtomicU64,
}

struct Run {
    stop: Arc<AtomicBool>,
    /// Generation threads still running.
    running: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

/// The instance's fixed settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub topic: String,
    pub instance_id: String,
    pub host: String,
    /// How long stop waits for acknowledgements.
    pub flush_timeout: Duration,
    /// Threads of a run whose start request names none.
    pub threads: u32,
    /// Batch size of a run whose start request names none.
    pub batch_size: u32,
    /// Global cap of a run whose start request names none.
    pub global_rate: Option<u64>,
}

pub struct Engine {
    shared: Arc<Shared>,
    run: Mutex<Option<Run>>,
    flush_timeout: Duration,
    /// Threads and batch size of a run whose start request names none.
    defaults: (u32, u32),
    default_global_rate: Option<u64>,
}

impl Engine {
    pub fn new(
        producer: EventProducer,
        breaker: Arc<Breaker>,
        allowance: Arc<Allowance>,
        metrics: Metrics,
        settings: EngineSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                producer,
                breaker,
                allowance,
                metrics,
                topic: settings.topic,
                instance_id: settings.instance_id,
                host: settings.host,
                seq: AtomicU64::new(0),
            }),
            run: Mutex::new(None),
            flush_timeout: settings.flush_timeout,
            defaults: (settings.threads, settings.batch_size),
            default_global_rate: settings.global_rate,
        }
    }

    pub fn producer_client(&self) -> &rdkafka::client::Client<crate::delivery::DeliveryCounter> {
        self.shared.producer.client()
    }

    fn lock_run(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        lock(&self.run)
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
        self.shared
            .metrics
            .target_rate
            .set(settings.rate_per_second as i64);
        self.shared.allowance.configure(
            settings.global_rate.or(self.default_global_rate),
            settings.rate_per_second,
        );
        let threads = settings.threads.unwrap_or(self.defaults.0).max(1) as usize;
        let batch_size = u64::from(settings.batch_size.unwrap_or(self.defaults.1).max(1));
        let traceparent: Arc<Option<String>> = Arc::new(trace_context::traceparent(&run_span));
        // The run span ends when the last thread does.
        let run_span = Arc::new(run_span);
        let settings = Arc::new(settings);
        let running = Arc::new(AtomicUsize::new(threads));
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let (shared, settings, thread_stop, thread_running) = (
                self.shared.clone(),
                settings.clone(),
                stop.clone(),
                running.clone(),
            );
            let (traceparent, run_span) = (traceparent.clone(), run_span.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("generate-{index}"))
                .spawn(move || {
                    let share = Share {
                        index,
                        of: threads,
                        batch_size,
                    };
                    generate(
                        &shared,
                        &settings,
                        share,
                        traceparent.as_deref(),
                        &thread_stop,
                    );
                    thread_running.fetch_sub(1, Ordering::AcqRel);
                    drop(run_span);
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    halt(Run {
                        stop,
                        running,
                        threads: handles,
                    });
                    return Err(e);
                }
            }
        }
        tracing::info!(instance_id = %self.shared.instance_id, threads, batch_size, "generation started");
        *run = Some(Run {
            stop,
            running,
            threads: handles,
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
        self.shared.allowance.configure(None, 0);
        delivery::drain(&self.shared.producer, self.flush_timeout)
    }

    pub fn is_running(&self) -> bool {
        self.lock_run()
            .as_ref()
            .is_some_and(|r| r.running.load(Ordering::Acquire) > 0)
    }

    pub fn status(&self) -> InstanceStatus {
        let m = &self.shared.metrics;
        let running = self.is_running();
        InstanceStatus {
            instance_id: self.shared.instance_id.clone(),
            rate_limiter: self.shared.allowance.mode().map(str::to_owned),
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
    for thread in run.threads {
        if thread.join().is_err() {
            tracing::error!("generation thread panicked");
        }
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

/// One thread's part of a run.
#[derive(Debug, Clone, Copy)]
struct Share {
    index: usize,
    of: usize,
    batch_size: u64,
}

impl Share {
    /// This thread's part of `rate`: an even split, the remainder to the first threads.
    fn rate(&self, rate: u64) -> f64 {
        let of = self.of as u64;
        (rate / of + u64::from((self.index as u64) < rate % of)) as f64
    }
}

/// The generation loop of one thread.
fn generate(
    shared: &Shared,
    settings: &GeneratorSettings,
    share: Share,
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
    let rate = share.rate(settings.rate_per_second);
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
            if share.index > 0 {
                // One thread probes.
                produced = due;
                std::thread::sleep(PROBE_EVERY);
                continue;
            }
            // Probing: one event at a time until Kafka acknowledges one (closed) or not (open).
            if due > produced {
                source.emit(shared, elapsed, now_ms());
            }
            produced = due;
            std::thread::sleep(PROBE_EVERY);
            continue;
        }
        let batch = (due - produced.min(due)).min(share.batch_size);
        let granted = shared.allowance.take(batch);
        if granted < batch {
            shared.metrics.rate_limited.inc_by(batch - granted);
        }
        let timestamp = now_ms();
        for _ in 0..granted {
            source.emit(shared, elapsed, timestamp);
        }
        produced += batch;
        if produced >= due {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
