//! Change notices between instances: when several processes serve the same data, an ingest on
//! one must push the live summaries open on all of them.
//!
//! Each facade publishes a [`FeedNotice`] on its [`ChangeFeed`] after every acknowledged ingest
//! that accepted events, and listens to the feed for the notices of the others, which it hands
//! to its live summaries as if the ingest had been its own, after invalidating the notice's tags
//! in its own copies (an in-process cache, or the local tier in front of Redis), so its reads
//! and pushes catch up with the other instances' writes. A feed that lost its subscription
//! (and so may have missed notices) says [`FeedEvent::Resubscribed`] once it is back, and every
//! live summary is then recomputed.
//!
//! Implementations: [`MemoryChangeFeed`] (facades in one process), `RedisChangeFeed` (Redis
//! pub/sub, in `analytics-redis`) and `PgChangeFeed` (PostgreSQL `LISTEN/NOTIFY`, in
//! `analytics-postgres`).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::cache::Tag;
use crate::error::{Error, Result};
use crate::model::TenantId;

/// A tenant's data changed on the instance `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedNotice {
    /// The publishing instance (random per facade), so it can skip its own notices.
    #[serde(rename = "o")]
    pub origin: u64,
    /// Whose data changed.
    #[serde(rename = "t")]
    pub tenant: TenantId,
    /// How many events were newly accepted.
    #[serde(rename = "n")]
    pub accepted: usize,
    /// The cache tags the ingest invalidated, which each listener invalidates in its own copies
    /// ([`CacheBackend::invalidate_local`](crate::cache::CacheBackend::invalidate_local)).
    #[serde(rename = "g", default)]
    pub tags: Vec<Tag>,
}

impl FeedNotice {
    /// The wire form (compact JSON), as every feed carries it.
    ///
    /// # Errors
    /// [`Error::Internal`] if it cannot be serialized (it always can).
    pub fn encode(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("encoding a change notice: {e}")))
    }

    /// Reads the wire form; `None` for anything else (another program's message on the channel).
    pub fn decode(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

/// What a feed delivers to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// A notice some instance published (this one's included: listeners skip their own).
    Notice(FeedNotice),
    /// The subscription was lost and is back: notices may have been missed meanwhile.
    Resubscribed,
}

/// A channel every instance of a deployment publishes to and listens on.
#[async_trait]
pub trait ChangeFeed: Send + Sync + Debug {
    /// Publishes `notice` to every listening instance. Best effort: a notice that cannot be
    /// sent is lost, and listeners recover only at their next notice or resubscription.
    ///
    /// # Errors
    /// Transient errors when the channel is unreachable.
    async fn publish(&self, notice: &FeedNotice) -> Result<()>;

    /// Delivers every notice published from now on to `deliver`, and
    /// [`FeedEvent::Resubscribed`] each time the subscription is back after a loss, until
    /// `deliver` returns `false`. Reconnects by itself and does not return otherwise.
    async fn listen(&self, deliver: &(dyn Fn(FeedEvent) -> bool + Send + Sync));
}

/// A feed within one process: facades built with the same one hear each other (several
/// facades over one store, or tests of what several instances do).
#[derive(Debug, Clone)]
pub struct MemoryChangeFeed {
    sender: broadcast::Sender<FeedEvent>,
}

impl Default for MemoryChangeFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl MemoryChangeFeed {
    /// Tells every listener its subscription was lost and is back (as a network feed does after
    /// a reconnection).
    pub fn resubscribe_all(&self) {
        let _ = self.sender.send(FeedEvent::Resubscribed);
    }
}

#[async_trait]
impl ChangeFeed for MemoryChangeFeed {
    async fn publish(&self, notice: &FeedNotice) -> Result<()> {
        // Nobody listening is fine.
        let _ = self.sender.send(FeedEvent::Notice(notice.clone()));
        Ok(())
    }

    async fn listen(&self, deliver: &(dyn Fn(FeedEvent) -> bool + Send + Sync)) {
        let mut receiver = self.sender.subscribe();
        loop {
            let event = match receiver.recv().await {
                Ok(event) => event,
                // Missed notices: like a lost subscription.
                Err(broadcast::error::RecvError::Lagged(_)) => FeedEvent::Resubscribed,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !deliver(event) {
                return;
            }
        }
    }
}

/// The longest pause between attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The listening loop every network feed shares: `subscribe` makes a subscription and returns
/// the payloads it receives as a stream that ends when the subscription is lost (or `None` when
/// it cannot be made). Payloads that are notices are delivered; after a loss or a failed attempt
/// the next subscription is announced as [`FeedEvent::Resubscribed`] (notices may have been
/// missed, and a stream may have opened meanwhile), with a backoff from 50 ms to 5 s between
/// attempts. Returns when `deliver` returns `false`.
pub async fn listen_resubscribing<F, Fut, S>(deliver: &(dyn Fn(FeedEvent) -> bool + Send + Sync), mut subscribe: F)
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Option<S>> + Send,
    S: Stream<Item = String> + Send + Unpin,
{
    let mut backoff = Duration::from_millis(50);
    let mut missed = false;
    loop {
        if let Some(mut payloads) = subscribe().await {
            if missed && !deliver(FeedEvent::Resubscribed) {
                return;
            }
            backoff = Duration::from_millis(50);
            while let Some(payload) = payloads.next().await {
                if let Some(notice) = FeedNotice::decode(&payload)
                    && !deliver(FeedEvent::Notice(notice))
                {
                    return;
                }
            }
        }
        missed = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
