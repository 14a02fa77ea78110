//! A facade's link to its [`ChangeFeed`]: publishes this instance's ingests, and feeds the
//! other instances' notices into the live summaries (see [`crate::feed`]).

use std::sync::{Arc, OnceLock, Weak};

use super::{Analytics, ChangeNotice, Inner};
use crate::cache::Tag;
use crate::error::{Error, Result};
use crate::feed::{ChangeFeed, FeedEvent, FeedNotice};
use crate::model::TenantId;

/// The feed, this instance's id on it, and whether the listener runs.
#[derive(Debug)]
pub(super) struct FeedLink {
    feed: Arc<dyn ChangeFeed>,
    instance: u64,
    listening: OnceLock<()>,
}

impl FeedLink {
    pub(super) fn new(feed: Arc<dyn ChangeFeed>) -> Result<Self> {
        let instance = getrandom::u64().map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        Ok(Self {
            feed,
            instance,
            listening: OnceLock::new(),
        })
    }

    /// Tells the other instances, without holding up the ingest that caused it: the events are
    /// committed and this instance's own streams are already told.
    pub(super) fn publish(&self, tenant: &TenantId, accepted: usize, tags: &[Tag]) {
        let feed = self.feed.clone();
        // A notice stays small (PostgreSQL's are at most 8,000 bytes): an ingest touching many
        // days is told as a change of the whole tenant.
        let tags = if tags.len() <= MAX_NOTICE_TAGS {
            tags.to_vec()
        } else {
            vec![Tag::tenant()]
        };
        let notice = FeedNotice {
            origin: self.instance,
            tenant: tenant.clone(),
            accepted,
            tags,
        };
        tokio::spawn(async move {
            // Best effort: a lost notice delays other instances' pushes to their next notice.
            let _ = feed.publish(&notice).await;
        });
    }
}

impl Analytics {
    /// Starts listening to the feed, once (with the first live summary: only they need it).
    /// The listener ends with the facade, at the next event it hears.
    pub(super) fn ensure_feed_listener(&self) {
        let Some(link) = &self.inner.feed else { return };
        if link.listening.get().is_some() || link.listening.set(()).is_err() {
            return;
        }
        let feed = link.feed.clone();
        let instance = link.instance;
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let deliver = move |event: FeedEvent| {
                let Some(inner) = inner.upgrade() else { return false };
                match event {
                    FeedEvent::Notice(notice) if notice.origin != instance => {
                        // This instance's own copies may not have heard of the writer's
                        // invalidation yet: drop them first, so the recomputation the notice
                        // causes cannot answer from them.
                        tokio::spawn(async move {
                            let _ = inner.cache.invalidate_local(&notice.tenant, &notice.tags).await;
                            tell_live_summaries(&inner, notice);
                        });
                    }
                    FeedEvent::Notice(_) => {}
                    FeedEvent::Resubscribed => inner.live.resync(),
                }
                true
            };
            feed.listen(&deliver).await;
        });
    }
}

/// The most tags a notice carries; more are sent as the whole tenant's.
const MAX_NOTICE_TAGS: usize = 100;

fn tell_live_summaries(inner: &Inner, notice: FeedNotice) {
    // Nobody listening is fine.
    let _ = inner.changes.send(ChangeNotice {
        tenant: notice.tenant,
        accepted: notice.accepted,
    });
}
