//! `/events`: ingest one event or a batch, and read the event log.

use analytics_core::model::EventInput;
use analytics_core::store::AppendOutcome;
use analytics_core::{Analytics, EventLog, Ingested};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{EventLogParams, NoParams, Params};

/// Ingests one event. 201 when stored, 200 when it was a retry of a stored
/// event (same id): it is not counted twice.
#[utoipa::path(post, path = "/api/events", tag = "events", request_body = EventInput,
    responses((status = 201, body = Ingested), (status = 200, body = Ingested), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
    JsonBody(input): JsonBody<EventInput>,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let ingested = analytics
        .ingest_one(&caller.tenant, input)
        .await
        .map_err(ApiError::unprocessable)?;
    let status = if ingested.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(ingested)))
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    /// 1–10,000 events; all are validated before any is stored.
    #[schema(min_items = 1, max_items = 10000)]
    events: Vec<EventInput>,
}

/// Ingests a batch in one commit: the new ids are `accepted`, ids already stored are
/// `duplicates` (retries, not counted again).
#[utoipa::path(post, path = "/api/events/batch", tag = "events", request_body = Batch,
    responses((status = 200, body = AppendOutcome), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn create_batch(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Json<AppendOutcome>, ApiError> {
    let outcome = analytics
        .ingest(&caller.tenant, batch.events)
        .await
        .map_err(ApiError::unprocessable)?;
    Ok(Json(outcome))
}

/// The event log, newest first: by page (`page`, `limit`, with totals) or by cursor (`cursor`,
/// stable under concurrent ingest).
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventLogParams),
    responses((status = 200, body = EventLog), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(analytics): State<Analytics>,
    caller: Caller,
    Params(params): Params<EventLogParams>,
) -> Result<Json<EventLog>, ApiError> {
    Ok(Json(analytics.event_log(&caller.tenant, &params.into()).await?))
}
