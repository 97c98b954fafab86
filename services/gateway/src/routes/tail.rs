//! `GET /api/v1/tail`: follow events live with the search's filters, over a WebSocket (one JSON
//! text frame per event) or as Server-Sent Events (one `data:` line per event). A follower
//! reading slower than events come skips events and is told how many first (`{"skipped": N}`:
//! a text frame, or an SSE event named `skipped`); one that reads nothing for [`STALL`] is
//! disconnected. Neither ever slows the reading of the topic, let alone the pipeline.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use logstream_core::search::filter::EventFilter;
use logstream_core::search::words::Words;
use logstream_service::ops::{field_error, json_error};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::errors::ErrorBody;
use super::logs::filters;
use super::query::Params;
use crate::state::AppState;
use crate::tail::hub::{Item, Subscription};

/// A follower that takes nothing for this long is disconnected (its place freed).
pub const STALL: Duration = Duration::from_secs(30);

/// The parameters a tail reads besides `attr.*`.
const KNOWN: [&str; 5] = ["service", "level", "host", "trace_id", "q"];

#[utoipa::path(get, path = "/api/v1/tail", tag = "logs",
    params(
        ("service" = Option<String>, Query, description = "Only these services: one name or a comma-separated list", pattern = "^[^\\u0000]*$"),
        ("level" = Option<String>, Query, description = "Only these levels: one (ERROR), a list (WARN,ERROR) or a bound (>=WARN)", pattern = r"^(?:(?:>=|<=|=)(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|>(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?)|<(?:[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)(?:,(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?))*)$"),
        ("host" = Option<String>, Query, description = "Only events from this host", pattern = "^[^\\u0000]*$"),
        ("trace_id" = Option<String>, Query, description = "Only events of this trace", pattern = "^[^\\u0000]*$"),
        ("q" = Option<String>, Query, description = "Words of the message, as in GET /api/v1/logs (words are runs of letters and digits)", max_length = 1000, pattern = "^[^\\u0000]*$"),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: each event's JSON (the fields of GET /api/v1/logs' events but received_at, instance_id and seq) as the data of an unnamed event; `event: skipped` with {\"skipped\": N} when events were skipped. With `Upgrade: websocket`, the same as text frames. Events are shown as read from Kafka, before storage. attr.<key>=<value> parameters filter as in GET /api/v1/logs", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid or unknown query parameter", body = ErrorBody),
        (status = 503, description = "Too many live tails at once (LOGSTREAM_TAIL_MAX_CLIENTS)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn follow(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    request: Request,
) -> Response {
    let filters = match filters(&params, &KNOWN) {
        Ok(f) => f,
        Err(e) => return field_error(e),
    };
    let filter = EventFilter {
        services: filters.services,
        levels: filters.levels,
        host: filters.host,
        trace_id: filters.trace_id,
        attributes: filters.attributes,
        words: filters.text.map(|t| Words::parse(&t)),
    };
    let (mut parts, _) = request.into_parts();
    let websocket = if wants_websocket(&parts.headers) {
        match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => Some(upgrade),
            Err(rejection) => return rejection.into_response(),
        }
    } else {
        None
    };
    let subscription = match state.tail.follow(filter) {
        Ok(s) => s,
        Err(full) => return json_error(StatusCode::SERVICE_UNAVAILABLE, full.to_string(), None),
    };
    let items = forward(subscription);
    match websocket {
        Some(upgrade) => upgrade.on_upgrade(move |socket| send_frames(socket, items)),
        None => server_sent_events(items),
    }
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The follower's items through a one-place channel: when the follower has taken nothing for
/// [`STALL`], its subscription is dropped (its place in the hub freed) and the channel closes.
fn forward(mut subscription: Subscription) -> mpsc::Receiver<Item> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(item) = subscription.items.recv().await {
            match tokio::time::timeout(STALL, tx.send(item)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::info!("live tail: a follower took nothing for {STALL:?}; dropped");
                    break;
                }
            }
        }
    });
    rx
}

fn skipped_json(n: u64) -> String {
    format!("{{\"skipped\":{n}}}")
}

fn server_sent_events(items: mpsc::Receiver<Item>) -> Response {
    let events = ReceiverStream::new(items).map(|item| {
        Ok::<_, Infallible>(match item {
            Item::Event(json) => Event::default().data(json.as_str()),
            Item::Skipped(n) => Event::default().event("skipped").data(skipped_json(n)),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn send_frames(mut socket: WebSocket, mut items: mpsc::Receiver<Item>) {
    loop {
        tokio::select! {
            item = items.recv() => {
                let text = match item {
                    Some(Item::Event(json)) => json.as_str().to_owned(),
                    Some(Item::Skipped(n)) => skipped_json(n),
                    None => break,
                };
                match tokio::time::timeout(STALL, socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::AGAIN,
            reason: "the live tail stopped: too slow (nothing read for 30 s) or the gateway is shutting down".into(),
        })))
        .await;
}
