//! `GET /ws/logs`: a live stream of synthetic events as JSON text frames, for tools that want
//! to watch logs. Independent of the Kafka run; each connection has its own synthesizer.
//!
//! Query parameters: `interval_ms` (10..=10000, default 1000), `service`, `level` (one level or
//! a comma-separated list), `level_weights` (`INFO:70,WARN:20,ERROR:10`; not with `level`),
//! `debug` (`true`: the server logs each frame). A bad parameter closes the socket with code 1008
//! and a reason naming it.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use logstream_core::synth::{parse_level_weights, Synthesizer};
use logstream_core::weighted::Weighted;
use logstream_core::{json, Level};
use logstream_service::shutdown::CancellationToken;
use prometheus::IntGauge;

/// Close code for a request the server will not serve (RFC 6455 policy violation).
const POLICY: u16 = 1008;
/// Close code when the server shuts down.
const GOING_AWAY: u16 = 1001;
const INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=10_000;

/// Validated stream parameters.
#[derive(Debug)]
pub struct StreamParams {
    pub interval: Duration,
    pub service: Option<String>,
    pub levels: Option<Weighted<Level>>,
    pub debug: bool,
}

/// Checks the query; the error is the close reason, naming the parameter.
pub fn parse_params(query: &HashMap<String, String>) -> Result<StreamParams, String> {
    const KNOWN: [&str; 5] = ["interval_ms", "service", "level", "level_weights", "debug"];
    if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown parameter {unknown}; known: {}",
            KNOWN.join(", ")
        ));
    }
    let interval_ms = match query.get("interval_ms") {
        None => 1000,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| INTERVAL_MS.contains(ms))
            .ok_or_else(|| format!("interval_ms must be 10..10000, got {text:?}"))?,
    };
    let service = match query.get("service").map(|s| s.trim()) {
        None => None,
        Some(s) if !s.is_empty() && s.len() <= json::MAX_SERVICE_LEN => Some(s.to_owned()),
        Some(_) => return Err("service must be 1 to 256 bytes".into()),
    };
    let levels = match (query.get("level"), query.get("level_weights")) {
        (Some(_), Some(_)) => return Err("give level or level_weights, not both".into()),
        (Some(list), None) => {
            let weights = list
                .split(',')
                .map(|l| l.trim().parse::<Level>().map(|l| (l, 1)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("level: {e}"))?;
            Some(Weighted::new(weights).map_err(|e| format!("level: {e}"))?)
        }
        (None, Some(text)) => {
            Some(parse_level_weights(text).map_err(|e| format!("level_weights: {e}"))?)
        }
        (None, None) => None,
    };
    let debug = match query.get("debug").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(other) => return Err(format!("debug must be true or false, got {other:?}")),
    };
    Ok(StreamParams {
        interval: Duration::from_millis(interval_ms),
        service,
        levels,
        debug,
    })
}

#[derive(Clone)]
pub struct LiveState {
    pub host: String,
    pub clients: IntGauge,
    pub shutdown: CancellationToken,
}

pub async fn handler(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    State(state): State<LiveState>,
) -> Response {
    let params = parse_params(&query);
    ws.on_upgrade(move |socket| stream(socket, params, state))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close frame's reason is at most 123 bytes.
    let frame = CloseFrame {
        code,
        reason: logstream_core::storable::cut(reason, 123).into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Decrements the client gauge however the stream ends.
struct Connected(IntGauge);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn stream(mut socket: WebSocket, params: Result<StreamParams, String>, state: LiveState) {
    let params = match params {
        Ok(params) => params,
        Err(reason) => {
            tracing::info!(%reason, "refusing a live stream");
            close(&mut socket, POLICY, &reason).await;
            return;
        }
    };
    state.clients.inc();
    let _connected = Connected(state.clients.clone());
    let mut synth = Synthesizer::new(rand::random(), state.host.clone());
    if let Some(levels) = params.levels {
        synth = synth.with_levels(levels);
    }
    let mut tick = tokio::time::interval(params.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut frame = Vec::with_capacity(512);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                close(&mut socket, GOING_AWAY, "server shutting down").await;
                return;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
            _ = tick.tick() => {}
        }
        let level = synth.next_level();
        let service = match &params.service {
            Some(s) => s.clone(),
            None => synth.next_service().to_owned(),
        };
        let event = synth.event_of(&service, level, chrono::Utc::now().timestamp_millis());
        frame.clear();
        if let Err(e) = json::encode_into(&event, &mut frame) {
            tracing::error!(error = %e, "cannot encode a live event");
            continue;
        }
        let text = String::from_utf8_lossy(&frame).into_owned();
        if params.debug {
            tracing::info!(frame = %text, "live frame");
        }
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let ok = parse_params(&query(&[
            ("interval_ms", "10"),
            ("level", "ERROR,warn"),
            ("debug", "true"),
        ]))
        .expect("valid");
        assert_eq!(ok.interval, Duration::from_millis(10));
        assert!(ok.debug);
        let defaults = parse_params(&query(&[])).expect("valid");
        assert_eq!(defaults.interval, Duration::from_secs(1));
        for (pairs, named) in [
            (vec![("interval_ms", "9")], "interval_ms"),
            (vec![("interval_ms", "10001")], "interval_ms"),
            (vec![("interval_ms", "soon")], "interval_ms"),
            (vec![("level", "LOUD")], "level"),
            (vec![("level_weights", "INFO:x")], "level_weights"),
            (
                vec![("level", "INFO"), ("level_weights", "INFO:1")],
                "level",
            ),
            (vec![("debug", "maybe")], "debug"),
            (vec![("colour", "red")], "colour"),
        ] {
            let reason = parse_params(&query(&pairs)).expect_err("refused");
            assert!(reason.contains(named), "{pairs:?}: {reason}");
        }
    }
}
