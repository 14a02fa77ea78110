//! Live summaries: a summary now, and again whenever an ingest changes it.
//!
//! Subscribers of the same query (tenant, canonical parameters, priority) share one *topic*: a
//! task that listens to the facade's change notices and, on a notice for its tenant, waits a
//! short coalescing window (more notices in it cost nothing), recomputes the summary once
//! through the cache, and publishes it if its content changed. A thousand dashboards on one view
//! cost one computation per change, not a thousand (which would also trip load shedding). A
//! lagging notice receiver counts as a change. The topic ends with its last subscriber, or when
//! [`Analytics::close_live`] is called.
//!
//! Updates carry a content fingerprint (SHA-256 of the summary's numbers, not its metadata),
//! stable across processes and builds, so a client that reconnects with the last id it saw is
//! not sent a summary it already has, whichever instance it reaches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, watch};

use super::{Analytics, SummaryOptions};
use crate::error::{Error, Result};
use crate::query::{Query, Summary, SummaryBody};

/// Live-summary settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveConfig {
    /// After a change notice, wait this long for more before recomputing, so a burst of
    /// ingests costs one push. Updates arrive within this plus one summary computation of the
    /// ingest. Zero recomputes at once (tests).
    pub coalesce: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(100),
        }
    }
}

/// One published state of a live summary.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveUpdate {
    /// The summary, its JSON, and the fingerprint of its content (`id`).
    Summary {
        /// Content fingerprint: equal for equal numbers.
        id: String,
        /// The summary with its `_metadata`, as JSON.
        json: Arc<str>,
    },
    /// The summary could not be computed. The subscription goes on; the next change retries.
    Failed(Error),
}

type Topic = watch::Sender<Option<LiveUpdate>>;

/// The running topics, by query.
#[derive(Debug)]
pub(super) struct LiveHub {
    config: LiveConfig,
    topics: Mutex<HashMap<String, Topic>>,
    closing: watch::Sender<bool>,
    /// Bumped when change notices may have been missed (a change feed resubscribed): every
    /// topic recomputes.
    resyncs: watch::Sender<u64>,
}

impl LiveHub {
    pub(super) fn new(config: LiveConfig) -> Self {
        Self {
            config,
            topics: Mutex::default(),
            closing: watch::Sender::new(false),
            resyncs: watch::Sender::new(0),
        }
    }

    /// Makes every topic recompute: notices may have been missed.
    pub(super) fn resync(&self) {
        self.resyncs.send_modify(|n| *n += 1);
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the topic may end: true (and it is removed) when nobody listens. Checked under
    /// the lock `subscribe` takes, so no subscriber joins a topic that is ending.
    fn retire(&self, key: &str, sender: &Topic) -> bool {
        let mut topics = self.topics();
        if sender.receiver_count() > 0 {
            return false;
        }
        topics.remove(key);
        true
    }
}

/// A subscription to a live summary. [`next`](Self::next) yields the current summary first,
/// then every change; it skips a summary whose fingerprint the subscriber already has.
#[derive(Debug)]
pub struct LiveSummary {
    receiver: watch::Receiver<Option<LiveUpdate>>,
    last_seen: Option<String>,
    first: bool,
}

impl LiveSummary {
    /// The next update; `None` when the subscription has ended ([`Analytics::close_live`]).
    pub async fn next(&mut self) -> Option<LiveUpdate> {
        loop {
            if !(self.first && self.receiver.borrow().is_some()) {
                self.receiver.changed().await.ok()?;
            }
            self.first = false;
            let update = self.receiver.borrow_and_update().clone();
            match update {
                None => {}
                Some(LiveUpdate::Summary { id, .. }) if self.last_seen.as_deref() == Some(id.as_str()) => {}
                Some(LiveUpdate::Summary { id, json }) => {
                    self.last_seen = Some(id.clone());
                    return Some(LiveUpdate::Summary { id, json });
                }
                failed @ Some(LiveUpdate::Failed(_)) => return failed,
            }
        }
    }
}

impl Analytics {
    /// Subscribes to `query`'s live summary. `last_seen` is the fingerprint of the summary the
    /// subscriber already has (a reconnecting client's last event id), which is then not sent
    /// again.
    ///
    /// Must be called within a tokio runtime: the topic's task is spawned on it.
    pub fn live_summary(&self, query: Query, options: SummaryOptions, last_seen: Option<String>) -> LiveSummary {
        self.ensure_feed_listener();
        let hub = &self.inner.live;
        let key = format!("{}\u{1f}{}", query.canonical(), options.priority.get());
        let mut topics = hub.topics();
        let receiver = match topics.get(&key) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(None);
                topics.insert(key.clone(), sender.clone());
                tokio::spawn(run_topic(self.clone(), key, query, options, sender));
                receiver
            }
        };
        LiveSummary {
            receiver,
            last_seen,
            first: true,
        }
    }

    /// Live-summary topics running (one per distinct subscribed query).
    pub fn live_topics(&self) -> usize {
        self.inner.live.topics().len()
    }

    /// Ends every live summary (call when shutting down: a subscription never ends by itself).
    pub fn close_live(&self) {
        self.inner.live.closing.send_replace(true);
    }
}

/// A topic's task: publish the summary now and after every change, until nobody listens or the
/// hub closes.
async fn run_topic(analytics: Analytics, key: String, query: Query, options: SummaryOptions, sender: Topic) {
    let hub = &analytics.inner.live;
    // Subscribed before the first computation, so no ingest falls between the two.
    let mut notices = analytics.subscribe();
    let mut resyncs = hub.resyncs.subscribe();
    let mut closing = hub.closing.subscribe();
    let coalesce = hub.config.coalesce;
    let close = |hub: &LiveHub| {
        hub.topics().remove(&key);
    };
    if *closing.borrow() {
        close(hub);
        return;
    }
    loop {
        let update = compute(&analytics, &query, options).await;
        sender.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&update);
            *current = Some(update);
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
                    Err(broadcast::error::RecvError::Closed) => return close(hub),
                },
                _ = resyncs.changed() => break,
                () = sender.closed() => if hub.retire(&key, &sender) { return },
                _ = closing.changed() => return close(hub),
            }
        }
        // A zero window recomputes at once, without touching a timer.
        if !coalesce.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(coalesce) => {}
                _ = closing.changed() => return close(hub),
            }
        }
        // Everything that arrived meanwhile is covered by the recomputation.
        while notices.try_recv().is_ok() {}
    }
}

async fn compute(analytics: &Analytics, query: &Query, options: SummaryOptions) -> LiveUpdate {
    match render(analytics.summary_with(query.clone(), options).await) {
        Ok((id, json)) => LiveUpdate::Summary { id, json },
        Err(error) => LiveUpdate::Failed(error),
    }
}

fn render(summary: Result<Summary>) -> Result<(String, Arc<str>)> {
    let summary = summary?;
    let json = serde_json::to_string(&summary).map_err(|e| Error::Internal(format!("serializing a summary: {e}")))?;
    Ok((fingerprint(&summary.body)?, json.into()))
}

/// A stable id of a summary's numbers: the first 8 bytes of the SHA-256 of their JSON, in hex.
/// Metadata (response time, cached) is left out: it changes without the numbers changing.
pub fn fingerprint(body: &SummaryBody) -> Result<String> {
    let json = serde_json::to_vec(body).map_err(|e| Error::Internal(format!("serializing a summary: {e}")))?;
    let digest = Sha256::digest(&json);
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}
