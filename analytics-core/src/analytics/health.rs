//! [`HealthReport`]: everything an operator's health endpoint shows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Analytics;
use crate::cache::CacheStats;
use crate::query::LoadLevel;
use crate::resilience::{BreakerMetrics, BreakerState, LoadSnapshot};
use crate::store::StoreHealth;

/// Overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    /// Serving normally.
    Healthy,
    /// Serving, with reduced quality (high load, breaker half-open, cache unreachable).
    Degraded,
    /// The store cannot be reached or its breaker is open: only cached answers are served.
    Unhealthy,
}

/// Health of the facade and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// When the report was made.
    pub timestamp: DateTime<Utc>,
    /// The store's self-report, or why it could not be had.
    pub store: Result<StoreHealth, String>,
    /// The breaker in front of the store, if any.
    pub circuit_breaker: Option<BreakerMetrics>,
    /// Load level and its inputs.
    pub load: LoadSnapshot,
    /// Cache counters, or why they could not be had.
    pub cache: Result<CacheStats, String>,
    /// The breakers of the other dependencies (the cache, the rate-limit store), by name.
    pub dependencies: Vec<(String, BreakerMetrics)>,
    /// Whether summaries read and fill the cache: false while invalidations owed for writes
    /// acknowledged during a cache outage remain to be applied (the cache may hold answers
    /// older than those writes); they are applied within [`SETTLE_EVERY`](crate::SETTLE_EVERY)
    /// of the cache answering again.
    pub cache_trusted: bool,
}

/// How long a health report waits for the store's or the cache's own report: health must
/// answer while a dependency hangs, saying so.
pub const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

async fn probe<T>(what: &str, report: impl Future<Output = crate::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(HEALTH_PROBE_TIMEOUT, report).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{what} did not answer within {} ms",
            HEALTH_PROBE_TIMEOUT.as_millis()
        )),
    }
}

impl Analytics {
    /// A health report. Never fails: each part reports its own error, and neither the store nor
    /// the cache is waited on longer than [`HEALTH_PROBE_TIMEOUT`] (both are asked at once).
    pub async fn health(&self) -> HealthReport {
        let inner = &self.inner;
        let (store, cache) = tokio::join!(
            probe("the store", inner.store.health()),
            probe("the cache", inner.cache.stats())
        );
        let circuit_breaker = inner.breaker.as_ref().map(|b| b.metrics());
        let load = inner.load.snapshot();
        let dependencies: Vec<(String, BreakerMetrics)> = inner
            .dependency_breakers
            .iter()
            .map(|(name, breaker)| (name.clone(), breaker.metrics()))
            .collect();
        let dependency_open = dependencies.iter().any(|(_, m)| {
            matches!(
                m.state,
                BreakerState::Open | BreakerState::ForcedOpen | BreakerState::HalfOpen
            )
        });
        let breaker_state = circuit_breaker.as_ref().map(|m| m.state);
        let status = if !store.as_ref().is_ok_and(|s| s.healthy)
            || matches!(breaker_state, Some(BreakerState::Open | BreakerState::ForcedOpen))
        {
            HealthStatus::Unhealthy
        } else if load.level >= LoadLevel::High
            || breaker_state == Some(BreakerState::HalfOpen)
            || cache.is_err()
            || dependency_open
        {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        HealthReport {
            status,
            timestamp: inner.clock.now(),
            store,
            circuit_breaker,
            load,
            cache,
            dependencies,
            cache_trusted: inner.fence.cache_trusted(),
        }
    }
}
