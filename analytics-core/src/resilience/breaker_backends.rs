//! The cache and the rate-limit store behind breakers of their own: once one is known down,
//! a request spends no time on it (the summary path answers from the store without caching;
//! the limiter applies each rule's fail-open or fail-closed policy) instead of waiting on its
//! timeouts request after request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::breaker::{BreakerConfig, CircuitBreaker, SlidingWindow};
use super::rate_limit::{LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore};
use crate::cache::{CacheBackend, CacheEntry, CacheKey, CacheLookup, CacheStats, Tag};
use crate::error::Result;
use crate::model::TenantId;

/// Settings for a dependency the service can do without for a while (a cache, a limiter
/// store): open after 3 failures in a row or half of 10 calls, try again after 5 s with one
/// trial call. Opening early costs little (answers come from the store; limits follow their
/// failure policy), while waiting on a dead dependency costs every request its timeout.
pub fn dependency_breaker_config() -> BreakerConfig {
    BreakerConfig {
        window: SlidingWindow::Count(10),
        minimum_calls: 5,
        consecutive_failures: Some(3),
        wait_in_open: Duration::from_secs(5),
        half_open_permits: 1,
        max_wait_in_half_open: Some(Duration::from_secs(10)),
        ..BreakerConfig::default()
    }
}

/// A [`CacheBackend`] behind a [`CircuitBreaker`]: while open, every operation fails at once
/// with [`Error::Unavailable`](crate::Error::Unavailable).
pub struct BreakerCache {
    inner: Arc<dyn CacheBackend>,
    breaker: CircuitBreaker,
}

impl BreakerCache {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn CacheBackend>, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker (for metrics and operator controls).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl fmt::Debug for BreakerCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerCache")
            .field("state", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CacheBackend for BreakerCache {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        self.breaker.call(self.inner.get(tenant, key, tags, now)).await
    }
    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        self.breaker.call(self.inner.set(tenant, key, entry, now)).await
    }
    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.breaker.call(self.inner.invalidate(tenant, tags)).await
    }
    async fn clear_tenant(&self, tenant: &TenantId) -> Result<()> {
        self.breaker.call(self.inner.clear_tenant(tenant)).await
    }
    async fn stats(&self) -> Result<CacheStats> {
        self.breaker.call(self.inner.stats()).await
    }
    async fn invalidate_local(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.breaker.call(self.inner.invalidate_local(tenant, tags)).await
    }
}

/// A [`RateLimitStore`] behind a [`CircuitBreaker`]: while open, checks fail at once and the
/// [`RateLimiter`](super::RateLimiter) applies the rule's [`FailMode`](super::FailMode).
pub struct BreakerRateLimitStore {
    inner: Arc<dyn RateLimitStore>,
    breaker: CircuitBreaker,
}

impl BreakerRateLimitStore {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn RateLimitStore>, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker (for metrics and operator controls).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl fmt::Debug for BreakerRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRateLimitStore")
            .field("state", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimitStore for BreakerRateLimitStore {
    async fn check(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> Result<RateLimitDecision> {
        self.breaker.call(self.inner.check(key, policy, now)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::NoCache;
    use crate::clock::{Clock, ManualClock};
    use crate::error::Error;
    use crate::resilience::BreakerState;

    /// A cache that is down: every call fails as unavailable, and counts itself.
    #[derive(Debug, Default)]
    struct DeadCache {
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl CacheBackend for DeadCache {
        async fn get(&self, _: &TenantId, _: &CacheKey, _: &[Tag], _: DateTime<Utc>) -> Result<CacheLookup> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(Error::unavailable("redis is down"))
        }
        async fn set(&self, _: &TenantId, _: &CacheKey, _: CacheEntry, _: DateTime<Utc>) -> Result<()> {
            Err(Error::unavailable("redis is down"))
        }
        async fn invalidate(&self, _: &TenantId, _: &[Tag]) -> Result<()> {
            Err(Error::unavailable("redis is down"))
        }
        async fn stats(&self) -> Result<CacheStats> {
            NoCache::default().stats().await
        }
    }

    #[tokio::test]
    async fn a_dead_cache_is_left_alone_after_three_failures_and_tried_again_later() {
        let clock = Arc::new(ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap()));
        let dead = Arc::new(DeadCache::default());
        let breaker = CircuitBreaker::new(dependency_breaker_config(), clock.clone()).unwrap();
        let cache = BreakerCache::new(dead.clone(), breaker);
        let (tenant, key) = (TenantId::parse("t").unwrap(), CacheKey::from_text("k"));
        for _ in 0..10 {
            assert!(cache.get(&tenant, &key, &[], clock.now()).await.is_err());
        }
        assert_eq!(
            dead.calls.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "only three reached it"
        );
        assert_eq!(cache.breaker().state(), BreakerState::Open);
        clock.advance(Duration::from_secs(5));
        assert!(cache.get(&tenant, &key, &[], clock.now()).await.is_err());
        assert_eq!(
            dead.calls.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "one trial after the wait"
        );
    }
}
