//! [`MokaCache`]: the in-process cache backend on moka.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CacheBackend, CacheEntry, CacheHit, CacheKey, CacheLookup, CacheStats, LookupCounters, Tag, classify};
use crate::FastHash;
use crate::error::Result;
use crate::model::TenantId;

/// Per-entry overhead counted in the byte bound besides key and value.
const ENTRY_OVERHEAD: usize = 96;

/// The embedded default cache: a bounded moka cache with per-entry expiry and versioned tags.
///
/// Freshness is judged against the `now` each call passes (the facade's [`Clock`]), so tests
/// drive it with a virtual clock. moka's own expiry — at each entry's `stale_until`, measured
/// on the real clock from insertion — only reclaims memory. The byte bound covers keys, values
/// and a fixed per-entry overhead; tag versions are kept per tenant and tag (a few per day of
/// data), outside the bound.
///
/// [`Clock`]: crate::clock::Clock
#[derive(Debug)]
pub struct MokaCache {
    entries: moka::sync::Cache<(TenantId, CacheKey), Arc<CacheEntry>, FastHash>,
    versions: RwLock<HashMap<TenantId, HashMap<Tag, u64, FastHash>, FastHash>>,
    counters: LookupCounters,
}

/// A borrowed `(TenantId, CacheKey)`: it hashes as the tuple does (its fields in order), so
/// moka finds an entry without the two strings being cloned for every look-up.
#[derive(Hash)]
struct KeyRef<'a>(&'a TenantId, &'a CacheKey);

impl moka::Equivalent<(TenantId, CacheKey)> for KeyRef<'_> {
    fn equivalent(&self, key: &(TenantId, CacheKey)) -> bool {
        *self.0 == key.0 && *self.1 == key.1
    }
}

struct ExpireAtStaleDeadline;

impl moka::Expiry<(TenantId, CacheKey), Arc<CacheEntry>> for ExpireAtStaleDeadline {
    fn expire_after_create(&self, _: &(TenantId, CacheKey), entry: &Arc<CacheEntry>, _: Instant) -> Option<Duration> {
        Some(
            (entry.stale_until - entry.created_at)
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }

    fn expire_after_update(
        &self,
        key: &(TenantId, CacheKey),
        entry: &Arc<CacheEntry>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, entry, now)
    }
}

impl MokaCache {
    /// A cache holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|(tenant, key): &(TenantId, CacheKey), entry: &Arc<CacheEntry>| {
                let bytes = tenant.as_str().len() + key.as_str().len() + entry.value.len() + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(ExpireAtStaleDeadline)
            .build_with_hasher(FastHash::default());
        Self {
            entries,
            versions: RwLock::default(),
            counters: LookupCounters::default(),
        }
    }

    /// Drops every entry (tag versions are kept, so nothing dropped can come back as current).
    /// For a local tier that may have missed invalidations.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Drops the entry under `key`, if any.
    pub fn remove(&self, tenant: &TenantId, key: &CacheKey) {
        self.entries.invalidate(&KeyRef(tenant, key));
    }
}

impl Default for MokaCache {
    /// 256 MiB.
    fn default() -> Self {
        Self::new(256 * 1024 * 1024)
    }
}

#[async_trait]
impl CacheBackend for MokaCache {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        let found = self.entries.get(&KeyRef(tenant, key));
        // One read of the versions for both the answer's tags and the entry's: each lock is a
        // write to a shared cache line.
        let (tag_versions, current) = {
            let versions = self.versions.read().unwrap_or_else(PoisonError::into_inner);
            let of_tenant = versions.get(tenant);
            let version = |tag: &Tag| of_tenant.and_then(|v| v.get(tag)).copied().unwrap_or(0);
            let tag_versions: Vec<(Tag, u64)> = tags.iter().map(|t| (t.clone(), version(t))).collect();
            let current = found
                .as_ref()
                .is_some_and(|entry| entry.tags.iter().all(|(tag, v)| version(tag) == *v));
            (tag_versions, current)
        };
        let hit = found.and_then(|entry| {
            let freshness = classify(&entry, current, now)?;
            Some(CacheHit { entry, freshness })
        });
        self.counters.record(hit.as_ref().map(|h| h.freshness));
        Ok(CacheLookup { hit, tag_versions })
    }

    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        if entry.stale_until > now {
            self.entries.insert((tenant.clone(), key.clone()), Arc::new(entry));
        }
        Ok(())
    }

    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        let mut versions = self.versions.write().unwrap_or_else(PoisonError::into_inner);
        let of_tenant = versions.entry(tenant.clone()).or_default();
        for tag in tags {
            *of_tenant.entry(tag.clone()).or_insert(0) += 1;
        }
        Ok(())
    }

    async fn stats(&self) -> Result<CacheStats> {
        self.entries.run_pending_tasks();
        Ok(self
            .counters
            .stats(self.entries.entry_count(), self.entries.weighted_size()))
    }
}
