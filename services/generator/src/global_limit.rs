//! The global rate cap shared by every generator instance (`global_rate_per_second`).
//!
//! Every 10 ms a task asks Redis for the tokens this instance needs for the next 10 ms; one
//! atomic Lua script (GCRA on Redis server time, 50 ms of burst) grants what the cluster-wide cap
//! leaves. The generation threads take tokens from the instance's allowance before each batch;
//! events they may not generate count in `log_events_rate_limited_total`.
//!
//! When Redis does not answer, the instance falls back to a local cap of global ÷ live instances
//! (the live count it last read from the registry), says so in `generator_rate_limiter_local`
//! and in status, and tries Redis again every second, returning to it when it answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstream_service::shutdown::CancellationToken;
use prometheus::IntGauge;
use redis::aio::MultiplexedConnection;

const KEY: &str = "logstream:ratelimit:global";
const TICK: Duration = Duration::from_millis(10);
const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// GCRA over all instances: KEYS[1] holds the theoretical arrival time (µs, Redis clock);
/// ARGV: rate per second, burst in tokens, tokens wanted. Answers the tokens granted.
const GCRA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + burst * interval - tat) / interval)
local granted = math.max(0, math.min(want, room))
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return granted
";

/// The instance's tokens, shared by the limiter task (which fills it) and the generation
/// threads (which take from it).
#[derive(Default)]
pub struct Allowance {
    /// Global cap of the current run; 0 = none.
    global_rate: AtomicU64,
    /// This instance's own target rate (its demand).
    demand_rate: AtomicU64,
    tokens: AtomicU64,
    /// Whether the fallback is in use.
    local: AtomicBool,
    /// Live instances, as last read from the registry.
    live_instances: AtomicU64,
}

impl Allowance {
    /// Sets the cap of a new run (`None`: no cap) and this instance's rate.
    pub fn configure(&self, global_rate: Option<u64>, demand_rate: u64) {
        self.tokens.store(0, Ordering::Release);
        self.demand_rate.store(demand_rate, Ordering::Release);
        self.global_rate
            .store(global_rate.unwrap_or(0), Ordering::Release);
    }

    pub fn is_capped(&self) -> bool {
        self.global_rate.load(Ordering::Acquire) > 0
    }

    /// Takes up to `want` tokens; answers how many were granted (all of them when uncapped).
    pub fn take(&self, want: u64) -> u64 {
        if !self.is_capped() {
            return want;
        }
        let mut current = self.tokens.load(Ordering::Acquire);
        loop {
            let granted = current.min(want);
            match self.tokens.compare_exchange_weak(
                current,
                current - granted,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return granted,
                Err(now) => current = now,
            }
        }
    }

    pub fn set_live_instances(&self, n: u64) {
        self.live_instances.store(n.max(1), Ordering::Release);
    }

    /// `Some("redis")` or `Some("local")` while a cap is set; for status.
    pub fn mode(&self) -> Option<&'static str> {
        self.is_capped().then(|| {
            if self.local.load(Ordering::Acquire) {
                "local"
            } else {
                "redis"
            }
        })
    }
}

/// Fills the allowance every 10 ms from Redis, or locally while Redis is unreachable.
pub async fn run(
    allowance: Arc<Allowance>,
    redis: redis::Client,
    local_gauge: IntGauge,
    shutdown: CancellationToken,
) {
    let mut filler = Filler {
        script: redis::Script::new(GCRA),
        redis,
        connection: None,
        retry_at: None,
        carry: 0.0,
        local_gauge,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let global = allowance.global_rate.load(Ordering::Acquire);
        if global == 0 {
            continue;
        }
        let demand = allowance.demand_rate.load(Ordering::Acquire);
        // Ask for the next tick's demand, less what is still unused (no hoarding).
        let per_tick = (demand as f64 * TICK.as_secs_f64()).ceil() as u64;
        let want = per_tick.saturating_sub(allowance.tokens.load(Ordering::Acquire));
        if want == 0 {
            continue;
        }
        let use_redis = filler.retry_at.is_none_or(|at| Instant::now() >= at);
        let granted = match use_redis {
            true => filler.ask_redis(&allowance, global, want).await,
            false => None,
        };
        let granted = granted.unwrap_or_else(|| filler.local_share(&allowance, global, want));
        allowance.tokens.fetch_add(granted, Ordering::AcqRel);
    }
}

/// Where the allowance's tokens come from: the shared bucket in Redis, or this instance's
/// share of the global rate while Redis cannot be reached.
struct Filler {
    script: redis::Script,
    redis: redis::Client,
    connection: Option<MultiplexedConnection>,
    /// While Redis is unreachable: when to ask it again.
    retry_at: Option<Instant>,
    /// Fractional local tokens carried to the next tick.
    carry: f64,
    local_gauge: IntGauge,
}

impl Filler {
    /// Asks Redis for `want` tokens of the `global` rate; None when it cannot answer in time
    /// (then the allowance is filled locally for a while).
    async fn ask_redis(&mut self, allowance: &Allowance, global: u64, want: u64) -> Option<u64> {
        let burst = (global as f64 * 0.05).max(1.0) as u64;
        let (script, redis, connection) = (&self.script, &self.redis, &mut self.connection);
        let asked = async {
            if connection.is_none() {
                *connection = Some(redis.get_multiplexed_async_connection().await?);
            }
            match connection.as_mut() {
                Some(conn) => {
                    script
                        .key(KEY)
                        .arg(global)
                        .arg(burst)
                        .arg(want)
                        .invoke_async::<u64>(conn)
                        .await
                }
                None => unreachable!("connected above"),
            }
        };
        match tokio::time::timeout(REDIS_TIMEOUT, asked).await {
            Ok(Ok(granted)) => {
                if allowance.local.swap(false, Ordering::AcqRel) {
                    tracing::info!("global rate limiter back on redis");
                    self.local_gauge.set(0);
                }
                self.retry_at = None;
                Some(granted)
            }
            outcome => {
                self.connection = None;
                self.retry_at = Some(Instant::now() + RETRY_REDIS_AFTER);
                if !allowance.local.swap(true, Ordering::AcqRel) {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(%error, "global rate limiter falls back to a local share (redis unreachable)");
                    self.local_gauge.set(1);
                }
                None
            }
        }
    }

    /// This instance's share of the global rate for one tick (at most `want`).
    fn local_share(&mut self, allowance: &Allowance, global: u64, want: u64) -> u64 {
        let live = allowance.live_instances.load(Ordering::Acquire).max(1);
        self.carry += global as f64 / live as f64 * TICK.as_secs_f64();
        let whole = self.carry.floor();
        self.carry -= whole;
        (whole as u64).min(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncapped_grants_everything_and_capped_only_what_it_holds() {
        let a = Allowance::default();
        assert_eq!(a.take(500), 500);
        assert_eq!(a.mode(), None);
        a.configure(Some(100), 1000);
        assert_eq!(a.take(5), 0);
        a.tokens.store(3, Ordering::Release);
        assert_eq!(a.take(5), 3);
        assert_eq!(a.take(5), 0);
        assert_eq!(a.mode(), Some("redis"));
        a.local.store(true, Ordering::Release);
        assert_eq!(a.mode(), Some("local"));
    }
}
