//! Caching: the backend contract ([`CacheBackend`]), what is cached and for how long
//! ([`policy`]), and the in-process backends ([`MokaCache`], [`NoCache`]).
//!
//! Invalidation is by versioned tags: every tag has a version counter, an entry remembers the
//! versions of its tags when it was computed, and invalidating a tag increments its counter —
//! O(1) per tag, no per-tag key sets. An entry whose tag versions are not all current is
//! *invalidated*: never served as fresh, but still usable as a labelled stale fallback when the
//! store is down.

#[cfg(feature = "moka")]
mod moka;
pub mod policy;
pub(crate) mod single_flight;

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "moka")]
pub use self::moka::MokaCache;
pub use policy::{TtlPolicy, TtlTier};

use crate::error::Result;
use crate::model::TenantId;
use crate::model::tenant::hex;
use crate::query::Query;

/// A cache tag, scoped to a tenant by every backend call: `tenant`, `date:2024-01-31`,
/// `month:2024-01`, `realtime`. Shared text: every cache look-up copies its query's tags with
/// their versions.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag(Arc<str>);

impl Tag {
    /// The tag every entry of a tenant carries; bumping it clears the tenant.
    pub fn tenant() -> Self {
        Self(Arc::from("tenant"))
    }
    /// The tag of entries whose range reaches the present.
    pub fn realtime() -> Self {
        Self(Arc::from("realtime"))
    }
    /// The tag of one UTC date.
    pub fn date(date: chrono::NaiveDate) -> Self {
        // Not `date.format("%Y-%m-%d")`: parsing the format string showed in the cached path's
        // profile. Years are within 1970–9999 here, so the widths are exact.
        use chrono::Datelike;
        Self(Arc::from(format!(
            "date:{:04}-{:02}-{:02}",
            date.year(),
            date.month(),
            date.day()
        )))
    }
    /// The tag of one whole UTC month.
    pub fn month(year: i32, month: u32) -> Self {
        Self(Arc::from(format!("month:{year:04}-{month:02}")))
    }
    /// A tag from its text, as a backend reads it back from storage.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(Arc::from(text.into()))
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.0, f)
    }
}

/// A cache key within a tenant's namespace. Shared text: a query keeps its key, and every
/// cached request clones the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// `summary:` + 128 bits of SHA-256 of the query's canonical text: stable across processes
    /// and versions, so instances sharing a cache agree.
    pub fn for_query(query: &Query) -> Self {
        let digest = Sha256::digest(query.canonical().as_bytes());
        Self(Arc::from(format!("summary:{}", hex(&digest[..16]))))
    }

    /// A key from its text (for backends reading keys back, and tests).
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(Arc::from(text.into()))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tags with the versions they had at some moment.
pub type TagVersions = Vec<(Tag, u64)>;

/// A cached value with its deadlines and the tag versions it was computed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The serialized value.
    pub value: Arc<[u8]>,
    /// When the value was computed.
    pub created_at: DateTime<Utc>,
    /// Until when it may be served as fresh.
    pub fresh_until: DateTime<Utc>,
    /// Until when it may be served as stale (≥ `fresh_until`); after that it is gone.
    pub stale_until: DateTime<Utc>,
    /// Its tags, with the versions read *before* the value was computed.
    pub tags: TagVersions,
}

/// How usable a found entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Freshness {
    /// Tags current and within `fresh_until`.
    Fresh,
    /// Tags current, past `fresh_until`, within `stale_until`.
    Stale,
    /// A tag was invalidated since; within `stale_until`. Only for labelled fallbacks.
    Invalidated,
}

/// A found entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    /// The entry, shared with the backend's copy where it keeps one in process (a hit is then
    /// no copy of its tags).
    pub entry: Arc<CacheEntry>,
    /// Its state at lookup time.
    pub freshness: Freshness,
}

/// The answer to [`CacheBackend::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLookup {
    /// The entry, if one exists within its stale window.
    pub hit: Option<CacheHit>,
    /// The current versions of the tags asked about, to store with a recomputed value.
    pub tag_versions: TagVersions,
}

/// Counters and size of a cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// Lookups answered fresh.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Lookups that found a stale or invalidated entry.
    pub stale_hits: u64,
    /// `hits / (hits + misses + stale_hits)` in percent; 0 before any lookup.
    pub hit_rate: f64,
    /// Entries held (approximate for concurrent backends).
    pub entries: u64,
    /// Bytes held by values and keys (approximate).
    pub bytes: u64,
}

impl CacheStats {
    /// Fills `hit_rate` from the counters.
    pub fn with_hit_rate(mut self) -> Self {
        let lookups = self.hits + self.misses + self.stale_hits;
        self.hit_rate = if lookups == 0 {
            0.0
        } else {
            (self.hits as f64 * 10_000.0 / lookups as f64).round() / 100.0
        };
        self
    }
}

/// Lookup counters for a backend's [`CacheStats`]: one count per lookup, by what it found.
#[derive(Debug, Default)]
pub struct LookupCounters {
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
    stale_hits: std::sync::atomic::AtomicU64,
}

impl LookupCounters {
    /// Counts a lookup that found an entry of `freshness` (fresh → hit, stale or invalidated →
    /// stale hit), or nothing (`None` → miss).
    pub fn record(&self, freshness: Option<Freshness>) {
        let counter = match freshness {
            Some(Freshness::Fresh) => &self.hits,
            Some(Freshness::Stale | Freshness::Invalidated) => &self.stale_hits,
            None => &self.misses,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts so far, in stats with the given size (`entries`, `bytes`) and the hit rate.
    pub fn stats(&self, entries: u64, bytes: u64) -> CacheStats {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        CacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            stale_hits: load(&self.stale_hits),
            hit_rate: 0.0,
            entries,
            bytes,
        }
        .with_hit_rate()
    }
}

/// Classifies an entry at `now` given whether its tags are current; `None` once past its stale
/// deadline. Backends use this so they all agree on freshness.
pub fn classify(entry: &CacheEntry, tags_current: bool, now: DateTime<Utc>) -> Option<Freshness> {
    if now >= entry.stale_until {
        None
    } else if !tags_current {
        Some(Freshness::Invalidated)
    } else if now < entry.fresh_until {
        Some(Freshness::Fresh)
    } else {
        Some(Freshness::Stale)
    }
}

/// Storage for cached values with versioned-tag invalidation.
///
/// Every call names the tenant; keys and tags of different tenants never interact.
#[async_trait]
pub trait CacheBackend: Send + Sync + Debug {
    /// Looks `key` up at `now`, and reads the current versions of `tags`.
    ///
    /// # Behavior
    /// Returns the entry classified by [`classify`] (its tags are current when every stored tag
    /// version equals the tag's current version), or no hit when there is none or it is past
    /// `stale_until`. Counts the lookup in the stats: fresh → hit, stale or invalidated → stale
    /// hit, none → miss.
    ///
    /// Versions are opaque: a backend picks them, but a tag's version must change at every
    /// invalidation and never take a value it had before. It may also change when the backend
    /// loses it (an evicted Redis key), which only ever makes entries invalid, never valid.
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup>;

    /// Stores `entry` under `key`, replacing any previous one, until `entry.stale_until`.
    ///
    /// # Behavior
    /// `entry.tags` carries versions read before the value was computed; if a tag was
    /// invalidated meanwhile, the entry is stored but reads as invalidated, so a write that
    /// raced the computation is never hidden.
    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()>;

    /// Increments the version of each tag, invalidating every entry that carries one.
    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()>;

    /// Invalidates every entry of the tenant (bumps [`Tag::tenant`], which every entry carries).
    async fn clear_tenant(&self, tenant: &TenantId) -> Result<()> {
        self.invalidate(tenant, &[Tag::tenant()]).await
    }

    /// Counters and size.
    async fn stats(&self) -> Result<CacheStats>;

    /// Makes this instance's own copies of the tags' entries invalid, without telling other
    /// instances: called when another instance's change notice arrives, before the live
    /// summaries it concerns are recomputed (the writer has already invalidated whatever is
    /// shared). Default: [`invalidate`](Self::invalidate), right for an in-process cache (all of
    /// it is this instance's own). A shared cache without a local tier does nothing; one with a
    /// local tier invalidates that tier (its own broadcast may arrive after the notice).
    async fn invalidate_local(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.invalidate(tenant, tags).await
    }
}

/// A backend that stores nothing: every lookup misses. For deployments that want no caching.
#[derive(Debug, Default)]
pub struct NoCache {
    misses: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl CacheBackend for NoCache {
    async fn get(&self, _: &TenantId, _: &CacheKey, tags: &[Tag], _: DateTime<Utc>) -> Result<CacheLookup> {
        self.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(CacheLookup {
            hit: None,
            tag_versions: tags.iter().map(|t| (t.clone(), 0)).collect(),
        })
    }

    async fn set(&self, _: &TenantId, _: &CacheKey, _: CacheEntry, _: DateTime<Utc>) -> Result<()> {
        Ok(())
    }

    async fn invalidate(&self, _: &TenantId, _: &[Tag]) -> Result<()> {
        Ok(())
    }

    async fn stats(&self) -> Result<CacheStats> {
        let misses = self.misses.load(std::sync::atomic::Ordering::Relaxed);
        Ok(CacheStats {
            misses,
            ..CacheStats::default()
        }
        .with_hit_rate())
    }
}
