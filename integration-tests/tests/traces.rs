//! One start request and the events it causes share a trace: gateway → generator (HTTP
//! `traceparent`) → Kafka record headers → collector. The three services run against the live
//! stack with their OTLP exporter pointed at an OTLP/HTTP receiver inside this test, which
//! decodes what they export.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use logstream_integration_tests::{enabled, unique, Service};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// A span as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Spans = Arc<Mutex<Vec<Seen>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn export(State(spans): State<Spans>, body: Bytes) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut seen = spans.lock().expect("lock");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                seen.push(Seen {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::new(),
    )
}

/// Starts the OTLP/HTTP receiver; answers its base URL and what it has received.
async fn receiver() -> (String, Spans) {
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

fn in_trace(spans: &Spans, trace_id: &str) -> Vec<Seen> {
    spans
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_request_and_its_events_share_one_trace() {
    if !enabled() {
        return;
    }
    let (otlp, spans) = receiver().await;
    let topic = unique("it-traces");
    let instance = unique("gen-traces");
    let group = unique("collector-traces");
    // Redis database 7 keeps this test's generator out of the stack's registry.
    let common = [
        ("LOGSTREAM_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
        ("LOGSTREAM_TOPIC_PARTITIONS", "2"),
        ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/7"),
        ("LOGSTREAM_API_TOKEN", "trace-token"),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        common
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect()
    };
    let collector_env = with(&[("LOGSTREAM_CONSUMER_GROUP", group.as_str())]);
    let mut collector = Service::start(
        "traces-collector",
        "logstream-collector",
        "LOGSTREAM_COLLECTOR_LISTEN",
        &as_refs(&collector_env),
    )
    .await;
    let generator_env = with(&[("LOGSTREAM_INSTANCE_ID", instance.as_str())]);
    let mut generator = Service::start(
        "traces-generator",
        "logstream-generator",
        "LOGSTREAM_GENERATOR_LISTEN",
        &as_refs(&generator_env),
    )
    .await;
    let gateway_env = with(&[("LOGSTREAM_GENERATOR_URLS", generator.base.as_str())]);
    let mut gateway = Service::start(
        "traces-gateway",
        "logstream-gateway",
        "LOGSTREAM_GATEWAY_LISTEN",
        &as_refs(&gateway_env),
    )
    .await;

    // The client's own trace: every span below must continue it.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let http = reqwest::Client::new();
    let started = http
        .post(format!("{}/api/v1/generator/start", gateway.base))
        .bearer_auth("trace-token")
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&serde_json::json!({"rate_per_second": 200}))
        .send()
        .await
        .expect("start answers");
    assert_eq!(
        started.status(),
        200,
        "{}",
        started.text().await.unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = http
        .post(format!("{}/api/v1/generator/stop", gateway.base))
        .bearer_auth("trace-token")
        .send()
        .await
        .expect("stop answers");
    assert_eq!(stopped.status(), 200);

    // The run span ends at stop; the collector's batch spans follow as it stores the events.
    let deadline = Instant::now() + Duration::from_secs(60);
    let trace = loop {
        let trace = in_trace(&spans, trace_id);
        let has = |service: &str, name: &str| {
            trace
                .iter()
                .any(|s| s.service == service && s.name.starts_with(name))
        };
        if has("logstream-gateway", "POST /api/v1/generator/start")
            && has("logstream-generator", "generator_run")
            && has("logstream-collector", "collector_store_batch")
        {
            break trace;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} is incomplete after 60 s: {trace:#?}\nall spans: {:#?}",
            spans.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let find = |service: &str, name: &str| -> Seen {
        trace
            .iter()
            .find(|s| s.service == service && s.name.starts_with(name))
            .cloned()
            .expect("span present")
    };
    let gateway_span = find("logstream-gateway", "POST /api/v1/generator/start");
    assert_eq!(
        gateway_span.parent_span_id, client_span,
        "gateway continues the client"
    );
    let generator_http = find("logstream-generator", "POST /api/v1/generator/start");
    let gateway_ids: Vec<&str> = trace
        .iter()
        .filter(|s| s.service == "logstream-gateway")
        .map(|s| s.span_id.as_str())
        .collect();
    assert!(
        gateway_ids.contains(&generator_http.parent_span_id.as_str()),
        "generator's request span is a child of a gateway span: {trace:#?}"
    );
    let run = find("logstream-generator", "generator_run");
    assert_eq!(run.parent_span_id, generator_http.span_id);
    let batches: Vec<&Seen> = trace
        .iter()
        .filter(|s| s.service == "logstream-collector")
        .collect();
    assert!(
        batches.iter().all(|b| b.parent_span_id == run.span_id),
        "every batch span is a child of the run (via the Kafka header): {batches:#?}"
    );
    println!(
        "trace {trace_id}: {} spans from gateway, generator and collector ({} batch spans)",
        trace.len(),
        batches.len()
    );

    gateway.terminate().await;
    generator.terminate().await;
    collector.terminate().await;
}

fn as_refs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
