//! `/events`: ingest one event or a batch, and read the event log.

use analytics_core::model::{Event, EventInput, EventType, UserId};
use analytics_core::query::{TimeRange, parse_bound};
use analytics_core::store::{AppendOutcome, EventCursor, EventListQuery, MAX_PAGE_LIMIT, Pagination};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Params};
use crate::state::AppState;

/// An accepted event, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ingested {
    /// The event.
    #[serde(flatten)]
    event: Event,
    /// True when the tenant already had an event with this id (a retry): nothing was counted.
    duplicate: bool,
}

/// A `tenantId` in a body must be the caller's.
fn check_tenant(input: &EventInput, caller: &Caller, field: &str) -> Result<(), ApiError> {
    match &input.tenant_id {
        Some(t) if t != caller.tenant.as_str() => Err(ApiError::forbidden(
            field,
            format!(
                "events may only be sent for the authenticated tenant {:?}",
                caller.tenant.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// Ingests one event (seed 000's body). 201 when stored, 200 when it was a retry of a stored
/// event (same id): it is not counted twice.
#[utoipa::path(post, path = "/api/events", tag = "events", request_body = EventInput,
    responses((status = 201, body = Ingested), (status = 200, body = Ingested), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
    JsonBody(input): JsonBody<EventInput>,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    check_tenant(&input, &caller, "tenantId")?;
    let analytics = state.analytics();
    let event = Event::from_input(input, &caller.tenant, analytics.clock().now()).map_err(ApiError::unprocessable)?;
    let outcome = analytics.ingest_events(&caller.tenant, vec![event.clone()]).await?;
    let duplicate = outcome.accepted.is_empty();
    let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(Ingested { event, duplicate })))
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    /// 1–10,000 events; all are validated before any is stored.
    events: Vec<EventInput>,
}

/// Ingests a batch in one commit: the new ids are `accepted`, ids already stored are
/// `duplicates` (retries, not counted again).
#[utoipa::path(post, path = "/api/events/batch", tag = "events", request_body = Batch,
    responses((status = 200, body = AppendOutcome), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Json<AppendOutcome>, ApiError> {
    for (i, input) in batch.events.iter().enumerate() {
        check_tenant(input, &caller, &format!("events[{i}].tenantId"))?;
    }
    let outcome = state
        .analytics()
        .ingest(&caller.tenant, batch.events)
        .await
        .map_err(ApiError::unprocessable)?;
    Ok(Json(outcome))
}

/// Filters and paging of the event log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documentation only: parsing goes through `Params`.
pub(crate) struct ListParams {
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 instant: events at or after it.
    start_date: Option<String>,
    /// `YYYY-MM-DD` (UTC, inclusive) or an RFC 3339 instant (exclusive).
    end_date: Option<String>,
    /// Only this type.
    event_type: Option<String>,
    /// Only this user.
    user_id: Option<String>,
    /// The caller's own tenant (seed 000 compatibility); any other is 403.
    tenant_id: Option<String>,
    /// Page number from 1 (offset paging, with totals).
    page: Option<u32>,
    /// Events per page, 1–1000 (default 50).
    limit: Option<u32>,
    /// Keyset paging: empty for the first page, then the previous page's `nextCursor`.
    cursor: Option<String>,
}

const LIST_PARAMS: &[&str] = &[
    "startDate",
    "endDate",
    "eventType",
    "userId",
    "tenantId",
    "page",
    "limit",
    "cursor",
];

/// A page of the event log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventList {
    /// Newest first.
    events: Vec<Event>,
    /// Events per page.
    limit: u32,
    /// Offset paging: the page number.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<u32>,
    /// Offset paging: matching events in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// Offset paging: pages in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_pages: Option<u64>,
    /// Cursor paging: the cursor of the next page, null on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
}

/// The event log, newest first: by page (`page`, `limit`, with totals) or by cursor (`cursor`,
/// stable under concurrent ingest).
#[utoipa::path(get, path = "/api/events", tag = "events", params(ListParams),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventList>, ApiError> {
    let params = Params::parse(raw.as_deref(), LIST_PARAMS)?;
    if let Some(t) = params.get("tenantId")
        && t != caller.tenant.as_str()
    {
        return Err(ApiError::forbidden(
            "tenantId",
            "only the authenticated tenant's events can be listed",
        ));
    }
    let limit = params.number("limit", 1..=MAX_PAGE_LIMIT)?.unwrap_or(50);
    let pagination = match (params.get("cursor"), params.number("page", 1..=u32::MAX)?) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("cursor", "give either page or cursor, not both")),
        (Some(""), None) => Pagination::Cursor { after: None, limit },
        (Some(cursor), None) => Pagination::Cursor {
            after: Some(EventCursor::decode(cursor)?),
            limit,
        },
        (None, page) => Pagination::Offset {
            page: page.unwrap_or(1),
            limit,
        },
    };
    let query = EventListQuery {
        range: range(&params)?,
        event_type: params.get("eventType").map(EventType::parse).transpose()?,
        user_id: params.get("userId").map(UserId::parse).transpose()?,
        pagination: pagination.clone(),
    };
    let page = state.analytics().list_events(&caller.tenant, &query).await?;
    Ok(Json(match pagination {
        Pagination::Offset { page: number, limit } => EventList {
            events: page.events,
            limit,
            page: Some(number),
            total_pages: page.total.map(|t| t.div_ceil(u64::from(limit))),
            total: page.total,
            next_cursor: None,
        },
        Pagination::Cursor { limit, .. } => EventList {
            events: page.events,
            limit,
            page: None,
            total: None,
            total_pages: None,
            next_cursor: Some(page.next_cursor.map(|c| c.encode())),
        },
    }))
}

/// The latest instant the event log is asked about when no end is given.
fn open_end() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn range(params: &Params) -> Result<Option<TimeRange>, ApiError> {
    let (start, end) = (params.get("startDate"), params.get("endDate"));
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let start = match start {
        Some(raw) => parse_bound(Some(raw), "startDate", Tz::UTC, false)?,
        None => DateTime::UNIX_EPOCH,
    };
    let end = match end {
        Some(raw) => parse_bound(Some(raw), "endDate", Tz::UTC, true)?,
        None => open_end(),
    };
    Ok(Some(TimeRange::new(start, end)?))
}
