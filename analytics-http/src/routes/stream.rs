//! `/analytics/summary/stream`: the summary as Server-Sent Events, pushed when an ingest changes
//! it.
//!
//! Each stream subscribes to the facade's change notices before computing its first summary (so
//! no ingest falls between the two). A notice for the stream's tenant starts a short coalescing
//! window (more notices in it cost nothing), then the summary is recomputed through the cache
//! (concurrent streams of one query share one computation) and pushed only if it differs from
//! the last one sent. A lagging receiver counts as a change. Event ids are fingerprints of the
//! summary's content, so a client reconnecting with `Last-Event-ID` is not sent a summary it
//! already has, whichever server instance it reaches.

use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use analytics_core::model::TenantId;
use analytics_core::query::Query;
use analytics_core::{ChangeNotice, SummaryOptions};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use super::analytics::{SUMMARY_PARAMS, summary_request};
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::Params;
use crate::state::AppState;

/// The summary now, then again whenever an ingest changes it. Events: `summary` (data: the
/// summary JSON, id: its fingerprint) and `error` (data: an error body; the stream goes on).
/// Idle streams get a `heartbeat` comment.
#[utoipa::path(get, path = "/api/analytics/summary/stream", tag = "analytics",
    params(super::analytics::SummaryParams, ("Last-Event-ID" = Option<String>, Header, description = "The id of the last summary received")),
    responses((status = 200, description = "text/event-stream of summaries", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody)))]
pub(crate) async fn summary_stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = Params::parse(raw.as_deref(), SUMMARY_PARAMS)?;
    if params.get("compare").is_some() {
        return Err(ApiError::bad_request("compare", "is not supported on the stream"));
    }
    let request = summary_request(&params)?;
    let query = Query::parse(&caller.tenant, &request)?;
    let last_sent = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let config = state.config().stream;
    let feed = Feed {
        notices: state.analytics().subscribe(),
        closing: state.closing(),
        options: SummaryOptions {
            skip_cache: false,
            priority: caller.priority,
        },
        tenant: caller.tenant,
        query,
        coalesce: config.coalesce,
        last_sent,
        started: false,
        state,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(config.heartbeat).text("heartbeat")))
}

/// One stream's state between events.
struct Feed {
    state: AppState,
    tenant: TenantId,
    query: Query,
    options: SummaryOptions,
    notices: broadcast::Receiver<ChangeNotice>,
    closing: watch::Receiver<bool>,
    coalesce: Duration,
    last_sent: Option<String>,
    started: bool,
}

impl Feed {
    /// The next event to send, or `None` when the stream ends (server shutting down).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.started {
                self.wait_for_change().await?;
            }
            self.started = true;
            match self.state.analytics().summary_with(self.query.clone(), self.options).await {
                Ok(summary) => {
                    let Ok(json) = serde_json::to_string(&summary) else {
                        continue;
                    };
                    let id = fingerprint(&summary.body);
                    if self.last_sent.as_deref() == Some(id.as_str()) {
                        continue;
                    }
                    self.last_sent = Some(id.clone());
                    return Some(Event::default().event("summary").id(id).data(json));
                }
                Err(error) => {
                    let body = serde_json::json!({ "error": { "code": "unavailable", "message": error.to_string() } });
                    return Some(Event::default().event("error").data(body.to_string()));
                }
            }
        }
    }

    /// Waits for a change of this tenant's data, then for the coalescing window, draining the
    /// notices that arrive in it. `None` when the server is closing.
    async fn wait_for_change(&mut self) -> Option<()> {
        if *self.closing.borrow() {
            return None;
        }
        loop {
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(n) if n.tenant == self.tenant => break,
                    Ok(_) => {}
                    // Missed notices may have been ours.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.closing.changed() => return None,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(self.coalesce) => {}
            _ = self.closing.changed() => return None,
        }
        // Everything that arrived meanwhile is covered by the recomputation.
        while !matches!(self.notices.try_recv(), Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)) {}
        Some(())
    }
}

/// A stable id of a summary's content (`DefaultHasher::new()` has fixed keys, so instances
/// agree). Metadata (response time, cached) is left out: it changes without the data changing.
fn fingerprint(body: &analytics_core::query::SummaryBody) -> String {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(body).unwrap_or_default().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
