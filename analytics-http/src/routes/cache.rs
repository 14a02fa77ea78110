//! `/analytics/cache/*`: statistics, clearing the caller's cached answers, warming ranges.

use analytics_core::query::LoadLevel;
use analytics_core::query::SummaryRequest;
use analytics_core::{Analytics, TenantCacheStats, Warmed};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::health::BreakerView;
use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Params};

/// The caller's cache figures and the service's state. Only the caller's own counts: the
/// cache's process-wide figures are in `/metrics` and the readiness report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CacheStatsBody {
    /// How the caller's summaries were answered.
    cache: TenantCacheStats,
    /// The breaker's state, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_breaker: Option<BreakerStateView>,
    /// The load level.
    load: LoadLevelView,
}

/// The breaker's state, without the process-wide call counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BreakerStateView {
    /// `CLOSED`, `OPEN`, `HALF_OPEN`, `DISABLED`, `FORCED_OPEN`, `METRICS_ONLY`.
    state: String,
}

/// The load level, without the process-wide request rates.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoadLevelView {
    /// `NORMAL`, `ELEVATED`, `HIGH` or `CRITICAL`.
    level: LoadLevel,
}

/// The caller's cache figures, the breaker's state and the load level.
#[utoipa::path(get, path = "/api/analytics/cache/stats", tag = "cache",
    responses((status = 200, body = CacheStatsBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_stats(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
) -> Json<CacheStatsBody> {
    Json(CacheStatsBody {
        cache: analytics.tenant_cache_stats(&caller.tenant),
        circuit_breaker: analytics.breaker().map(|b| BreakerStateView {
            state: BreakerView::from(b.metrics()).state,
        }),
        load: LoadLevelView {
            level: analytics.load().snapshot().level,
        },
    })
}

/// The answer to a cache clear.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cleared {
    /// What was done.
    message: String,
    /// Whose answers were dropped (only the caller's).
    tenant_id: String,
}

/// Drops every cached answer of the caller's tenant.
#[utoipa::path(post, path = "/api/analytics/cache/clear", tag = "cache",
    responses((status = 200, body = Cleared), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_clear(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
) -> Result<Json<Cleared>, ApiError> {
    analytics.clear_cache(&caller.tenant).await?;
    Ok(Json(Cleared {
        message: "Cache cleared successfully".into(),
        tenant_id: caller.tenant.as_str().to_owned(),
    }))
}

/// Ranges to precompute.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WarmRequest {
    /// The summaries to compute and cache (as `/analytics/summary` parameters; 1–100).
    #[schema(min_items = 1, max_items = 100)]
    ranges: Vec<SummaryRequest>,
}

/// The answer to a warm request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WarmResponse {
    /// One per range, in order.
    warmed: Vec<Warmed>,
}

/// Precomputes the given summaries into the cache (e.g. the dashboard's default ranges after a
/// deploy).
#[utoipa::path(post, path = "/api/analytics/cache/warm", tag = "cache", request_body = WarmRequest,
    responses((status = 200, body = WarmResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_warm(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
    JsonBody(body): JsonBody<WarmRequest>,
) -> Result<Json<WarmResponse>, ApiError> {
    let warmed = analytics
        .warm(&caller.tenant, &body.ranges, caller.priority)
        .await
        .map_err(ApiError::unprocessable)?;
    Ok(Json(WarmResponse { warmed }))
}
