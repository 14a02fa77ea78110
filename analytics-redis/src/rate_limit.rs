//! [`RedisRateLimitStore`]: rate-limit state shared by every instance, in Redis.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::resilience::{LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore};
use analytics_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;

use crate::connection::{RedisConfig, RedisConnection};
use crate::error::{self, corrupt};
use crate::keys::Keys;

/// Which clock decisions are made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeSource {
    /// Redis's `TIME`: every instance sharing the server decides on the same clock, whatever
    /// their own clocks say. The default.
    #[default]
    Server,
    /// The `now` the limiter passes (its [`Clock`](analytics_core::clock::Clock)): for tests on
    /// virtual time, and for deployments whose instances share a trusted clock.
    Caller,
}

/// The [`RateLimitStore`] on Redis (standalone or Cluster): GCRA and sliding-window decisions
/// as Lua ports of core's arithmetic, each one atomic script call (one round trip), so instances
/// sharing Redis never admit more than the policy together.
///
/// Decisions are identical to the in-process store's for the same requests at the same instants
/// (the conformance suite replays random sequences on both). A key's state expires when it has
/// become equivalent to a fresh one. Sliding windows must satisfy (2 × limit + 1) × window in µs
/// < 2^53 (Lua computes in doubles; e.g. 1,000 requests per 52 days); others are refused with
/// [`Error::InvalidInput`], as are GCRA policies whose bucket (period / limit × burst) reaches
/// 2^51 µs (71 years).
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    connection: RedisConnection,
    keys: Keys,
    time: TimeSource,
    scripts: Arc<(Script, Script)>,
}

/// 2^53: Lua numbers are exact integers below it.
const EXACT_LIMIT: u128 = 1 << 53;

impl RedisRateLimitStore {
    /// Connects to the server or cluster `config` names; decisions use the server's clock.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a bad setting; transient errors when Redis is unreachable.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let keys = config.keys()?;
        let connection = config.connect().await?;
        Ok(Self {
            connection,
            keys,
            time: TimeSource::Server,
            scripts: Arc::new((
                Script::new(concat!(
                    include_str!("lua/prelude.lua"),
                    include_str!("lua/rate_limit_gcra.lua")
                )),
                Script::new(concat!(
                    include_str!("lua/prelude.lua"),
                    include_str!("lua/rate_limit_window.lua")
                )),
            )),
        })
    }

    /// Decides on `time` instead.
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }
}

fn micros(duration: Duration) -> u128 {
    duration.as_micros()
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn check(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> Result<RateLimitDecision> {
        policy.validate()?;
        let now_arg = match self.time {
            TimeSource::Server => String::new(),
            TimeSource::Caller => now.timestamp_micros().to_string(),
        };
        let invocation = match *policy {
            RateLimitPolicy::Gcra { limit, period, burst } => {
                // Times are µs since the epoch (below 2^51 until 2041) plus at most a full bucket.
                if micros(period) / u128::from(limit) * u128::from(burst) >= EXACT_LIMIT / 4 {
                    return Err(Error::invalid(
                        "burst",
                        "period / limit × burst in µs must be below 2^51 for the Redis store",
                    ));
                }
                let mut invocation = self.scripts.0.key(self.keys.limiter(&key.tenant, key.class));
                invocation
                    .arg(now_arg)
                    .arg(micros(period).to_string())
                    .arg(limit)
                    .arg(burst);
                invocation
            }
            RateLimitPolicy::SlidingWindow { limit, window } => {
                if (2 * u128::from(limit) + 1) * micros(window) >= EXACT_LIMIT {
                    return Err(Error::invalid(
                        "window",
                        "(2 × limit + 1) × window in µs must be below 2^53 for the Redis store",
                    ));
                }
                let mut invocation = self.scripts.1.key(self.keys.limiter(&key.tenant, key.class));
                invocation.arg(now_arg).arg(micros(window).to_string()).arg(limit);
                invocation
            }
        };
        let reply: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| error::map("rate limit", e))?;
        let [allowed, remaining, reset_after, retry_after] = reply[..] else {
            return Err(corrupt("rate-limit reply", format!("{reply:?}")));
        };
        let duration = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        Ok(RateLimitDecision {
            allowed: allowed == 1,
            limit: policy.header_limit(),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after: duration(reset_after),
            retry_after: (retry_after >= 0).then(|| duration(retry_after)),
            window: policy.window(),
            unchecked: false,
        })
    }
}
