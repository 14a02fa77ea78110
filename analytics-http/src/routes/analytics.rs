//! `/analytics/*`: the summary (plain, paginated), realtime, health and the cache controls.

use analytics_core::SummaryOptions;
use analytics_core::cache::CacheStats;
use analytics_core::query::{Filters, Granularity, Query, Summary, SummaryBody, SummaryRequest, TimeRange};
use analytics_core::resilience::{BreakerMetrics, LoadSnapshot};
use analytics_core::{HealthStatus, query::LoadLevel};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Params};
use crate::state::AppState;

/// The parameters of a summary, as the dashboard sends them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documentation only: parsing goes through `Params` for exact error fields.
pub(crate) struct SummaryParams {
    /// `YYYY-MM-DD` (start of that day in `timezone`) or an RFC 3339 instant. Required.
    start_date: Option<String>,
    /// `YYYY-MM-DD` (through the end of that day) or an RFC 3339 instant (exclusive). Required.
    end_date: Option<String>,
    /// Alias of `startDate` (seed 003).
    from: Option<String>,
    /// Alias of `endDate` (seed 003).
    to: Option<String>,
    /// `hour`, `day` (default), `week` or `month`.
    group_by: Option<String>,
    /// IANA timezone of the buckets and dates (default `UTC`).
    timezone: Option<String>,
    /// Only events of this type.
    event_type: Option<String>,
    /// Only events of this user.
    user_id: Option<String>,
    /// Only this experiment's events, with per-variant stats.
    experiment_id: Option<String>,
    /// Bypass the cache read.
    skip_cache: Option<bool>,
    /// Count unique users exactly.
    exact: Option<bool>,
    /// `previous`: also the same metrics for the previous period of equal length.
    compare: Option<String>,
}

/// What `/analytics/summary` accepts.
pub(crate) const SUMMARY_PARAMS: &[&str] = &[
    "startDate",
    "endDate",
    "from",
    "to",
    "groupBy",
    "timezone",
    "eventType",
    "userId",
    "experimentId",
    "skipCache",
    "exact",
    "compare",
];

/// The core request of a summary's parameters.
pub(crate) fn summary_request(params: &Params) -> Result<SummaryRequest, ApiError> {
    Ok(SummaryRequest {
        start_date: params.get_alias(&["startDate", "from"])?,
        end_date: params.get_alias(&["endDate", "to"])?,
        group_by: params.get("groupBy").map(str::to_owned),
        timezone: params.get("timezone").map(str::to_owned),
        event_type: params.get("eventType").map(str::to_owned),
        user_id: params.get("userId").map(str::to_owned),
        experiment_id: params.get("experimentId").map(str::to_owned),
        exact: params.flag("exact")?,
        skip_cache: params.flag("skipCache")?,
    })
}

/// A summary, optionally with the previous period's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SummaryResponse {
    #[serde(flatten)]
    summary: Summary,
    /// With `compare=previous`: the previous period of equal length.
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<PeriodComparison>,
}

/// The previous period and the relative changes to it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeriodComparison {
    /// Start of the previous period (inclusive).
    start_date: DateTime<Utc>,
    /// End of the previous period (exclusive): the start of the current one.
    end_date: DateTime<Utc>,
    /// The previous period's metrics.
    #[serde(flatten)]
    previous: SummaryBody,
    /// Relative change from the previous period (0.25 = +25%); null when it had none.
    change: Change,
}

/// Relative changes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Change {
    /// Of total events.
    total_events: Option<f64>,
    /// Of unique users.
    unique_users: Option<f64>,
}

fn relative(current: u64, previous: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    (previous > 0).then(|| (current as f64 - previous as f64) / previous as f64)
}

/// The same query over the period of equal length just before it.
fn previous_period(query: &Query) -> Result<Query, ApiError> {
    let range = query.range();
    let length = range.end() - range.start();
    let previous = TimeRange::new(range.start() - length, range.start())?;
    let mut filters = Filters::default();
    filters.clone_from(query.filters());
    Ok(Query::new(
        query.tenant().clone(),
        previous,
        query.granularity(),
        query.timezone(),
        filters,
    )
    .map_err(|e| ApiError::from(e).with_field("compare"))?
    .with_exact_unique_users(query.exact_unique_users()))
}

fn options(caller: &Caller, request: &SummaryRequest) -> SummaryOptions {
    SummaryOptions {
        skip_cache: request.skip_cache,
        priority: caller.priority,
    }
}

/// The dashboard summary: totals, unique users, events by type, the time series, top pages,
/// devices, and variants for an experiment.
#[utoipa::path(get, path = "/api/analytics/summary", tag = "analytics", params(SummaryParams),
    responses((status = 200, body = SummaryResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), SUMMARY_PARAMS)?;
    let request = summary_request(&params)?;
    let compare = match params.get("compare") {
        None => false,
        Some("previous") => true,
        Some(other) => return Err(ApiError::bad_request("compare", format!("{other:?} is not `previous`"))),
    };
    let query = Query::parse(&caller.tenant, &request)?;
    let analytics = state.analytics();
    if !compare {
        // The hot path: core renders the JSON from the cached answer's memoized body.
        let json = analytics.summary_json_with(query, options(&caller, &request)).await?;
        return Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json,
        )
            .into_response());
    }
    let previous = previous_period(&query)?;
    let range = previous.range();
    let summary = analytics.summary_with(query, options(&caller, &request)).await?;
    let before = analytics.summary_with(previous, options(&caller, &request)).await?;
    let comparison = Some(PeriodComparison {
        start_date: range.start(),
        end_date: range.end(),
        change: Change {
            total_events: relative(summary.body.total_events, before.body.total_events),
            unique_users: relative(summary.body.unique_users, before.body.unique_users),
        },
        previous: before.body,
    });
    Ok(Json(SummaryResponse { summary, comparison }).into_response())
}

/// What `/analytics/summary/paginated` accepts.
const PAGINATED_PARAMS: &[&str] = &[
    "startDate",
    "endDate",
    "from",
    "to",
    "groupBy",
    "timezone",
    "eventType",
    "userId",
    "experimentId",
    "skipCache",
    "exact",
    "cursor",
    "limit",
];

/// Paging of the time series.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub(crate) struct PageParams {
    /// The `timestamp` of the first bucket of the page (a `nextCursor`); absent for the first page.
    cursor: Option<String>,
    /// Buckets per page, 1–1000 (default 50).
    limit: Option<u32>,
}

/// A page of a summary's time series.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaginatedSummary {
    /// The summary, with `timeSeriesData` holding this page's buckets only.
    data: Summary,
    /// Where this page is.
    pagination: Pagination,
}

/// Position of a page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pagination {
    /// The cursor of this page (its first bucket), null for the first page.
    cursor: Option<String>,
    /// The cursor of the next page, null on the last.
    next_cursor: Option<String>,
    /// Whether there is a next page.
    has_more: bool,
    /// Buckets per page.
    limit: u32,
    /// Buckets in the whole series.
    total: usize,
}

/// The summary with its time series in pages (for long hourly ranges).
#[utoipa::path(get, path = "/api/analytics/summary/paginated", tag = "analytics", params(SummaryParams, PageParams),
    responses((status = 200, body = PaginatedSummary), (status = 400, body = ErrorBody)))]
pub(crate) async fn summary_paginated(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<PaginatedSummary>, ApiError> {
    let params = Params::parse(raw.as_deref(), PAGINATED_PARAMS)?;
    let request = summary_request(&params)?;
    let limit = params.number("limit", 1..=1000)?.unwrap_or(50);
    let query = Query::parse(&caller.tenant, &request)?;
    let mut summary = state
        .analytics()
        .summary_with(query, options(&caller, &request))
        .await?;
    let series = std::mem::take(&mut summary.body.time_series_data);
    let cursor = params.get("cursor").filter(|c| !c.is_empty()).map(str::to_owned);
    let first = match &cursor {
        None => 0,
        Some(c) => series
            .iter()
            .position(|p| &p.timestamp == c)
            .ok_or_else(|| ApiError::bad_request("cursor", format!("{c:?} is not a bucket of this series")))?,
    };
    let total = series.len();
    let end = total.min(first + limit as usize);
    let next_cursor = series.get(end).map(|p| p.timestamp.clone());
    summary.body.time_series_data = series[first..end].to_vec();
    Ok(Json(PaginatedSummary {
        data: summary,
        pagination: Pagination {
            cursor,
            has_more: next_cursor.is_some(),
            next_cursor,
            limit,
            total,
        },
    }))
}

/// Activity in the last five minutes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Realtime {
    /// Distinct users with an event in the window.
    active_users: u64,
    /// Events in the window.
    events: u64,
    /// Events by type in the window.
    events_by_type: Vec<analytics_core::query::summary::EventTypeCount>,
    /// The window's length.
    window_seconds: u64,
    /// Window start (inclusive).
    since: DateTime<Utc>,
    /// Window end (exclusive): now, to the second.
    until: DateTime<Utc>,
}

const REALTIME_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Active users and events in the last five minutes.
#[utoipa::path(get, path = "/api/analytics/realtime", tag = "analytics",
    responses((status = 200, body = Realtime), (status = 400, body = ErrorBody)))]
pub(crate) async fn realtime(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
) -> Result<Json<Realtime>, ApiError> {
    let analytics = state.analytics();
    // Whole seconds, so requests within a second share one cache entry.
    let until = DateTime::from_timestamp(analytics.clock().now().timestamp() + 1, 0).unwrap_or_default();
    let since = until - REALTIME_WINDOW;
    let query = Query::new(
        caller.tenant.clone(),
        TimeRange::new(since, until)?,
        Granularity::Hour,
        Tz::UTC,
        Filters::default(),
    )?;
    let summary = analytics
        .summary_with(
            query,
            SummaryOptions {
                skip_cache: false,
                priority: caller.priority,
            },
        )
        .await?;
    Ok(Json(Realtime {
        active_users: summary.body.unique_users,
        events: summary.body.total_events,
        events_by_type: summary.body.events_by_type,
        window_seconds: REALTIME_WINDOW.num_seconds().unsigned_abs(),
        since,
        until,
    }))
}

/// Seed 000's circuit-breaker block.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BreakerView {
    /// `CLOSED`, `OPEN`, `HALF_OPEN`, `DISABLED`, `FORCED_OPEN`, `METRICS_ONLY`.
    state: String,
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

/// Seed 000's load block.
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
    fn new(load: LoadSnapshot, requests_per_second: u64) -> Self {
        Self {
            level: load.level,
            requests_per_second,
            avg_response_time: load.avg_response_time_ms,
            in_flight: load.in_flight,
            shed: load.shed,
        }
    }
}

/// Seed 000's cache block.
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

/// Seed 000's health body.
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
    /// The store's self-report, or why it could not be had.
    store: StoreView,
}

/// The store's health.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoreView {
    /// Whether it answers.
    healthy: bool,
    /// What it is, or the error.
    detail: String,
}

/// Health of the service: breaker, load, cache and store. 503 when unhealthy.
#[utoipa::path(get, path = "/api/analytics/health", tag = "analytics",
    responses((status = 200, body = AnalyticsHealth), (status = 503, body = AnalyticsHealth)))]
pub(crate) async fn health(State(state): State<AppState>, _caller: Caller, _: NoParams) -> Result<Response, ApiError> {
    let report = state.analytics().health().await;
    let store = match report.store {
        Ok(s) => StoreView {
            healthy: s.healthy,
            detail: format!("{}: {}", s.backend, s.detail),
        },
        Err(e) => StoreView {
            healthy: false,
            detail: e,
        },
    };
    let body = AnalyticsHealth {
        status: report.status,
        timestamp: report.timestamp,
        metrics: HealthMetrics {
            circuit_breaker: report.circuit_breaker.map(BreakerView::from),
            load: LoadView::new(report.load, state.metrics().requests_per_second()),
            cache: report.cache.ok().map(CacheView::from),
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

/// Seed 000's cache statistics body.
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
    responses((status = 200, body = CacheStatsBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_stats(
    State(state): State<AppState>,
    _caller: Caller,
    _: NoParams,
) -> Result<Json<CacheStatsBody>, ApiError> {
    let analytics = state.analytics();
    let stats = analytics.cache_stats().await?;
    Ok(Json(CacheStatsBody {
        cache: stats.into(),
        circuit_breaker: analytics.breaker().map(|b| b.metrics().into()),
        load: LoadView::new(analytics.load().snapshot(), state.metrics().requests_per_second()),
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
    responses((status = 200, body = Cleared), (status = 503, body = ErrorBody)))]
pub(crate) async fn cache_clear(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
) -> Result<Json<Cleared>, ApiError> {
    state.analytics().clear_cache(&caller.tenant).await?;
    Ok(Json(Cleared {
        message: "Cache cleared successfully".into(),
        tenant_id: caller.tenant.as_str().to_owned(),
    }))
}

/// The most ranges one warm request may hold.
pub(crate) const MAX_WARM_RANGES: usize = 100;

/// Ranges to precompute.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WarmRequest {
    /// The summaries to compute and cache (as `/analytics/summary` parameters; at most 100).
    ranges: Vec<SummaryRequest>,
}

/// One warmed range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Warmed {
    /// As requested.
    start_date: Option<String>,
    /// As requested.
    end_date: Option<String>,
    /// The granularity computed.
    granularity: Granularity,
    /// Whether it was already cached.
    was_cached: bool,
    /// Milliseconds taken.
    response_time: f64,
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
    responses((status = 200, body = WarmResponse), (status = 422, body = ErrorBody)))]
pub(crate) async fn cache_warm(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
    JsonBody(body): JsonBody<WarmRequest>,
) -> Result<Json<WarmResponse>, ApiError> {
    if body.ranges.is_empty() || body.ranges.len() > MAX_WARM_RANGES {
        return Err(ApiError::unprocessable(analytics_core::Error::invalid(
            "ranges",
            format!("must hold 1–{MAX_WARM_RANGES} ranges"),
        )));
    }
    let queries = body
        .ranges
        .iter()
        .enumerate()
        .map(|(i, request)| {
            Query::parse(&caller.tenant, request)
                .map_err(|e| ApiError::unprocessable(e.in_field(&format!("ranges[{i}]."))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut warmed = Vec::with_capacity(queries.len());
    for (request, query) in body.ranges.iter().zip(queries) {
        let summary = state
            .analytics()
            .summary_with(
                query,
                SummaryOptions {
                    skip_cache: false,
                    priority: caller.priority,
                },
            )
            .await?;
        warmed.push(Warmed {
            start_date: request.start_date.clone(),
            end_date: request.end_date.clone(),
            granularity: summary.metadata.granularity,
            was_cached: summary.metadata.cached,
            response_time: summary.metadata.response_time,
        });
    }
    Ok(Json(WarmResponse { warmed }))
}
