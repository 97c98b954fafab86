//! The global rate cap across instances: two generator instances share one cap through a real
//! Redis server of this test's own (so it can be killed and restarted without touching the
//! stack's). The sum stays within 5% of the cap on Redis, within 10% on the local fallback while
//! Redis is down, and the instances return to Redis when it is back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logstream_integration_tests::{
    enabled, free_port, generator_call, generator_status, has_metric_line, unique, Service,
};

const CAP: u64 = 2_000;
const EACH: u64 = 3_000;
const WINDOW: Duration = Duration::from_secs(10);

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Events per second both instances generated together over one window.
async fn summed_rate(http: &reqwest::Client, bases: &[&str]) -> f64 {
    let mut from = 0;
    for base in bases {
        from += generator_status(http, base).await["generated_total"]
            .as_u64()
            .expect("generated");
    }
    let began = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let mut to = 0;
    for base in bases {
        to += generator_status(http, base).await["generated_total"]
            .as_u64()
            .expect("generated");
    }
    (to - from) as f64 / began.elapsed().as_secs_f64()
}

async fn modes(http: &reqwest::Client, bases: &[&str]) -> Vec<String> {
    let mut modes = Vec::new();
    for base in bases {
        modes.push(
            generator_status(http, base).await["rate_limiter"]
                .as_str()
                .unwrap_or("-")
                .to_owned(),
        );
    }
    modes
}

async fn wait_for_mode(http: &reqwest::Client, bases: &[&str], mode: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = modes(http, bases).await;
        if now.iter().all(|m| m == mode) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instances not on {mode}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_cap_through_redis_and_fall_back_without_it() {
    if !enabled() {
        return;
    }
    let port = free_port();
    let mut redis = Redis::start(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let topic = unique("global-cap");
    let mut instances = Vec::new();
    for n in 0..2 {
        let id = unique(&format!("gen-cap-{n}"));
        instances.push(
            Service::start_path(
                &format!("global-cap-generator-{n}"),
                Path::new(env!("CARGO_BIN_EXE_logstream-generator")),
                "LOGSTREAM_GENERATOR_LISTEN",
                &[
                    ("LOGSTREAM_REDIS_URL", url.as_str()),
                    ("LOGSTREAM_TOPIC_RAW", topic.as_str()),
                    ("LOGSTREAM_INSTANCE_ID", id.as_str()),
                ],
            )
            .await,
        );
    }
    let bases: Vec<&str> = instances.iter().map(|s| s.base.as_str()).collect();
    let http = reqwest::Client::new();
    let start = serde_json::json!({"rate_per_second": EACH, "global_rate_per_second": CAP});
    for base in &bases {
        generator_call(&http, base, "start", &start).await;
    }
    // Let both heartbeats (every 5 s) count two live instances.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(modes(&http, &bases).await, ["redis", "redis"]);

    let on_redis = summed_rate(&http, &bases).await;
    println!("on redis: {on_redis:.0} events/s for a cap of {CAP}");
    assert!(
        (on_redis / CAP as f64 - 1.0).abs() <= 0.05,
        "on redis: {on_redis:.0}/s vs cap {CAP}"
    );

    redis.kill();
    wait_for_mode(&http, &bases, "local").await;
    assert!(has_metric_line(bases[0], "generator_rate_limiter_local 1").await);
    let local = summed_rate(&http, &bases).await;
    println!("redis down, local fallback: {local:.0} events/s for a cap of {CAP}");
    assert!(
        (local / CAP as f64 - 1.0).abs() <= 0.10,
        "local: {local:.0}/s vs cap {CAP}"
    );

    let _redis = Redis::start(port);
    wait_for_mode(&http, &bases, "redis").await;
    let back = summed_rate(&http, &bases).await;
    println!("redis back: {back:.0} events/s for a cap of {CAP}");
    assert!(
        (back / CAP as f64 - 1.0).abs() <= 0.05,
        "back on redis: {back:.0}/s vs cap {CAP}"
    );

    let limited = generator_status(&http, bases[0]).await["rate_limited_total"]
        .as_u64()
        .unwrap_or(0);
    assert!(limited > 0, "refused events are counted");
    for base in &bases {
        let _ = http
            .post(format!("{base}/api/v1/generator/stop"))
            .send()
            .await;
    }
    for instance in &mut instances {
        instance.terminate().await;
    }
}
