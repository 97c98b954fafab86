//! Enrichment per core, on access events (`http.user_agent`, `http.client_ip`):
//! - user agents of the synthetic mix (a few dozen distinct: mostly cache hits), and every
//!   agent distinct (every one parsed by uap-core's rules: the worst case);
//! - client addresses located in a MaxMind-format database, when `LOGSTREAM_BENCH_GEOIP` names
//!   one (e.g. ip-location-db's GeoLite2 country database from npm; skipped otherwise).
//!
//! `cargo bench -p logstream-core --bench enrich`; criterion prints elements (events) per second.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logstream_core::enrich::geo::GeoDatabase;
use logstream_core::enrich::{user_agent, Enricher, Sources};
use logstream_core::synth::Synthesizer;
use logstream_core::LogEvent;

const EVENTS: usize = 10_000;

/// Access events; `distinct`: each with an agent of its own; client addresses spread over the
/// public IPv4 space.
fn events(distinct: bool) -> Vec<LogEvent> {
    let mut synth = Synthesizer::new(11, "bench-host");
    (0..EVENTS)
        .map(|i| {
            let (mut event, mut access) = synth.next_access(1_800_000_000_000 + i as i64);
            let n = i as u32;
            access.client_ip = format!(
                "{}.{}.{}.{}",
                1 + (n.wrapping_mul(2_654_435_761) >> 24) % 222,
                (n >> 3) % 256,
                n % 256,
                (n * 7) % 254 + 1
            );
            if distinct {
                let agent = access.user_agent.take().unwrap_or_default();
                access.user_agent = Some(format!("{agent} build/{i}"));
            }
            event.attributes = Some(access.attributes());
            event
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, sources: &Sources, events: &[LogEvent]) {
    let mut enricher = Enricher::new(sources);
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || events.to_vec(),
            |mut events| {
                for e in &mut events {
                    enricher.enrich(e);
                }
                events
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let agents = Sources {
        agents: Some(user_agent::builtin_rules().expect("rules")),
        geo: Arc::default(),
    };
    run(c, "user_agent_synthetic_mix", &agents, &events(false));
    run(c, "user_agent_all_distinct", &agents, &events(true));
    match std::env::var("LOGSTREAM_BENCH_GEOIP") {
        Ok(path) => {
            let db = GeoDatabase::from_bytes(std::fs::read(&path).expect("readable database"))
                .expect("a MaxMind-format database");
            let geo = Sources {
                agents: None,
                geo: Arc::new(vec![db]),
            };
            run(c, "geo_country", &geo, &events(false));
        }
        Err(_) => eprintln!("LOGSTREAM_BENCH_GEOIP unset: the geo benchmark is skipped"),
    }
}

criterion_group!(enrich, benches);
criterion_main!(enrich);
