//! Registration in Redis: every few seconds the instance writes
//! `logstream:generators:<instance-id>` = its URL, with a TTL, so the gateway can discover the
//! live instances. The key is removed on shutdown; a crashed instance expires by itself.

use std::time::Duration;

use logstream_core::api::GENERATOR_REGISTRY_PREFIX;
use logstream_service::shutdown::CancellationToken;
use redis::AsyncCommands;

const TTL_SECONDS: u64 = 15;
const EVERY: Duration = Duration::from_secs(5);

pub async fn heartbeat(
    client: redis::Client,
    instance_id: String,
    url: String,
    shutdown: CancellationToken,
) {
    let key = format!("{GENERATOR_REGISTRY_PREFIX}{instance_id}");
    let mut warned = false;
    loop {
        let result: redis::RedisResult<()> = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            conn.set_ex(&key, &url, TTL_SECONDS).await
        }
        .await;
        match result {
            Ok(()) if warned => {
                tracing::info!("registered in redis again");
                warned = false;
            }
            Ok(()) => {}
            Err(e) if !warned => {
                tracing::warn!(error = %e, "cannot register in redis; the gateway's static list still works");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
        let _: redis::RedisResult<()> = conn.del(&key).await;
    }
}
