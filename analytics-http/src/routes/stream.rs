//! `/analytics/summary/stream` (also `/analytics/stream`): the live summary as Server-Sent
//! Events, pushed when an ingest changes it (core's [`Analytics::live_summary`] shares one
//! computation among every stream of a query).
//!
//! Summaries are sent as unnamed messages (`data:` and `id:` only), so a browser
//! `EventSource`'s `onmessage` receives them; the id is the summary's content fingerprint, so a
//! client reconnecting with `Last-Event-ID` is not sent a summary it already has. A summary
//! that cannot be computed is sent as an event named `summary-error` (its data an error body)
//! and the stream goes on. Idle streams get a `heartbeat` comment.

use std::convert::Infallible;
use std::sync::Arc;

use analytics_core::query::Query;
use analytics_core::{Analytics, LiveSummary, LiveUpdate, SummaryOptions};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{Params, StreamParams};
use crate::state::HttpConfig;

/// The summary now, then again whenever an ingest changes it.
#[utoipa::path(get, path = "/api/analytics/summary/stream", tag = "analytics",
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header, description = "The id of the last summary received")),
    responses((status = 200, description = "text/event-stream: unnamed messages whose data is a summary and whose id is its fingerprint; `summary-error` events carry an error body", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn summary_stream(
    State(analytics): State<Analytics>,
    State(config): State<Arc<HttpConfig>>,
    caller: Caller,
    headers: HeaderMap,
    Params(params): Params<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = Query::parse(&caller.tenant, &params.request())?;
    let options = SummaryOptions {
        skip_cache: false,
        priority: caller.priority,
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let live = analytics.live_summary(query, options, last_seen);
    let stream = futures_util::stream::unfold(live, next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(config.stream.heartbeat).text("heartbeat")))
}

/// The next SSE event of a live summary; `None` (the stream ends) when it ends.
async fn next_event(mut live: LiveSummary) -> Option<(Result<Event, Infallible>, LiveSummary)> {
    let event = match live.next().await? {
        LiveUpdate::Summary { id, json } => Event::default().id(id).data(json.as_ref()),
        LiveUpdate::Failed(error) => {
            let body = serde_json::to_string(&ErrorBody::from(ApiError::from(error))).unwrap_or_default();
            Event::default().event("summary-error").data(body)
        }
    };
    Some((Ok(event), live))
}
