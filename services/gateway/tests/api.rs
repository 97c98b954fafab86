//! The gateway's HTTP surface, tried as a client would: the real binary, started on a free port
//! against the real PostgreSQL and Redis (enabled by LOGSTREAM_IT=1; scripts/test.sh sets it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_integration_tests::{enabled, Service};
use serde_json::Value;

type Gateway = Service;

/// The gateway built with these tests, with a control token and no reachable static generator.
async fn spawn_gateway(extra_env: &[(&str, &str)]) -> Gateway {
    let mut env = vec![
        ("LOGSTREAM_API_TOKEN", "test-token"),
        ("LOGSTREAM_GENERATOR_URLS", "http://127.0.0.1:1"),
    ];
    env.extend_from_slice(extra_env);
    Service::start_path(
        "api-gateway",
        std::path::Path::new(env!("CARGO_BIN_EXE_logstream-gateway")),
        "LOGSTREAM_GATEWAY_LISTEN",
        &env,
    )
    .await
}

#[tokio::test]
async fn control_needs_the_token_and_errors_are_json() {
    if !enabled() {
        return;
    }
    let gw = spawn_gateway(&[]).await;
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{}/api/v1/generator/start", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("token")));

    let r = http
        .post(format!("{}/api/v1/generator/start", gw.base))
        .bearer_auth("test-token")
        .body(r#"{"rate_per_second": 0}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["field"],
        "rate_per_second"
    );

    let r = http
        .get(format!("{}/api/v1/nope", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.expect("json")["error"].is_string());

    let r = http
        .delete(format!("{}/api/v1/stats", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.expect("json")["error"].is_string());

    let r = http
        .get(format!("{}/api/v1/windows?level=LOUD", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.expect("json")["field"], "level");

    let r = http
        .get(format!("{}/api/v1/windows?limit=2", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert!(body["windows"].as_array().is_some_and(|w| w.len() <= 2));

    let r = http
        .get(format!("{}/api/v1/alerts", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.expect("json")["alerts"].is_array());

    let r = http
        .get(format!("{}/api/v1/stats/no-such-service", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.expect("json")["field"], "service");

    let r = http
        .get(format!("{}/api/v1/stats", gw.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.expect("json")["total"].is_i64());
}

#[tokio::test]
async fn a_burst_above_the_route_limit_gets_429_with_retry_after() {
    if !enabled() {
        return;
    }
    // A unique limit key per run: the limit is per client (here: per token) and route.
    let token = format!("burst-{}", std::process::id());
    let gw = spawn_gateway(&[
        ("LOGSTREAM_RATE_LIMITS", "/api/v1/alerts=5"),
        ("LOGSTREAM_API_TOKEN", &token),
    ])
    .await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let r = http
            .get(format!("{}/api/v1/alerts", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429]);
    let r = last.expect("a response");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry: u64 = header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header("x-ratelimit-reset").is_some());
    // Other routes have their own budget.
    let r = http
        .get(format!("{}/api/v1/stats", gw.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
}

/// The body must hold every required property of the documented schema for `status`.
fn check_against_spec(spec: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &spec["paths"][path][method];
    assert!(
        operation.is_object(),
        "{method} {path} is not in the OpenAPI document"
    );
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let schema_ref = response["content"]["application/json"]["schema"]["$ref"].as_str();
    if let Some(reference) = schema_ref {
        let name = reference.rsplit('/').next().expect("schema name");
        let schema = &spec["components"]["schemas"][name];
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().expect("property name");
            assert!(
                body.get(key).is_some(),
                "{method} {path} {status}: body lacks `{key}` required by {name}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_route_is_documented_and_answers_as_documented() {
    if !enabled() {
        return;
    }
    let gw = spawn_gateway(&[]).await;
    let http = reqwest::Client::new();
    let spec: Value = http
        .get(format!("{}/api/v1/openapi.json", gw.base))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert!(spec["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));

    let mut documented: Vec<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(m, _)| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = [
        ("post", "/api/v1/generator/start"),
        ("post", "/api/v1/generator/stop"),
        ("get", "/api/v1/generator/status"),
        ("get", "/api/v1/stats"),
        ("get", "/api/v1/stats/{service}"),
        ("get", "/api/v1/windows"),
        ("get", "/api/v1/alerts"),
        ("get", "/api/v1/alerts/rules"),
        ("get", "/api/v1/logs"),
        ("get", "/api/v1/tail"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    served.sort();
    assert_eq!(
        documented, served,
        "documented operations differ from the served routes"
    );

    // (method, spec path, request path, with token, body)
    let cases: &[(&str, &str, &str, bool, Option<&str>)] = &[
        (
            "post",
            "/api/v1/generator/start",
            "/api/v1/generator/start",
            false,
            None,
        ),
        (
            "post",
            "/api/v1/generator/start",
            "/api/v1/generator/start",
            true,
            Some(r#"{"scenario":"chaos"}"#),
        ),
        (
            "post",
            "/api/v1/generator/start",
            "/api/v1/generator/start",
            true,
            Some(r#"{"rate_per_second":10}"#),
        ),
        (
            "post",
            "/api/v1/generator/stop",
            "/api/v1/generator/stop",
            true,
            None,
        ),
        (
            "get",
            "/api/v1/generator/status",
            "/api/v1/generator/status",
            false,
            None,
        ),
        ("get", "/api/v1/stats", "/api/v1/stats", false, None),
        (
            "get",
            "/api/v1/stats/{service}",
            "/api/v1/stats/orders",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/stats/{service}",
            "/api/v1/stats/no-such-service",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/windows",
            "/api/v1/windows?limit=3&size=10",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/windows",
            "/api/v1/windows?size=ten",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/alerts",
            "/api/v1/alerts?since=2026-01-01T00:00:00Z",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/alerts",
            "/api/v1/alerts?since=soon",
            false,
            None,
        ),
        ("get", "/api/v1/logs", "/api/v1/logs?limit=3", false, None),
        (
            "get",
            "/api/v1/logs",
            "/api/v1/logs?level=%3E%3Dwarn&q=timeout&attr.http.status=500",
            false,
            None,
        ),
        (
            "get",
            "/api/v1/logs",
            "/api/v1/logs?level=LOUD",
            false,
            None,
        ),
        ("get", "/api/v1/tail", "/api/v1/tail?nope=1", false, None),
    ];
    for (method, spec_path, path, token, body) in cases {
        let url = format!("{}{path}", gw.base);
        let mut request = if *method == "post" {
            http.post(&url)
        } else {
            http.get(&url)
        };
        if *token {
            request = request.bearer_auth("test-token");
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("answer");
        let status = response.status().as_u16();
        let json: Value = response.json().await.expect("every answer is JSON");
        check_against_spec(&spec, method, spec_path, status, &json);
    }
}

#[tokio::test]
async fn with_redis_unreachable_the_limiter_falls_back_to_local_windows() {
    if !enabled() {
        return;
    }
    let gw = spawn_gateway(&[
        ("LOGSTREAM_REDIS_URL", "redis://127.0.0.1:1"),
        ("LOGSTREAM_RATE_LIMITS", "/api/v1/alerts=3"),
    ])
    .await;
    let http = reqwest::Client::new();
    assert_eq!(
        four_calls(&http, &gw.base, "some-client").await,
        [200, 200, 200, 429],
        "local windows enforce the same limit"
    );
    assert!(
        limiter_local(&http, &gw.base).await,
        "the fallback is visible in metrics"
    );
}

#[tokio::test]
async fn a_read_token_guards_the_read_endpoints() {
    if !enabled() {
        return;
    }
    let gw = spawn_gateway(&[("LOGSTREAM_API_READ_TOKEN", "read-token")]).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", gw.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let r = get("/api/v1/stats", None).await.expect("answer");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["field"], "Authorization");
    for (token, expected) in [("wrong", 401), ("read-token", 200), ("test-token", 200)] {
        let status = get("/api/v1/stats", Some(token))
            .await
            .expect("answer")
            .status();
        assert_eq!(status, expected, "stats with token {token:?}");
    }
    let spec: Value = get("/api/v1/openapi.json", None)
        .await
        .expect("the document stays open")
        .json()
        .await
        .expect("json");
    for path in [
        "/api/v1/stats",
        "/api/v1/stats/{service}",
        "/api/v1/windows",
        "/api/v1/alerts",
        "/api/v1/generator/status",
    ] {
        assert!(
            spec["paths"][path]["get"]["responses"]["401"].is_object(),
            "{path} documents its 401"
        );
        let request_path = path.replace("{service}", "orders");
        assert_eq!(
            get(&request_path, None).await.expect("answer").status(),
            401,
            "{path} without the read token"
        );
    }
    let r = http
        .post(format!("{}/api/v1/generator/stop", gw.base))
        .bearer_auth("read-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401, "the read token does not control");
}

/// A TCP proxy to the real Redis that can be cut (open connections closed, new ones dropped)
/// and restored, to stop and return Redis under a running gateway without touching the server
/// other tests use.
struct RedisProxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl RedisProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the gateway sees the connection close at once
                }
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.notify_waiters();
        }
    }
}

async fn limiter_local(http: &reqwest::Client, base: &str) -> bool {
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    metrics.lines().any(|l| l == "gateway_rate_limiter_local 1")
}

/// Four calls as one client (its token): the statuses.
async fn four_calls(http: &reqwest::Client, base: &str, client: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{base}/api/v1/alerts"))
            .bearer_auth(client)
            .send()
            .await
            .expect("answer");
        statuses.push(r.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn redis_stopping_and_returning_mid_run_switches_the_limiter_and_back() {
    if !enabled() {
        return;
    }
    let proxy = RedisProxy::start().await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let gw = spawn_gateway(&[
        ("LOGSTREAM_REDIS_URL", url.as_str()),
        ("LOGSTREAM_RATE_LIMITS", "/api/v1/alerts=3"),
    ])
    .await;
    let http = reqwest::Client::new();
    let run = format!("{}-{:?}", std::process::id(), Instant::now());

    assert_eq!(
        four_calls(&http, &gw.base, &format!("a-{run}")).await,
        [200, 200, 200, 429],
        "redis window"
    );
    assert!(!limiter_local(&http, &gw.base).await, "on redis at first");

    proxy.set_up(false);
    assert_eq!(
        four_calls(&http, &gw.base, &format!("b-{run}")).await,
        [200, 200, 200, 429],
        "redis gone: local windows enforce the same limit, nothing fails"
    );
    assert!(
        limiter_local(&http, &gw.base).await,
        "fallback shows in metrics"
    );

    proxy.set_up(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        four_calls(&http, &gw.base, &format!("c-{run}")).await,
        [200, 200, 200, 429],
        "redis back"
    );
    assert!(
        !limiter_local(&http, &gw.base).await,
        "back on redis once it answers"
    );
}
