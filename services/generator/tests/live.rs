//! `GET /ws/logs` tried as a client would: the real binary, a real WebSocket client.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use logstream_core::{json, Level};
use logstream_integration_tests::{enabled, has_metric_line, Service};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn generator() -> Service {
    Service::start_path(
        "live-generator",
        Path::new(env!("CARGO_BIN_EXE_logstream-generator")),
        "LOGSTREAM_GENERATOR_LISTEN",
        // Redis database 7 keeps this instance out of the stack's registry.
        &[("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7")],
    )
    .await
}

fn ws_url(base: &str, query: &str) -> String {
    format!("{}/ws/logs?{query}", base.replacen("http://", "ws://", 1))
}

#[tokio::test]
async fn streams_filtered_events_at_the_interval() {
    if !enabled() {
        return;
    }
    let generator = generator().await;
    // Timed from before the upgrade: the server's first tick fires as soon as it
    // accepts, which can be before the client sees the handshake complete.
    let began = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &generator.base,
        "interval_ms=20&service=checkout&level=ERROR,FATAL&debug=true",
    ))
    .await
    .expect("upgrade");
    let mut frames = 0;
    while frames < 10 {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = message else {
            continue;
        };
        let event = json::decode(text.as_bytes()).expect("each frame is one JSON event");
        assert_eq!(event.service, "checkout");
        assert!(
            matches!(event.level, Level::Error | Level::Fatal),
            "{:?}",
            event.level
        );
        frames += 1;
    }
    // The first tick fires at once; nine more take nine intervals.
    assert!(
        began.elapsed() >= Duration::from_millis(9 * 20),
        "{:?}",
        began.elapsed()
    );
    assert!(has_metric_line(&generator.base, "generator_live_stream_clients 1").await);
}

#[tokio::test]
async fn a_bad_parameter_closes_with_a_reason_naming_it() {
    if !enabled() {
        return;
    }
    let generator = generator().await;
    for (query, named) in [
        ("interval_ms=5", "interval_ms"),
        ("level=LOUD", "level"),
        ("tail=1", "tail"),
    ] {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&generator.base, query))
            .await
            .expect("upgrade");
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer within 5 s")
            .expect("a frame")
            .expect("frame");
        let Message::Close(Some(frame)) = message else {
            panic!("{query}: expected a close frame, got {message:?}");
        };
        assert_eq!(frame.code, CloseCode::Policy, "{query}");
        assert!(frame.reason.contains(named), "{query}: {}", frame.reason);
    }
}
