//! Against a running stack (scripts/stack.sh up; enabled by LOGSTREAM_IT=1): no single record
//! can stall the collector. Each poison record is followed by ten valid events, and all of them
//! must be accounted for: stored (sanitised where that is lossless enough) or dead-lettered.
//!
//! - records PostgreSQL could not store as they are (NUL in an Apache request, NUL bytes in the
//!   Kafka key, a number beyond `numeric`) are stored sanitised;
//! - a record PostgreSQL refuses anyway (here: a trigger raising SQLSTATE 22023 for one
//!   message) is dead-lettered as `storage_rejected` with the server's message, the rest of its
//!   batch stored;
//! - committed transactions are stored exactly once, aborted ones never, and the transaction
//!   markers' offsets do not stall the partition, not even one small transaction after another;
//! - a dead letter larger than Kafka accepts is cut to fit, with headers saying so.

use std::time::{Duration, Instant};

use logstream_integration_tests::{generator_headers, header, metric_sum, publish, stored_seqs};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn enabled() -> bool {
    let on = std::env::var("LOGSTREAM_IT").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped: set LOGSTREAM_IT=1 with the stack running (scripts/stack.sh up)");
    }
    on
}

fn brokers() -> String {
    env("LOGSTREAM_KAFKA_BROKERS", "127.0.0.1:9092")
}

async fn database() -> sqlx::PgPool {
    let url = env(
        "DATABASE_URL",
        "postgres://logstream:logstream@127.0.0.1:5432/logstream",
    );
    sqlx::PgPool::connect(&url).await.expect("postgres")
}

fn producer(extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers())
        .set("broker.address.family", "v4");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

/// The test's own instance id, or None (the test is skipped) without LOGSTREAM_IT=1.
fn test_instance(prefix: &str) -> Option<String> {
    enabled().then(|| format!("{prefix}-{:08x}", rand::random::<u32>()))
}

fn collector() -> String {
    env("COLLECTOR_URL", "http://127.0.0.1:8081")
}

/// A valid JSON event of the test's service.
fn valid(n: usize) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis();
    format!(r#"{{"timestamp":{now},"level":"INFO","service":"poisontest","message":"valid {n}"}}"#)
        .into_bytes()
}

fn json(text: Option<String>) -> serde_json::Value {
    serde_json::from_str(&text.expect("attributes")).expect("attributes are JSON")
}

/// Publishes `count` valid events of the test's instance, numbered on from `seq`.
async fn publish_valid(producer: &FutureProducer, instance: &str, seq: &mut usize, count: usize) {
    for n in 0..count {
        *seq += 1;
        publish(
            producer,
            "logs.raw",
            "poisontest",
            &valid(n),
            (instance, *seq),
            None,
        )
        .await;
    }
}

/// Reads logs.dlq from the start until `want` returns Some for `count` records of `instance`.
fn dead_letters<T>(
    instance: &str,
    count: usize,
    mut want: impl FnMut(&BorrowedMessage<'_>) -> Option<T>,
) -> Vec<T> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("broker.address.family", "v4")
        .set("group.id", format!("{instance}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "2000000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["logs.dlq"]).expect("subscribe");
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while found.len() < count && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        if header(&message, "instance-id").as_deref() == Some(instance) {
            found.extend(want(&message));
        }
    }
    found
}

#[tokio::test]
async fn records_postgres_cannot_store_as_they_are_are_stored_sanitised() {
    let Some(instance) = test_instance("poison-test") else {
        return;
    };
    let producer = producer(&[]);
    let now = chrono::Utc::now();
    let apache_time = now.format("%d/%b/%Y:%H:%M:%S +0000");
    // (key, value, content-type)
    let poison: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "poisontest",
            format!(r#"1.2.3.4 - - [{apache_time}] "GET /a\x00 HTTP/1.1" 200 1 "-" "-""#)
                .into_bytes(),
            Some("text/apache-combined"),
        ),
        (
            "\0\0\0\u{7}",
            format!(r#"1.2.3.4 - - [{apache_time}] "GET /key HTTP/1.1" 200 1 "-" "-""#)
                .into_bytes(),
            Some("text/apache-combined"),
        ),
        (
            "poisontest",
            format!(
                r#"{{"timestamp":{},"level":"INFO","service":"poisontest","message":"tiny","attributes":{{"x": 1e-20000}}}}"#,
                now.timestamp_millis()
            )
            .into_bytes(),
            None,
        ),
    ];
    let mut seq = 0;
    for (key, value, content_type) in &poison {
        seq += 1;
        publish(
            &producer,
            "logs.raw",
            key,
            value,
            (&instance, seq),
            *content_type,
        )
        .await;
        publish_valid(&producer, &instance, &mut seq, 10).await;
    }
    let pool = database().await;
    let stored = stored_seqs(&pool, &instance, seq, Duration::from_secs(90)).await;
    let expected: Vec<(i64,)> = (1..=seq as i64).map(|s| (s,)).collect();
    assert_eq!(stored, expected, "all {seq} records stored exactly once");

    let row = |seq: i64| {
        sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT service, message, attributes::text FROM log_events WHERE instance_id = $1 AND seq = $2",
        )
        .bind(instance.clone())
        .bind(seq)
        .fetch_one(&pool)
    };
    let (_, message, attributes) = row(1).await.expect("apache NUL");
    assert_eq!(message, "GET /a\u{FFFD} 200");
    let attributes = json(attributes);
    assert_eq!(attributes["http"]["path"], "/a\u{FFFD}");
    assert_eq!(attributes["_sanitized"], serde_json::json!(["nul"]));
    let (service, _, _) = row(12).await.expect("NUL key");
    assert_eq!(service, "\u{FFFD}\u{FFFD}\u{FFFD}\u{7}");
    let (_, _, attributes) = row(23).await.expect("tiny number");
    let attributes = json(attributes);
    assert_eq!(attributes["x"], "1e-20000");
    assert_eq!(attributes["_sanitized"], serde_json::json!(["number"]));
}

#[tokio::test]
async fn a_record_postgres_refuses_is_dead_lettered_and_its_batch_stored() {
    let Some(instance) = test_instance("refuse-test") else {
        return;
    };
    let collector = collector();
    let pool = database().await;
    // A trigger that refuses one message of this test's instance with a data error.
    let trigger = instance.replace('-', "_");
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           IF NEW.instance_id = '{instance}' AND NEW.message = 'refuse me' THEN
             RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '22023';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER {trigger} BEFORE INSERT ON log_events FOR EACH ROW EXECUTE FUNCTION {trigger}();"
    ))
    .execute(&pool)
    .await
    .expect("test trigger");
    let refused_before = metric_sum(&collector, "collector_batches_refused_total").await;

    let producer = producer(&[]);
    let now = chrono::Utc::now().timestamp_millis();
    let refused = format!(
        r#"{{"timestamp":{now},"level":"INFO","service":"poisontest","message":"refuse me"}}"#
    );
    let mut seq = 0;
    publish_valid(&producer, &instance, &mut seq, 5).await;
    seq += 1;
    let refused_seq = seq;
    publish(
        &producer,
        "logs.raw",
        "poisontest",
        refused.as_bytes(),
        (&instance, seq),
        None,
    )
    .await;
    publish_valid(&producer, &instance, &mut seq, 10).await;
    let stored = stored_seqs(&pool, &instance, seq - 1, Duration::from_secs(90)).await;
    sqlx::raw_sql(&format!(
        "DROP TRIGGER {trigger} ON log_events; DROP FUNCTION {trigger}();"
    ))
    .execute(&pool)
    .await
    .expect("drop the test trigger");
    let expected: Vec<(i64,)> = (1..=seq as i64)
        .filter(|s| *s != refused_seq as i64)
        .map(|s| (s,))
        .collect();
    assert_eq!(stored, expected, "every other record stored exactly once");

    let letters = dead_letters(&instance, 1, |m| {
        Some((
            header(m, "seq"),
            header(m, "dlq-reason").unwrap_or_default(),
            m.payload().map(<[u8]>::to_vec),
        ))
    });
    assert_eq!(letters.len(), 1, "the refused record is dead-lettered");
    let (letter_seq, reason, payload) = &letters[0];
    assert_eq!(
        letter_seq.as_deref(),
        Some(refused_seq.to_string().as_str())
    );
    assert!(
        reason.starts_with("storage_rejected: refused by the test trigger (SQLSTATE 22023)"),
        "reason {reason}"
    );
    assert_eq!(payload.as_deref(), Some(refused.as_bytes()));
    let refused_after = metric_sum(&collector, "collector_batches_refused_total").await;
    assert!(
        refused_after > refused_before,
        "collector_batches_refused_total grew"
    );
}

#[tokio::test]
async fn transactions_committed_are_stored_once_and_aborted_never() {
    let Some(instance) = test_instance("txn-test") else {
        return;
    };
    let collector = collector();
    let confirmed_before = metric_sum(&collector, "collector_gap_offsets_confirmed_total").await;
    let producer = producer(&[("transactional.id", instance.as_str())]);
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    let mut seq = 0;
    let mut committed = Vec::new();
    for (round, commit) in [(0, true), (1, false), (2, true), (3, false), (4, true)] {
        producer.begin_transaction().expect("begin");
        for n in 0..5 {
            seq += 1;
            let value = valid(round * 10 + n);
            // One key per record spreads each transaction over several partitions.
            let key = format!("poisontest-{n}");
            let headers = generator_headers(&instance, seq, None);
            producer
                .send_result(
                    FutureRecord::to("logs.raw")
                        .key(&key)
                        .payload(&value)
                        .headers(headers),
                )
                .map_err(|(e, _)| e)
                .expect("queued");
            if commit {
                committed.push((seq as i64,));
            }
        }
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .expect("commit");
        } else {
            producer
                .abort_transaction(Duration::from_secs(30))
                .expect("abort");
        }
    }
    // Ten plain records after the transactions, on the same partitions.
    let plain = self::producer(&[]);
    for n in 0..10 {
        seq += 1;
        publish(
            &plain,
            "logs.raw",
            &format!("poisontest-{}", n % 5),
            &valid(n),
            (&instance, seq),
            None,
        )
        .await;
        committed.push((seq as i64,));
    }
    let pool = database().await;
    let stored = stored_seqs(&pool, &instance, committed.len(), Duration::from_secs(90)).await;
    // Aborted records would come before the plain ones: give them time to show up, if ever.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = stored_seqs(&pool, &instance, committed.len(), Duration::from_secs(1)).await;
    assert_eq!(stored, committed, "committed records stored exactly once");
    assert_eq!(again, committed, "aborted records never stored");
    let confirmed_after = metric_sum(&collector, "collector_gap_offsets_confirmed_total").await;
    assert!(
        confirmed_after > confirmed_before,
        "the markers' and aborted records' offsets were confirmed as gaps"
    );
}

/// A stream processor commits a transaction every few hundred milliseconds, each leaving a
/// marker after its records. Each marker is a one-offset gap the collector takes at once: before,
/// each cost a commit, a seek and a fetch (300 one-record transactions took 112 s to store).
/// The bound below is a liveness bound with a wide margin (they store in seconds), not a speed
/// figure; the test prints how long they took.
#[tokio::test]
async fn many_small_transactions_are_stored_without_stalling_on_their_markers() {
    let Some(instance) = test_instance("small-txn-test") else {
        return;
    };
    const TRANSACTIONS: usize = 200;
    let producer = producer(&[("transactional.id", instance.as_str())]);
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    let started = Instant::now();
    for seq in 1..=TRANSACTIONS {
        producer.begin_transaction().expect("begin");
        let value = valid(seq);
        publish(
            &producer,
            "logs.raw",
            "smalltxn",
            &value,
            (&instance, seq),
            None,
        )
        .await;
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit");
    }
    let produced = started.elapsed();
    let committed_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let pool = database().await;
    let stored = stored_seqs(&pool, &instance, TRANSACTIONS, Duration::from_secs(120)).await;
    let expected: Vec<(i64,)> = (1..=TRANSACTIONS as i64).map(|seq| (seq,)).collect();
    assert_eq!(stored, expected, "every transaction stored once");
    // When the last of them was stored (its storing transaction's start), from the database:
    // the poll above can be slow on a large table.
    let (last,): (f64,) = sqlx::query_as(
        "SELECT extract(epoch FROM max(received_at))::float8 FROM log_events WHERE instance_id = $1",
    )
    .bind(&instance)
    .fetch_one(&pool)
    .await
    .expect("query");
    let behind = last - committed_at;
    eprintln!(
        "{TRANSACTIONS} one-record transactions produced in {:.1} s; the last stored {behind:.2} s after the last commit",
        produced.as_secs_f64()
    );
    assert!(
        behind < 30.0,
        "the last transaction stored {behind:.1} s after it committed (markers stalling the partition?)"
    );
}

#[tokio::test]
async fn a_dead_letter_too_large_for_kafka_is_cut_to_fit() {
    let Some(instance) = test_instance("oversize-test") else {
        return;
    };
    // Invalid JSON just under the broker's limit (1 MiB): as a dead letter, with its headers,
    // it is larger than a producer sends by default (1,000,000 bytes).
    let mut value = b"{\"not json".to_vec();
    value.resize(1_030_000, b'x');
    let producer = producer(&[("message.max.bytes", "1048576")]);
    publish(
        &producer,
        "logs.raw",
        "poisontest",
        &value,
        (&instance, 1),
        Some("application/json"),
    )
    .await;
    for n in 0..10 {
        publish(
            &producer,
            "logs.raw",
            "poisontest",
            &valid(n),
            (&instance, n + 2),
            None,
        )
        .await;
    }
    let pool = database().await;
    let stored = stored_seqs(&pool, &instance, 10, Duration::from_secs(90)).await;
    let expected: Vec<(i64,)> = (2..=11).map(|s| (s,)).collect();
    assert_eq!(stored, expected, "the ten records after it are stored");
    let letters = dead_letters(&instance, 1, |m| {
        Some((
            header(m, "dlq-truncated"),
            header(m, "dlq-original-size"),
            header(m, "dlq-reason").unwrap_or_default(),
            m.payload().map(<[u8]>::len),
            m.payload().map(|p| p[..16].to_vec()),
        ))
    });
    assert_eq!(letters.len(), 1, "the oversized record is dead-lettered");
    let (truncated, original, reason, len, head) = &letters[0];
    assert_eq!(truncated.as_deref(), Some("true"));
    assert_eq!(
        original.as_deref(),
        Some("1030010"),
        "key (10) and value bytes"
    );
    assert!(reason.starts_with("invalid_json"), "reason {reason}");
    assert_eq!(*len, Some(900_000 - "poisontest".len()));
    assert_eq!(head.as_deref(), Some(&value[..16]));
}
