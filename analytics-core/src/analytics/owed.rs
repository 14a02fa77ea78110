//! Ingests stay writable while the cache is down, and no cached answer outlives a write it
//! missed.
//!
//! When an ingest's events are committed but the cache cannot take their invalidation, the
//! invalidation is recorded in the store ([`EventStore::owe_invalidation`]) and the ingest is
//! acknowledged. An instance with owed invalidations does not read or fill its cache (its
//! *fence*) until they are applied. A background task per instance looks for owed
//! invalidations every [`SETTLE_EVERY`] — a store read per instance per period, never per
//! request — applies them to the cache, deletes them, and lowers the fence once none remain.
//!
//! The instance that owes raises its fence before it acknowledges, so its own reads never see
//! an answer older than the write. Another instance that can still reach the cache (a partial
//! partition) may serve an answer the owed invalidation concerns until its next look, at most
//! [`SETTLE_EVERY`] later; every instance settles what it finds, so the first one that reaches
//! the cache clears the debt for all.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Analytics, Inner};
use crate::cache::Tag;
use crate::model::TenantId;
use crate::store::MAX_OWED_READ;

/// How often each instance looks for owed invalidations.
pub const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// Whether this instance may use its cache, and the settling task's wake-up.
#[derive(Debug, Default)]
pub(crate) struct CacheFence {
    raised: AtomicBool,
    /// Raises so far: a settlement lowers the fence only if none happened since it looked at
    /// the store (else it could lower it over a debt it did not see).
    raises: Mutex<u64>,
    started: OnceLock<()>,
    wake: Notify,
}

impl CacheFence {
    /// Whether summaries may read and fill the cache (one atomic load on the hot path).
    pub(crate) fn cache_trusted(&self) -> bool {
        !self.raised.load(Ordering::Acquire)
    }

    /// Stops cache use until the owed invalidations are settled, and asks for a settlement.
    pub(crate) fn raise(&self) {
        let mut raises = self.raises.lock().unwrap_or_else(PoisonError::into_inner);
        *raises += 1;
        self.raised.store(true, Ordering::Release);
        drop(raises);
        self.wake.notify_one();
    }

    fn raises_so_far(&self) -> u64 {
        *self.raises.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lowers the fence unless it was raised after `seen` raises.
    fn lower_unless_raised_since(&self, seen: u64) {
        let raises = self.raises.lock().unwrap_or_else(PoisonError::into_inner);
        if *raises == seen {
            self.raised.store(false, Ordering::Release);
        }
    }
}

impl Analytics {
    /// Starts this instance's settling task, once (it needs the runtime, so it starts with the
    /// first summary or ingest rather than at build). It ends when the facade is dropped.
    pub(crate) fn ensure_settling(&self) {
        let fence = &self.inner.fence;
        if fence.started.get().is_some() || fence.started.set(()).is_err() {
            return;
        }
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(strong) = inner.upgrade() else { return };
                settle(&strong).await;
                let wake = async { strong.fence.wake.notified().await };
                // Holding `strong` only while waiting on its own fence: dropped at the end of
                // the iteration, so a dropped facade ends the task at its next turn.
                tokio::select! {
                    () = tokio::time::sleep(SETTLE_EVERY) => {}
                    () = wake => {}
                }
            }
        });
    }
}

/// Applies owed invalidations to the cache and deletes them; lowers the fence when none
/// remain. A store that cannot be read leaves the fence as it is.
///
/// An outage under write load owes the same tags thousands of times (one debt per
/// acknowledged ingest): each batch read is applied as one invalidation per tenant with the
/// union of its tags, and a full batch is followed at once by the next, so the fence comes down
/// within moments of the cache returning rather than a batch per [`SETTLE_EVERY`].
async fn settle(inner: &Inner) {
    loop {
        let seen = inner.fence.raises_so_far();
        let Ok(owed) = inner.store.owed_invalidations().await else {
            return;
        };
        if owed.is_empty() {
            inner.fence.lower_unless_raised_since(seen);
            return;
        }
        inner.fence.raised.store(true, Ordering::Release);
        let mut tags_by_tenant: BTreeMap<&TenantId, BTreeSet<&Tag>> = BTreeMap::new();
        for debt in &owed {
            tags_by_tenant.entry(&debt.tenant).or_default().extend(&debt.tags);
        }
        let mut reached: HashSet<&TenantId> = HashSet::new();
        for (tenant, tags) in tags_by_tenant {
            let tags: Vec<Tag> = tags.into_iter().cloned().collect();
            if inner.cache.invalidate(tenant, &tags).await.is_err() {
                break;
            }
            reached.insert(tenant);
        }
        let applied: Vec<i64> = owed
            .iter()
            .filter(|debt| reached.contains(&debt.tenant))
            .map(|debt| debt.id)
            .collect();
        let settled = inner.store.settle_invalidations(&applied).await.is_ok();
        if !settled || applied.len() < owed.len() {
            return;
        }
        if owed.len() < MAX_OWED_READ {
            inner.fence.lower_unless_raised_since(seen);
            return;
        }
    }
}
