//! Registration in Redis: every few seconds the instance writes
//! `logstream:generators:<instance-id>` = its URL, with a TTL, so the gateway can discover the
//! live instances. The key is removed on shutdown; a crashed instance expires by itself. Each
//! beat also counts the live instances, for the global rate cap's local fallback.

use std::sync::Arc;
use std::time::Duration;

use logstream_core::api::GENERATOR_REGISTRY_PREFIX;
use logstream_service::shutdown::CancellationToken;
use redis::AsyncCommands;

use crate::global_limit::Allowance;

const TTL_SECONDS: u64 = 15;
const EVERY: Duration = Duration::from_secs(5);

pub async fn heartbeat(
    client: redis::Client,
    allowance: Arc<Allowance>,
    instance_id: String,
    url: String,
    shutdown: CancellationToken,
) {
    let key = format!("{GENERATOR_REGISTRY_PREFIX}{instance_id}");
    let mut warned = false;
    loop {
        let result: redis::RedisResult<()> = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            conn.set_ex::<_, _, ()>(&key, &url, TTL_SECONDS).await?;
            let mut live = 0;
            let mut keys = conn
                .scan_match::<_, String>(format!("{GENERATOR_REGISTRY_PREFIX}*"))
                .await?;
            while let Some(key) = keys.next_item().await {
                key?;
                live += 1;
            }
            allowance.set_live_instances(live);
            Ok(())
        }
        .await;
        match result {
            Ok(()) if warned => {
                tracing::info!("registered in redis again");
                warned = false;
            }
            Ok(()) => {}
            Err(e) if !warned => {
                tracing::warn!(error = %e, "cannot register in redis; a gateway that lists this instance statically (LOGSTREAM_GENERATOR_URLS) still reaches it");
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
