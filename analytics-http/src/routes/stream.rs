//! `/analytics/summary/stream`: the summary as Server-Sent Events, pushed when an ingest changes
//! it.
//!
//! Streams of the same query (tenant, parameters, priority) share one *topic*: a task that
//! subscribes to the facade's change notices, and on a notice for its tenant waits a short
//! coalescing window (more notices in it cost nothing), recomputes the summary once through the
//! cache, and publishes it on a `watch` channel if its content changed. A thousand dashboards on
//! one view cost one computation per change, not a thousand (which would also trip load
//! shedding). A lagging notice receiver counts as a change. The topic ends with its last stream.
//!
//! Event ids are fingerprints of the summary's content, so a client reconnecting with
//! `Last-Event-ID` is not sent a summary it already has, whichever instance it reaches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use analytics_core::SummaryOptions;
use analytics_core::query::Query;
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

/// One published state of a topic.
#[derive(Debug, Clone, PartialEq)]
enum Published {
    /// A summary: its fingerprint and JSON.
    Summary { id: String, json: Arc<str> },
    /// The summary could not be computed (the stream goes on; the next change retries).
    Error { json: Arc<str> },
}

/// The live topics, by query.
#[derive(Debug, Default)]
pub(crate) struct StreamHub {
    topics: Mutex<HashMap<String, watch::Sender<Option<Published>>>>,
}

impl StreamHub {
    /// A receiver of `query`'s topic, starting the topic if it is not running.
    fn subscribe(&self, state: &AppState, query: Query, options: SummaryOptions) -> watch::Receiver<Option<Published>> {
        let key = format!("{}\u{1f}{}", query.canonical(), options.priority.get());
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = topics.get(&key) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        topics.insert(key.clone(), sender.clone());
        tokio::spawn(run_topic(state.clone(), key, query, options, sender));
        receiver
    }

    /// Whether the topic may end: true (and it is removed) when nobody listens. Checked under
    /// the lock `subscribe` takes, so no stream joins a topic that is ending.
    fn retire(&self, key: &str, sender: &watch::Sender<Option<Published>>) -> bool {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if sender.receiver_count() > 0 {
            return false;
        }
        topics.remove(key);
        true
    }

    /// Topics running (for tests and metrics).
    pub(crate) fn topics(&self) -> usize {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A topic's task: publish the summary now and after every change, until nobody listens or the
/// server closes.
async fn run_topic(
    state: AppState,
    key: String,
    query: Query,
    options: SummaryOptions,
    sender: watch::Sender<Option<Published>>,
) {
    // Subscribed before the first computation, so no ingest falls between the two.
    let mut notices = state.analytics().subscribe();
    let mut closing = state.closing();
    let coalesce = state.config().stream.coalesce;
    loop {
        let published = compute(&state, &query, options).await;
        sender.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&published);
            *current = Some(published);
            changed
        });
        // Wait for a change of this tenant's data.
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(n) if &n.tenant == query.tenant() => break,
                    Ok(_) => {}
                    // Missed notices may have been ours.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = sender.closed() => if state.streams().retire(&key, &sender) { return },
                _ = closing.changed() => {
                    state.streams().retire_now(&key);
                    return;
                }
            }
        }
        // A zero window (tests) recomputes at once, without touching a timer.
        if !coalesce.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(coalesce) => {}
                _ = closing.changed() => {
                    state.streams().retire_now(&key);
                    return;
                }
            }
        }
        // Everything that arrived meanwhile is covered by the recomputation.
        while notices.try_recv().is_ok() {}
    }
}

impl StreamHub {
    /// Removes a topic whatever its listeners (the server is closing; they end with it).
    fn retire_now(&self, key: &str) {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

async fn compute(state: &AppState, query: &Query, options: SummaryOptions) -> Published {
    match state.analytics().summary_with(query.clone(), options).await {
        Ok(summary) => Published::Summary {
            id: fingerprint(&summary.body),
            json: serde_json::to_string(&summary).unwrap_or_default().into(),
        },
        Err(error) => Published::Error {
            json: serde_json::to_string(&ErrorBody::from(ApiError::from(error)))
                .unwrap_or_default()
                .into(),
        },
    }
}

/// The summary now, then again whenever an ingest changes it. Events: `summary` (data: the
/// summary JSON, id: its content fingerprint) and `error` (data: an error body; the stream goes
/// on). Idle streams get a `heartbeat` comment.
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
    let options = SummaryOptions {
        skip_cache: false,
        priority: caller.priority,
    };
    let last_sent = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let subscription = Subscription {
        receiver: state.streams().subscribe(&state, query, options),
        last_sent,
        first: true,
    };
    let heartbeat = state.config().stream.heartbeat;
    let stream = futures_util::stream::unfold(subscription, next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// One stream's place in its topic.
struct Subscription {
    receiver: watch::Receiver<Option<Published>>,
    /// The id of the last summary the client has (from `Last-Event-ID`, then from us).
    last_sent: Option<String>,
    first: bool,
}

/// The next event of a stream: what the topic holds now (first), then each change, skipping a
/// summary the client already has. `None` (the stream ends) when the topic ends.
async fn next_event(mut s: Subscription) -> Option<(Result<Event, Infallible>, Subscription)> {
    loop {
        if !(s.first && s.receiver.borrow().is_some()) {
            s.receiver.changed().await.ok()?;
        }
        s.first = false;
        let published = s.receiver.borrow_and_update().clone();
        match published {
            None => {}
            Some(Published::Summary { id, .. }) if s.last_sent.as_deref() == Some(id.as_str()) => {}
            Some(Published::Summary { id, json }) => {
                let event = Event::default().event("summary").id(id.clone()).data(json.as_ref());
                s.last_sent = Some(id);
                return Some((Ok(event), s));
            }
            Some(Published::Error { json }) => {
                return Some((Ok(Event::default().event("error").data(json.as_ref())), s));
            }
        }
    }
}

/// A stable id of a summary's content (`DefaultHasher::new()` has fixed keys, so instances
/// agree). Metadata (response time, cached) is left out: it changes without the data changing.
fn fingerprint(body: &analytics_core::query::SummaryBody) -> String {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(body).unwrap_or_default().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
