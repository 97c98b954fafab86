//! `GET /api/v1/tail` against the real Kafka: followers get the events their filters keep as
//! they are published; one that reads nothing for a while skips events and is told exactly how
//! many, while another keeps getting every event; followers beyond the cap are refused.

use std::time::{Duration, Instant};

use logstream_integration_tests::{create_topic, enabled, send_all, unique, Service};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const BROKERS: &str = "127.0.0.1:9092";

async fn gateway(topic: &str) -> Service {
    gateway_with_buffer(topic, "40000").await
}

async fn gateway_with_buffer(topic: &str, buffer: &str) -> Service {
    Service::start_path(
        "gateway-tail",
        std::path::Path::new(env!("CARGO_BIN_EXE_logstream-gateway")),
        "LOGSTREAM_GATEWAY_LISTEN",
        &[
            ("LOGSTREAM_GENERATOR_URLS", "http://127.0.0.1:1"),
            ("LOGSTREAM_RATE_LIMIT_READ_PER_MINUTE", "100000"),
            ("LOGSTREAM_TOPIC_RAW", topic),
            ("LOGSTREAM_KAFKA_BROKERS", BROKERS),
            ("LOGSTREAM_TAIL_MAX_CLIENTS", "2"),
            ("LOGSTREAM_TAIL_BUFFER", buffer),
        ],
    )
    .await
}

/// One streamed item: (event name, data).
type Item = (String, Value);

/// Reads a Server-Sent Events response into a channel.
fn read_events(mut response: reqwest::Response) -> mpsc::UnboundedReceiver<Item> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    let value = serde_json::from_str(&data).expect("JSON data");
                    if tx.send((name, value)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn follow(base: &str, query: &str) -> reqwest::Response {
    let r = reqwest::get(format!("{base}/api/v1/tail?{query}"))
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    r
}

fn event(service: &str, level: &str, n: usize) -> String {
    serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "level": level,
        "service": service,
        "message": format!("event {n}"),
        "attributes": {"n": n},
    })
    .to_string()
}

async fn publish_all(producer: &FutureProducer, topic: &str, events: &[(String, String)]) {
    let records = events.iter().map(|(key, payload)| {
        FutureRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_str())
    });
    send_all(producer, records).await;
}

/// Items received until nothing comes for `quiet`.
async fn drain(rx: &mut mpsc::UnboundedReceiver<Item>, quiet: Duration) -> Vec<Item> {
    let mut items = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(quiet, rx.recv()).await {
        items.push(item);
    }
    items
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("broker.address.family", "v4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

/// The gateway reads from the end of the topic once someone follows: publishes a payments
/// ERROR probe (n = 0) until the follower `rx` shows one, then drains what it got.
async fn wait_until_following(
    producer: &FutureProducer,
    topic: &str,
    rx: &mut mpsc::UnboundedReceiver<Item>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publish_all(
            producer,
            topic,
            &[("payments".into(), event("payments", "ERROR", 0))],
        )
        .await;
        if tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the tail never showed the probe");
    }
    drain(rx, Duration::from_millis(300)).await;
}

/// Of the items a follower got: the events it received (probes, n = 0, aside) and the events
/// it was told it skipped.
fn received_and_skipped(items: &[Item]) -> (u64, u64) {
    let skipped = items
        .iter()
        .filter(|(name, _)| name == "skipped")
        .map(|(_, v)| v["skipped"].as_u64().expect("count"))
        .sum();
    let received = items
        .iter()
        .filter(|(name, v)| name.is_empty() && v["attributes"]["n"] != 0)
        .count() as u64;
    (received, skipped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_get_their_events_and_a_stalled_one_is_told_what_it_skipped() {
    if !enabled() {
        return;
    }
    let topic = unique("tail");
    create_topic(BROKERS, &topic, 3).await;
    let gw = gateway(&topic).await;
    let producer = producer();

    let bad = reqwest::get(format!("{}/api/v1/tail?level=LOUD", gw.base))
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);

    // A: payments at WARN and above, read all along. B: orders, not read until the end.
    let mut a = read_events(follow(&gw.base, "service=payments&level=%3E%3DWARN").await);
    let b_response = follow(&gw.base, "service=orders").await;

    // A third follower is over the cap.
    let third = reqwest::get(format!("{}/api/v1/tail", gw.base))
        .await
        .expect("answer");
    assert_eq!(third.status(), 503);
    let body: Value = third.json().await.expect("JSON error");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("LOGSTREAM_TAIL_MAX_CLIENTS")));

    // The gateway reads from the end of the topic once someone follows: probe until A sees it.
    wait_until_following(&producer, &topic, &mut a).await;

    // 150,000 events: two thirds orders (B: more than its buffer of 40,000 and what the
    // sockets hold), the rest payments at INFO, WARN, ERROR by turns (A: 33,333, within its
    // buffer however fast the topic is read).
    const N: usize = 150_000;
    let levels = ["INFO", "WARN", "ERROR"];
    let events: Vec<(String, String)> = (1..=N)
        .map(|n| {
            let service = if n % 3 != 0 { "orders" } else { "payments" };
            (service.to_owned(), event(service, levels[(n / 3) % 3], n))
        })
        .collect();
    let expected_a: Vec<u64> = (1..=N as u64)
        .filter(|n| n % 3 == 0 && levels[(*n as usize / 3) % 3] != "INFO")
        .collect();
    let expected_b = (1..=N).filter(|n| n % 3 != 0).count() as u64;
    publish_all(&producer, &topic, &events).await;

    let got_a = drain(&mut a, Duration::from_secs(3)).await;
    let mut ns: Vec<u64> = got_a
        .iter()
        .map(|(name, v)| {
            assert_eq!(name, "", "A reads all along and skips nothing: {v}");
            assert_eq!(v["service"], "payments");
            assert_ne!(v["level"], "INFO");
            v["attributes"]["n"].as_u64().expect("n")
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, expected_a, "A got every event its filters keep, once");

    // B now reads: what it got and what it was told it skipped add up to every orders event
    // (the count of the last ones skipped comes before the next event: one more is sent).
    let mut b = read_events(b_response);
    let mut got_b = drain(&mut b, Duration::from_secs(3)).await;
    publish_all(
        &producer,
        &topic,
        &[("orders".into(), event("orders", "INFO", 0))],
    )
    .await;
    got_b.extend(drain(&mut b, Duration::from_secs(3)).await);
    let (received, skipped) = received_and_skipped(&got_b);
    assert!(
        skipped > 0,
        "B read nothing for a while: it must have skipped"
    );
    assert_eq!(
        received + skipped,
        expected_b,
        "B: {received} received + {skipped} skipped"
    );
    let metrics = reqwest::get(format!("{}/metrics", gw.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("gateway_tail_clients 2"), "{metrics}");
    assert!(metrics
        .lines()
        .any(|l| l == format!("gateway_tail_events_skipped_total {skipped}")));
}

fn ws_url(base: &str, query: &str) -> String {
    format!(
        "{}/api/v1/tail?{query}",
        base.replacen("http://", "ws://", 1)
    )
}

/// Reads a WebSocket tail's text frames into a channel, as (event name, data) like the
/// Server-Sent Events: a `{"skipped": N}` frame is named "skipped".
fn read_frames<S>(mut socket: S) -> mpsc::UnboundedReceiver<Item>
where
    S: tokio_stream::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin
        + Send
        + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).expect("each frame is one JSON value");
            let name = if value.get("skipped").is_some() {
                "skipped"
            } else {
                ""
            };
            if tx.send((name.to_owned(), value)).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_follower_gets_its_events_as_frames_and_is_told_what_it_skipped() {
    if !enabled() {
        return;
    }
    let topic = unique("tail-ws");
    create_topic(BROKERS, &topic, 3).await;
    let gw = gateway_with_buffer(&topic, "1000").await;
    let producer = producer();
    let (socket, _) =
        tokio_tungstenite::connect_async(ws_url(&gw.base, "service=payments&level=ERROR"))
            .await
            .expect("upgrade");
    let mut frames = read_frames(socket);
    wait_until_following(&producer, &topic, &mut frames).await;

    // Read all along: exactly the payments ERROR events, one frame each.
    let events: Vec<(String, String)> = (1..=3_000)
        .map(|n| {
            let (service, level) = [
                ("payments", "ERROR"),
                ("payments", "INFO"),
                ("orders", "ERROR"),
            ][n % 3];
            (service.to_owned(), event(service, level, n))
        })
        .collect();
    publish_all(&producer, &topic, &events).await;
    let got = drain(&mut frames, Duration::from_secs(3)).await;
    let ns: Vec<u64> = got
        .iter()
        .map(|(name, v)| {
            assert_eq!(name, "", "a follower that reads skips nothing: {v}");
            assert_eq!(
                (&v["service"], &v["level"]),
                (&"payments".into(), &"ERROR".into())
            );
            v["attributes"]["n"].as_u64().expect("n")
        })
        .collect();
    let expected: Vec<u64> = (1..=3_000).filter(|n| n % 3 == 0).collect();
    assert_eq!(
        ns, expected,
        "every payments ERROR event once, in order (one key, one partition)"
    );

    // A follower that reads nothing while 100,000 events (about 20 MB, more than its buffer of
    // 1,000 and the sockets hold) pass: what it then gets and what it is told it skipped add up.
    let (slow, _) = tokio_tungstenite::connect_async(ws_url(&gw.base, "service=orders"))
        .await
        .expect("upgrade");
    tokio::time::sleep(Duration::from_secs(2)).await;
    const N: usize = 100_000;
    let events: Vec<(String, String)> = (1..=N)
        .map(|n| ("orders".to_owned(), event("orders", "INFO", n)))
        .collect();
    publish_all(&producer, &topic, &events).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut slow = read_frames(slow);
    let mut got = drain(&mut slow, Duration::from_secs(3)).await;
    publish_all(
        &producer,
        &topic,
        &[("orders".into(), event("orders", "INFO", 0))],
    )
    .await;
    got.extend(drain(&mut slow, Duration::from_secs(3)).await);
    let (received, skipped) = received_and_skipped(&got);
    assert!(skipped > 0, "the slow follower must have skipped");
    assert_eq!(
        received + skipped,
        N as u64,
        "{received} received + {skipped} skipped"
    );
}
