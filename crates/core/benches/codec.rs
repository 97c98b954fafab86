//! Throughput of the JSON codec and the synthesizer: `cargo bench -p logstream-core`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use logstream_core::{json, synth::Synthesizer};

fn codec(c: &mut Criterion) {
    let mut synth = Synthesizer::new(42, "bench-host");
    let events: Vec<_> = (0..1_000)
        .map(|i| synth.next_event(1_700_000_000_000 + i))
        .collect();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| json::encode(e).expect("encodes"))
        .collect();

    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(json::decode(black_box(bytes)).ok());
            }
        })
    });
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            for e in &events {
                out.clear();
                json::encode_into(black_box(e), &mut out).ok();
            }
        })
    });
    group.bench_function("synthesize", |b| {
        let mut s = Synthesizer::new(1, "h");
        b.iter(|| {
            for i in 0..1_000 {
                black_box(s.next_event(i));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
