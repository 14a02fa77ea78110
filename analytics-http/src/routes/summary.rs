//! `/analytics/summary` (plain or compared with the previous period), its paginated form, and
//! `/analytics/realtime`.

use std::sync::Arc;

use analytics_core::query::{Query, Summary};
use analytics_core::{Analytics, PaginatedSummary, Realtime, SummaryOptions};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, PagedSummaryParams, Params, SummaryParams};
use crate::parsed::ParsedSummaries;
use crate::summary_body::SummaryBody;

fn options(caller: &Caller, skip_cache: bool) -> SummaryOptions {
    SummaryOptions {
        skip_cache,
        priority: caller.priority,
    }
}

/// The dashboard summary: totals, unique users, events by type, the time series, top pages,
/// devices, and variants for an experiment; with `compare=previous`, also
/// the previous period and the change to it.
#[utoipa::path(get, path = "/api/analytics/summary", tag = "analytics", params(SummaryParams),
    responses((status = 200, body = Summary, description = "The summary; with `compare=previous`, a `ComparedSummary` (the summary plus `comparison`)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn summary(
    State(analytics): State<Analytics>,
    State(summaries): State<Arc<ParsedSummaries>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    // Parsed with `SummaryParams`, once per tenant and query string.
    let parsed = summaries.get_or_parse(&caller.tenant, raw.as_deref())?;
    let query = parsed.query.clone();
    let options = options(&caller, parsed.skip_cache);
    Ok(match parsed.compare {
        // Boxed: two summaries' state would otherwise make every request's future that large.
        Some(_) => Json(Box::pin(analytics.summary_compared(query, options)).await?).into_response(),
        // The hot path: core renders the JSON from the cached answer's memoized body.
        None => SummaryBody::response(analytics.summary_json_with(query, options).await?),
    })
}

/// The summary with its time series in pages (for long hourly ranges).
#[utoipa::path(get, path = "/api/analytics/summary/paginated", tag = "analytics", params(PagedSummaryParams),
    responses((status = 200, body = PaginatedSummary), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn summary_paginated(
    State(analytics): State<Analytics>,
    caller: Caller,
    Params(params): Params<PagedSummaryParams>,
) -> Result<Json<PaginatedSummary>, ApiError> {
    let (request, page) = params.requests();
    let query = Query::parse(&caller.tenant, &request)?;
    let options = options(&caller, request.skip_cache);
    Ok(Json(analytics.summary_page(query, options, &page).await?))
}

/// Active users and events in the last five minutes.
#[utoipa::path(get, path = "/api/analytics/realtime", tag = "analytics",
    responses((status = 200, body = Realtime), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn realtime(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
) -> Result<Json<Realtime>, ApiError> {
    Ok(Json(analytics.realtime(&caller.tenant, caller.priority).await?))
}
