//! End-to-end storage throughput: a topic pre-filled with N events (by a generator instance),
//! consumed by a fresh collector into PostgreSQL (parse, windows, COPY, aggregates, offsets in one
//! transaction per batch), printed next to the ceiling measured in the same run: plain `COPY`
//! (psql `\copy`) of the same rows into the same table (`log_events`, same partitions and
//! indexes), and the ratio; also next to the same in COPY's binary format, which the collector
//! uses.
//!
//! Every timed phase starts from the same table: the rows of the phase before deleted, the table
//! vacuumed and checkpointed. Autovacuum of `log_events`' partitions is off while the bench runs
//! (and back as it was at exit): each phase inserts enough rows to start an autovacuum or an
//! analyze of the partition, which otherwise lands in one phase or another at random (one took
//! a timed phase from 8.3 to 10.5 µs of PostgreSQL CPU per row). psql talks to
//! PostgreSQL without TLS, like the collector (`PGSSLMODE=disable` unless set otherwise): a
//! `\copy` over TLS pays for encryption the collector does not, and measured about 10% slower.
//! `--rounds N` repeats the whole run (a new topic each time) and prints the median ratios: the
//! ceiling of one `\copy` on this machine varies by up to a third from run to run.
//!
//! A warm-up round (`--warmup 1`, the default) runs first and is printed but not counted: the
//! `\copy` phases load into space the phase before freed (deleted, vacuumed), while the first
//! collector phase on a table without that space has to grow its files and indexes, its
//! `COPY`s at once contending for the extension lock (PostgreSQL CPU per row 8.55 µs in the
//! first round on a fresh table against 5.21 µs for the binary `\copy` after it, 6.34 vs 4.99 in
//! the third). Every counted round's collector phase starts after the deletes of the round
//! before, like the `\copy` phases.
//!
//! Needs the native stack (`scripts/stack.sh up`: Kafka, PostgreSQL, Redis) and the release
//! binaries.
//!
//!   cargo run --release -p logstream-integration-tests --bin e2e-bench -- [--events 2000000]
//!       [--generators 1] [--collectors 1] [--rounds 1] [--warmup 1]
//!
//! With `--generators N` the topic is filled by N generator instances at once (their combined
//! rate is printed); with `--collectors N`, N collectors in one consumer group store it (the
//! scale-out figures).
//!
//! Environment: LOGSTREAM_KAFKA_BROKERS (127.0.0.1:9092), DATABASE_URL
//! (postgres://logstream:logstream@127.0.0.1:5432/logstream), LOGSTREAM_BIN_DIR (target/release).

use std::process::Command;
use std::time::{Duration, Instant};

use logstream_integration_tests::{
    bench_generator, cpu_seconds, cpu_seconds_of_named, create_topic, generator_call,
    generator_counter, metric_sum, start_full_rate, unique, Service,
};

const PARTITIONS: i32 = 6;
const COLUMNS: &str = "event_time, level, service, component, host, message, trace_id, span_id, \
                       parent_id, attributes, instance_id, seq, kafka_partition, kafka_offset";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// psql, without TLS unless `PGSSLMODE` says otherwise (the collector uses none).
fn psql_command() -> Command {
    let mut command = Command::new("psql");
    if std::env::var_os("PGSSLMODE").is_none() {
        command.env("PGSSLMODE", "disable");
    }
    command
}

/// psql's answer to `command`, or what went wrong.
fn try_psql(database: &str, command: &str) -> Result<String, String> {
    let out = psql_command()
        .args([database, "-X", "-v", "ON_ERROR_STOP=1", "-tAc", command])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// psql's answer to `command`; the bench stops when PostgreSQL cannot answer.
fn psql(database: &str, command: &str) -> String {
    try_psql(database, command).unwrap_or_else(|e| panic!("psql {command}: {e}"))
}

/// Brings the table to the same state before each timed phase: vacuumed (the rows the phase
/// before deleted are free space again, and no autovacuum of them competes with the phase) and
/// checkpointed, so no phase pays for WAL the one before wrote (after a checkpoint each page's
/// first change is logged whole, so a phase that straddles one pays more than one that does
/// not). The checkpoint needs `pg_checkpoint` (PostgreSQL 15+; `scripts/stack.sh` grants it);
/// without it the phases are timed as they come, and this says so once.
fn settle(database: &str) {
    psql(database, "VACUUM log_events");
    let out = psql_command()
        .args([database, "-X", "-q", "-c", "CHECKPOINT"])
        .output()
        .expect("psql runs");
    static WARNED: std::sync::Once = std::sync::Once::new();
    if !out.status.success() {
        WARNED.call_once(|| {
            eprintln!(
                "cannot CHECKPOINT before each phase ({}): the figures vary more",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        });
    }
}

/// Autovacuum off on `log_events`' partitions for as long as it lives; on drop, back on where
/// it turned it off (partitions that already had the setting are left alone). A bench killed
/// before then leaves it off: `ALTER TABLE <partition> RESET (autovacuum_enabled)` restores it.
struct AutovacuumPaused {
    database: String,
    partitions: Vec<String>,
}

impl AutovacuumPaused {
    fn new(database: &str) -> Self {
        let listed = psql(
            database,
            "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'log_events'::regclass AND c.relkind = 'r' \
             AND NOT coalesce(c.reloptions::text[] && ARRAY['autovacuum_enabled=true', \
             'autovacuum_enabled=false'], false)",
        );
        let partitions: Vec<String> = listed.lines().map(str::to_owned).collect();
        for partition in &partitions {
            psql(
                database,
                &format!("ALTER TABLE {partition} SET (autovacuum_enabled = false)"),
            );
        }
        println!(
            "autovacuum paused on {} partition(s) of log_events while the bench runs",
            partitions.len()
        );
        AutovacuumPaused {
            database: database.to_owned(),
            partitions,
        }
    }
}

impl Drop for AutovacuumPaused {
    fn drop(&mut self) {
        // Also on the way out of a failed run: a failure here is told, never a second panic.
        for partition in &self.partitions {
            let reset = format!("ALTER TABLE {partition} RESET (autovacuum_enabled)");
            if let Err(e) = try_psql(&self.database, &reset) {
                eprintln!("autovacuum of {partition} is still off ({e}); run: {reset}");
            }
        }
    }
}

/// Fills `topic` with at least `events` events from `generators` generator instances (ids
/// `{instance}-g1`, `{instance}-g2`, ...) at full rate; returns how many.
async fn prefill(
    brokers: &str,
    topic: &str,
    instance: &str,
    events: u64,
    generators: usize,
) -> u64 {
    let mut running = Vec::new();
    for i in 1..=generators {
        let id = format!("{instance}-g{i}");
        running.push(
            bench_generator(
                &format!("e2e-bench-generator-{i}"),
                brokers,
                topic,
                &[("LOGSTREAM_INSTANCE_ID", id.as_str())],
            )
            .await,
        );
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    for generator in &running {
        start_full_rate(&http, &generator.base).await;
    }
    loop {
        let mut sent = 0;
        for generator in &running {
            sent += generator_counter(&http, &generator.base, "sent_total").await;
        }
        if sent >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sent = 0;
    for generator in &mut running {
        let stopped = generator_call(&http, &generator.base, "stop", &serde_json::json!({})).await;
        sent += stopped["sent_total"].as_u64().unwrap_or(0);
        generator.terminate().await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pre-filled {topic}: {sent} events in {secs:.1} s by {generators} generator(s) ({:.0} events/s)",
        sent as f64 / secs
    );
    sent
}

/// Parses `--name N`'s value.
fn number<T: std::str::FromStr>(name: &str, value: &str) -> T {
    value.parse().unwrap_or_else(|_| {
        eprintln!("{name} wants a number, not {value:?}");
        std::process::exit(2)
    })
}

/// One round's rates: events/s stored end to end, rows/s of `\copy` in text and binary.
struct Round {
    e2e: f64,
    text: f64,
    binary: f64,
}

#[tokio::main]
async fn main() {
    let (mut events, mut generators, mut collectors, mut rounds, mut warmup) =
        (2_000_000u64, 1usize, 1usize, 1usize, 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--events", Some(n)) => events = number("--events", &n),
            ("--generators", Some(n)) => generators = number("--generators", &n),
            ("--collectors", Some(n)) => collectors = number("--collectors", &n),
            ("--rounds", Some(n)) => rounds = number("--rounds", &n),
            ("--warmup", Some(n)) => warmup = number("--warmup", &n),
            _ => {
                eprintln!(
                    "usage: e2e-bench [--events N] [--generators N] [--collectors N] [--rounds N] \
                     [--warmup N]"
                );
                std::process::exit(2);
            }
        }
    }
    let brokers = env_or("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092");
    let database = env_or(
        "DATABASE_URL",
        "postgres://logstream:logstream@127.0.0.1:5432/logstream",
    );
    let _autovacuum = AutovacuumPaused::new(&database);
    let mut results = Vec::new();
    for n in 1..=warmup + rounds.max(1) {
        if n <= warmup {
            println!("--- warm-up round {n} of {warmup} (not counted)");
        } else if rounds > 1 || warmup > 0 {
            println!("--- round {} of {rounds}", n - warmup);
        }
        let measured = round(
            &brokers,
            &database,
            events,
            generators.max(1),
            collectors.max(1),
        )
        .await;
        if n > warmup {
            results.push(measured);
        }
    }
    if results.len() > 1 {
        let median = |f: fn(&Round) -> f64| {
            let mut v: Vec<f64> = results.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratios: Vec<String> = results
            .iter()
            .map(|r| format!("{:.2}", r.e2e / r.binary))
            .collect();
        println!(
            "median of {} rounds: end to end {:.0} events/s, plain COPY {:.0} rows/s, binary COPY \
             {:.0} rows/s; ratio vs plain COPY {:.2}, vs binary COPY {:.2} (each round: {})",
            results.len(),
            median(|r| r.e2e),
            median(|r| r.text),
            median(|r| r.binary),
            median(|r| r.e2e / r.text),
            median(|r| r.e2e / r.binary),
            ratios.join(", ")
        );
    }
}

/// A topic pre-filled with `events` events, stored by `collectors` fresh collectors; then the
/// same rows again through `\copy` in text and in binary format, each from the same table state.
async fn round(
    brokers: &str,
    database: &str,
    events: u64,
    generators: usize,
    collectors: usize,
) -> Round {
    let topic = unique("e2e-raw");
    let instance = unique("e2e");
    create_topic(brokers, &topic, PARTITIONS).await;
    let sent = prefill(brokers, &topic, &instance, events, generators).await;
    let instances = format!("{instance}-g%");

    // The collector: from its start until every pre-filled event is stored.
    settle(database);
    let started = Instant::now();
    let postgres_before = cpu_seconds_of_named("postgres");
    // The Kafka broker is the stack's only Java process.
    let kafka_before = cpu_seconds_of_named("java");
    let mut running = Vec::new();
    for i in 1..=collectors {
        running.push(
            Service::start(
                &format!("e2e-bench-collector-{i}"),
                "logstream-collector",
                "LOGSTREAM_COLLECTOR_LISTEN",
                &[
                    ("LOGSTREAM_KAFKA_BROKERS", brokers),
                    ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
                    ("LOGSTREAM_CONSUMER_GROUP", topic.as_str()),
                    ("LOGSTREAM_DATABASE_URL", database),
                    ("LOGSTREAM_LOG", "warn"),
                ],
            )
            .await,
        );
    }
    let mut first: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let mut stored = 0;
        for collector in &running {
            stored += metric_sum(&collector.base, "log_events_stored_total").await as u64;
        }
        if stored > 0 && first.is_none() {
            first = Some((Instant::now(), stored));
        }
        if stored >= sent {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "stored {stored} of {sent} after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut pauses = 0.0;
    for collector in &running {
        pauses += metric_sum(&collector.base, "collector_consumer_pauses_total").await;
    }
    let collector_cpu: f64 = running.iter().filter_map(|c| cpu_seconds(c.pid())).sum();
    let postgres_cpu = cpu_seconds_of_named("postgres") - postgres_before;
    let kafka_cpu = cpu_seconds_of_named("java") - kafka_before;
    for collector in &mut running {
        collector.terminate().await;
    }
    let total_secs = done.duration_since(started).as_secs_f64();
    let (first_at, first_stored) = first.unwrap_or((started, 0));
    let steady_secs = done.duration_since(first_at).as_secs_f64();
    let e2e = (sent - first_stored) as f64 / steady_secs;
    let stored_rows: u64 = psql(
        database,
        &format!("SELECT count(*) FROM log_events WHERE instance_id LIKE '{instances}'"),
    )
    .parse()
    .unwrap_or(0);
    println!(
        "{collectors} collector(s): {sent} events stored in {total_secs:.2} s from process start \
         ({:.0} events/s), {e2e:.0} events/s from the first committed batch; rows of the instances: {stored_rows}",
        sent as f64 / total_secs
    );
    println!(
        "CPU per event: collector(s) {:.2} µs, PostgreSQL {:.2} µs, Kafka broker {:.2} µs \
         (whole run, {:.2} cores in all); the consumer paused {pauses} time(s) for storage",
        collector_cpu * 1e6 / sent as f64,
        postgres_cpu * 1e6 / sent as f64,
        kafka_cpu * 1e6 / sent as f64,
        (collector_cpu + postgres_cpu + kafka_cpu) / total_secs
    );

    // The ceiling: the same rows through psql \copy into the same table, in COPY's binary format
    // (what the collector sends; right after the collector, so that the machine's speed drifts
    // least between the two figures compared) and in its text format (plain COPY). The rows are
    // exported first, then deleted, so each load starts from the table the collector started
    // from.
    let files: Vec<(&str, std::path::PathBuf)> = ["binary", "text"]
        .into_iter()
        .map(|format| (format, export(database, &instances, &topic, format)))
        .collect();
    let delete = format!("DELETE FROM log_events WHERE instance_id LIKE '{instances}'");
    psql(database, &delete);
    let mut ceilings = files.iter().map(|(format, file)| {
        let ceiling = copy_ceiling(database, file, stored_rows, format);
        // The bench's rows would slow every later query without an index on instance_id.
        psql(database, &delete);
        let _ = std::fs::remove_file(file);
        ceiling
    });
    let (binary, text) = (
        ceilings.next().unwrap_or(f64::NAN),
        ceilings.next().unwrap_or(f64::NAN),
    );
    println!(
        "end to end {e2e:.0} events/s vs plain COPY {text:.0} rows/s: ratio {:.2} \
         (vs binary COPY {binary:.0} rows/s: ratio {:.2})",
        e2e / text,
        e2e / binary
    );
    Round { e2e, text, binary }
}

/// Writes the rows of `instances` (a LIKE pattern) to a file in COPY `format`, in the order
/// the collector stored them.
fn export(database: &str, instances: &str, topic: &str, format: &str) -> std::path::PathBuf {
    let file = std::env::temp_dir().join(format!("{topic}.{format}.copy"));
    psql(
        database,
        &format!(
            "\\copy (SELECT {COLUMNS} FROM log_events WHERE instance_id LIKE '{instances}') \
             TO '{}' WITH (FORMAT {format})",
            file.display()
        ),
    );
    file
}

/// Rows/s of psql `\copy` loading `rows` rows from `file` (COPY `format`) into the table,
/// from the state [`settle`] leaves it in.
fn copy_ceiling(database: &str, file: &std::path::Path, rows: u64, format: &str) -> f64 {
    settle(database);
    let postgres_before = cpu_seconds_of_named("postgres");
    let began = Instant::now();
    psql(
        database,
        &format!(
            "\\copy log_events ({COLUMNS}) FROM '{}' WITH (FORMAT {format})",
            file.display()
        ),
    );
    let copy_secs = began.elapsed().as_secs_f64();
    // psql's backend counts in the postmaster's children once the postmaster has reaped it.
    std::thread::sleep(Duration::from_millis(500));
    let postgres_cpu = cpu_seconds_of_named("postgres") - postgres_before;
    let ceiling = rows as f64 / copy_secs;
    println!(
        "psql \\copy ({format}) of the same {rows} rows: {copy_secs:.2} s ({ceiling:.0} rows/s; \
         PostgreSQL CPU {:.2} µs per row)",
        postgres_cpu * 1e6 / rows as f64
    );
    ceiling
}
