//! A tenant's own cache figures. A tenant sees how its own summaries were answered; the cache's
//! process-wide counts (every tenant's traffic, entries, bytes) are for operators only.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::Analytics;
use crate::model::TenantId;

/// How one summary was answered, as counted for its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    /// From the cache, fresh.
    Hit,
    /// From the cache, past its freshness or invalidated.
    StaleHit,
    /// Computed by the store.
    Miss,
}

/// One tenant's counts.
#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    stale_hits: AtomicU64,
    misses: AtomicU64,
}

/// Counts per tenant (only tenants that asked for a summary have an entry).
#[derive(Debug, Default)]
pub(crate) struct TenantCacheCounts {
    by_tenant: papaya::HashMap<TenantId, Counts, crate::FastHash>,
}

impl TenantCacheCounts {
    /// Counts one answer of `tenant`.
    pub(crate) fn record(&self, tenant: &TenantId, answered: Answered) {
        let map = self.by_tenant.pin();
        let counts = match map.get(tenant) {
            Some(counts) => counts,
            None => map.get_or_insert_with(tenant.clone(), Counts::default),
        };
        let counter = match answered {
            Answered::Hit => &counts.hits,
            Answered::StaleHit => &counts.stale_hits,
            Answered::Miss => &counts.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self, tenant: &TenantId) -> TenantCacheStats {
        let map = self.by_tenant.pin();
        let Some(counts) = map.get(tenant) else {
            return TenantCacheStats::default();
        };
        let (hits, stale_hits, misses) = (
            counts.hits.load(Ordering::Relaxed),
            counts.stale_hits.load(Ordering::Relaxed),
            counts.misses.load(Ordering::Relaxed),
        );
        let answers = hits + stale_hits + misses;
        TenantCacheStats {
            hits,
            stale_hits,
            misses,
            hit_rate: if answers == 0 {
                0.0
            } else {
                hits as f64 * 100.0 / answers as f64
            },
        }
    }
}

/// How a tenant's summaries were answered since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TenantCacheStats {
    /// Answered from the cache, fresh.
    pub hits: u64,
    /// Answered from the cache past freshness (stale-while-revalidate, or during an outage).
    pub stale_hits: u64,
    /// Computed by the store.
    pub misses: u64,
    /// `hits / (hits + staleHits + misses)` in percent; 0 before any summary.
    pub hit_rate: f64,
}

impl Analytics {
    /// How `tenant`'s summaries were answered: its own counts only, never another tenant's
    /// (process-wide figures: [`cache_stats`](Self::cache_stats), for operators).
    pub fn tenant_cache_stats(&self, tenant: &TenantId) -> TenantCacheStats {
        self.inner.tenant_counts.stats(tenant)
    }
}
