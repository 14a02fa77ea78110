//! The health report answers while a dependency hangs, and names each dependency's breaker.

use std::sync::Arc;

use analytics_core::cache::{CacheBackend, CacheEntry, CacheKey, CacheLookup, CacheStats, MokaCache, Tag};
use analytics_core::clock::ManualClock;
use analytics_core::model::TenantId;
use analytics_core::resilience::{BreakerState, CircuitBreaker, dependency_breaker_config};
use analytics_core::{Analytics, HEALTH_PROBE_TIMEOUT, HealthStatus, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A cache whose statistics never come (a frozen server).
#[derive(Debug, Default)]
struct FrozenStats(MokaCache);

#[async_trait]
impl CacheBackend for FrozenStats {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        self.0.get(tenant, key, tags, now).await
    }
    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        self.0.set(tenant, key, entry, now).await
    }
    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.0.invalidate(tenant, tags).await
    }
    async fn stats(&self) -> Result<CacheStats> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_cache_is_reported_after_the_probe_timeout_not_waited_on() {
    let analytics = Analytics::builder()
        .cache(Arc::new(FrozenStats::default()))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let report = analytics.health().await;
    // The (virtual) clock moved exactly the probe's bound, no more.
    assert_eq!(started.elapsed(), HEALTH_PROBE_TIMEOUT);
    assert!(report.cache.unwrap_err().contains("did not answer"));
    assert!(report.store.is_ok());
    assert_eq!(report.status, HealthStatus::Degraded);
}

#[tokio::test]
async fn dependency_breakers_are_reported_and_an_open_one_degrades() {
    let clock = Arc::new(ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap()));
    let cache_breaker = CircuitBreaker::new(dependency_breaker_config(), clock.clone()).unwrap();
    let analytics = Analytics::builder()
        .clock(clock)
        .dependency_breaker("cache", cache_breaker.clone())
        .build()
        .unwrap();
    let report = analytics.health().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.dependencies.len(), 1);
    assert_eq!(report.dependencies[0].0, "cache");
    cache_breaker.force_open();
    let report = analytics.health().await;
    assert_eq!(report.dependencies[0].1.state, BreakerState::ForcedOpen);
    assert_eq!(report.status, HealthStatus::Degraded);
}
