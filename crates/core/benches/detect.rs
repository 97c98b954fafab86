//! Detection throughput on one core: the default rules over the generator's event mix (access
//! requests with their `http` attributes, and plain events), with a fifth of them attack
//! requests of the `attack` scenario's kinds, at 10,000 events per second of event time.
//! `cargo bench -p logstream-core --bench detect`; criterion prints elements/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use logstream_core::detect::rules::Rules;
use logstream_core::detect::Detectors;
use logstream_core::synth::Synthesizer;
use logstream_core::LogEvent;

const EVENTS: usize = 20_000;

const ATTACKS: &[&str] = &[
    "/api/v1/items?id=1%27%20OR%20%271%27%3D%271",
    "/api/v1/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/static/../../../../etc/passwd",
    "/wp-admin/",
];

fn events() -> Vec<LogEvent> {
    let mut synth = Synthesizer::new(11, "bench-host");
    (0..EVENTS)
        .map(|i| {
            let at = 1_800_000_000_000 + i as i64 / 10;
            match i % 10 {
                0..=4 => {
                    let (mut event, mut access) = synth.next_access(at);
                    if i % 5 == 0 {
                        access.path = ATTACKS[i / 10 % ATTACKS.len()].to_owned();
                        access.client_ip = format!("203.0.113.{}", i % 7);
                        access.status = 404;
                        event.attributes = Some(access.attributes());
                    }
                    event
                }
                _ => synth.next_event(at),
            }
        })
        .collect()
}

fn detect(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("default_rules", |b| {
        b.iter(|| {
            let mut detectors = Detectors::new(Rules::default());
            for event in &events {
                detectors.observe(black_box(event));
            }
            black_box(detectors.drain().len())
        })
    });
    group.finish();
}

criterion_group!(benches, detect);
criterion_main!(benches);
