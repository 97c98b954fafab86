//! Parse + window throughput per format, on one core: each record is decoded into the event
//! model (format named, as with a `content-type` header) and added to the default windows
//! (10 s and 60 s tumbling, 300 s sliding by 60 s), with its latency for access lines.
//! `cargo bench -p logstream-core --bench parse_window`; criterion prints elements/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use logstream_core::format::{self, decode, Format};
use logstream_core::sketch::latency_us_of_attributes;
use logstream_core::synth::Synthesizer;
use logstream_core::weighted::Weighted;
use logstream_core::window::{WindowSpec, Windows};

const RECORDS: usize = 10_000;

fn records(format: Format) -> Vec<Vec<u8>> {
    let formats = Weighted::new([(format, 1)]).expect("one weight");
    let mut synth = Synthesizer::new(7, "bench-host").with_formats(formats);
    (0..RECORDS)
        .map(|i| {
            let generated = synth.next_generated(1_800_000_000_000 + i as i64);
            let mut out = Vec::with_capacity(512);
            format::encode_into(
                generated.format,
                &generated.event,
                generated.access.as_ref(),
                &mut out,
            )
            .expect("encodes");
            out
        })
        .collect()
}

fn specs() -> Vec<WindowSpec> {
    vec![
        WindowSpec::tumbling(10_000).expect("valid"),
        WindowSpec::tumbling(60_000).expect("valid"),
        WindowSpec::sliding(300_000, 60_000).expect("valid"),
    ]
}

fn parse_window(c: &mut Criterion) {
    let now_ms = 1_800_000_010_000;
    for format in Format::ALL {
        let input = records(format);
        let mut group = c.benchmark_group(format!("parse/{}", format.name()));
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function("parse", |b| {
            b.iter(|| {
                for bytes in &input {
                    black_box(decode::decode(format, black_box(bytes), Some(b"svc"), now_ms).ok());
                }
            })
        });
        group.bench_function("parse+window", |b| {
            let mut windows = Windows::new(specs());
            b.iter(|| {
                windows.clear();
                for bytes in &input {
                    if let Ok(event) = decode::decode(format, bytes, Some(b"svc"), now_ms) {
                        let latency = event
                            .attributes
                            .as_deref()
                            .and_then(latency_us_of_attributes);
                        windows.add(event.timestamp_ms, &event.service, event.level, latency);
                    }
                }
                black_box(windows.is_empty())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, parse_window);
criterion_main!(benches);
