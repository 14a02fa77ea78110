//! `GET /api/analytics/health`: the service's readiness for operators and monitoring systems —
//! breaker, load, cache and store — without a tenant and without any tenant's data.

use std::collections::BTreeMap;
use std::sync::Arc;

use analytics_core::cache::CacheStats;
use analytics_core::query::LoadLevel;
use analytics_core::resilience::{BreakerMetrics, LoadSnapshot};
use analytics_core::{Analytics, HealthStatus};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::metrics::Metrics;
use crate::params::{NoParams, Params};

/// The circuit breaker in front of the store.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BreakerView {
    /// `CLOSED`, `OPEN`, `HALF_OPEN`, `DISABLED`, `FORCED_OPEN`, `METRICS_ONLY`.
    pub(super) state: String,
    /// Failed calls since start.
    failure_count: u64,
    /// Successful calls since start.
    success_count: u64,
    /// Calls refused while open since start.
    rejected_count: u64,
    /// Failure rate of the current window, when it holds enough calls.
    failure_rate: Option<f64>,
}

impl From<BreakerMetrics> for BreakerView {
    fn from(m: BreakerMetrics) -> Self {
        let state = serde_json::to_value(m.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            state,
            failure_count: m.failures_total,
            success_count: m.successes_total,
            rejected_count: m.rejected_total,
            failure_rate: m.failure_rate,
        }
    }
}

/// Load.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadView {
    /// `NORMAL`, `ELEVATED`, `HIGH` or `CRITICAL`.
    level: LoadLevel,
    /// HTTP requests completed in the last whole second.
    requests_per_second: u64,
    /// Average query response time, ms.
    avg_response_time: f64,
    /// Queries in flight.
    in_flight: u32,
    /// Queries shed since start.
    shed: u64,
}

impl LoadView {
    pub(crate) fn new(load: LoadSnapshot, requests_per_second: u64) -> Self {
        Self {
            level: load.level,
            requests_per_second,
            avg_response_time: load.avg_response_time_ms,
            in_flight: load.in_flight,
            shed: load.shed,
        }
    }
}

/// The cache.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CacheView {
    /// Fresh hits / lookups, in percent.
    hit_rate: f64,
    /// Bytes held.
    size: u64,
    /// Entries held.
    entries: u64,
    /// Hits since start.
    hits: u64,
    /// Misses since start.
    misses: u64,
    /// Stale answers served since start.
    stale_hits: u64,
}

impl From<CacheStats> for CacheView {
    fn from(s: CacheStats) -> Self {
        Self {
            hit_rate: s.hit_rate,
            size: s.bytes,
            entries: s.entries,
            hits: s.hits,
            misses: s.misses,
            stale_hits: s.stale_hits,
        }
    }
}

/// The health report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalyticsHealth {
    /// `healthy`, `degraded` or `unhealthy`.
    status: HealthStatus,
    /// When the report was made.
    timestamp: DateTime<Utc>,
    /// The parts.
    metrics: HealthMetrics,
}

/// The parts of a health report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HealthMetrics {
    /// The breaker in front of the store (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_breaker: Option<BreakerView>,
    /// Load.
    load: LoadView,
    /// The cache (absent when its stats could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<CacheView>,
    /// Whether summaries read and fill the cache: false for up to a second after the cache
    /// comes back from an outage, while the invalidations owed for writes made during it are
    /// applied (until then the cache may hold answers older than those writes).
    cache_trusted: bool,
    /// The store.
    store: StoreView,
    /// The breakers of the other dependencies (`cache`, `rateLimits`), by name; absent when
    /// there are none (the embedded default).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    dependencies: BTreeMap<String, BreakerView>,
}

/// The store's health: what it is and whether it answers (its details stay in the log).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoreView {
    /// Whether it answers.
    healthy: bool,
    /// The kind of store (`memory`, `postgres`), when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
}

/// Health of the service: breaker, load, cache and store. 503 when unhealthy. Needs no tenant
/// and shows no tenant's data.
#[utoipa::path(get, path = "/api/analytics/health", tag = "operations", security(()),
    responses((status = 200, body = AnalyticsHealth), (status = 503, body = AnalyticsHealth),
        (status = 400, body = ErrorBody)))]
pub(crate) async fn health(
    State(analytics): State<Analytics>,
    State(metrics): State<Arc<Metrics>>,
    _: Params<NoParams>,
) -> Result<Response, ApiError> {
    let report = analytics.health().await;
    let store = match report.store {
        Ok(s) => StoreView {
            healthy: s.healthy,
            backend: Some(s.backend),
        },
        Err(error) => {
            tracing::warn!(%error, "health: the store did not answer");
            StoreView {
                healthy: false,
                backend: None,
            }
        }
    };
    let body = AnalyticsHealth {
        status: report.status,
        timestamp: report.timestamp,
        metrics: HealthMetrics {
            circuit_breaker: report.circuit_breaker.map(BreakerView::from),
            load: LoadView::new(report.load, metrics.requests_per_second()),
            cache: report.cache.ok().map(CacheView::from),
            cache_trusted: report.cache_trusted,
            dependencies: report
                .dependencies
                .into_iter()
                .map(|(name, breaker)| (name, BreakerView::from(breaker)))
                .collect(),
            store,
        },
    };
    let status = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}
