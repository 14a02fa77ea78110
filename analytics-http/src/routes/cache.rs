//! `/analytics/cache/*`: statistics, clearing the caller's cached answers, warming ranges.

use std::sync::Arc;

use analytics_core::query::SummaryRequest;
use analytics_core::{Analytics, Warmed};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::health::{BreakerView, CacheView, LoadView};
use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::metrics::Metrics;
use crate::params::{NoParams, Params};

/// Cache statistics.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CacheStatsBody {
    /// The cache (shared by every tenant: counts only, no data).
    cache: CacheView,
    /// The breaker, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_breaker: Option<BreakerView>,
    /// Load.
    load: LoadView,
}

/// Cache, breaker and load statistics.
#[utoipa::path(get, path = "/api/analytics/cache/stats", tag = "cache",
    responses((status = 200, body = CacheStatsBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_stats(
    State(analytics): State<Analytics>,
    State(metrics): State<Arc<Metrics>>,
    _caller: Caller,
    _: Params<NoParams>,
) -> Result<Json<CacheStatsBody>, ApiError> {
    let stats = analytics.cache_stats().await?;
    Ok(Json(CacheStatsBody {
        cache: stats.into(),
        circuit_breaker: analytics.breaker().map(|b| b.metrics().into()),
        load: LoadView::new(analytics.load().snapshot(), metrics.requests_per_second()),
    }))
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
