//! Writes stay acknowledged while the cache is down, and no answer cached before the outage is
//! served after it: the owed invalidations are recorded in the store, the owing instance stops
//! using its cache, and every instance settles them (tokio's paused clock drives the period).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use analytics_core::cache::{CacheBackend, CacheEntry, CacheKey, CacheLookup, CacheStats, MokaCache, Tag};
use analytics_core::model::{EventInput, TenantId};
use analytics_core::query::SummaryRequest;
use analytics_core::store::{EventStore, MAX_OWED_READ, MemoryStore};
use analytics_core::{Analytics, Error, Result, SETTLE_EVERY};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

/// One instance's connection to a shared cache, which can be cut (`down`).
#[derive(Debug)]
struct Link {
    cache: Arc<MokaCache>,
    down: AtomicBool,
    /// Invalidations that reached the cache.
    invalidations: AtomicUsize,
}

impl Link {
    fn to(cache: &Arc<MokaCache>) -> Arc<Self> {
        Arc::new(Self {
            cache: cache.clone(),
            down: AtomicBool::new(false),
            invalidations: AtomicUsize::new(0),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::unavailable("cache unreachable"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl CacheBackend for Link {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        self.check()?;
        self.cache.get(tenant, key, tags, now).await
    }
    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        self.check()?;
        self.cache.set(tenant, key, entry, now).await
    }
    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.check()?;
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(tenant, tags).await
    }
    async fn stats(&self) -> Result<CacheStats> {
        self.check()?;
        self.cache.stats().await
    }
}

fn instance(store: &Arc<MemoryStore>, link: &Arc<Link>) -> Analytics {
    Analytics::builder()
        .store(store.clone())
        .cache(link.clone())
        .build()
        .unwrap()
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn click(id: &str) -> EventInput {
    serde_json::from_value(json!({"id": id, "eventType": "click", "timestamp": "2024-01-05T10:00:00Z"})).unwrap()
}

fn january() -> SummaryRequest {
    SummaryRequest::new("2024-01-01", "2024-01-31")
}

/// (total, cached) of the January summary.
async fn read(analytics: &Analytics) -> (u64, bool) {
    let summary = analytics.summary(&acme(), &january()).await.unwrap();
    (summary.body.total_events, summary.metadata.cached)
}

/// Lets the settling tasks run their next turn.
async fn next_settlement() {
    tokio::time::sleep(SETTLE_EVERY).await;
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn no_answer_cached_before_an_outage_is_served_after_it() {
    let (store, cache) = (Arc::new(MemoryStore::new()), Arc::new(MokaCache::default()));
    let link = Link::to(&cache);
    let analytics = instance(&store, &link);
    analytics.ingest(&acme(), vec![click("e1")]).await.unwrap();
    assert_eq!(read(&analytics).await, (1, false));
    assert_eq!(read(&analytics).await, (1, true), "cached before the outage");

    link.set_down(true);
    let outcome = analytics.ingest(&acme(), vec![click("e2")]).await.unwrap();
    assert_eq!(outcome.accepted.len(), 1, "the write is acknowledged during the outage");
    assert_eq!(store.owed_invalidations().await.unwrap().len(), 1);
    assert_eq!(read(&analytics).await, (2, false));

    // The cache is back, still holding the answer of one event under unchanged tag versions:
    // it must not be served.
    link.set_down(false);
    assert_eq!(read(&analytics).await, (2, false), "fenced until the debt is settled");
    assert!(
        !analytics.health().await.cache_trusted,
        "health says the cache is fenced"
    );
    next_settlement().await;
    assert!(store.owed_invalidations().await.unwrap().is_empty(), "settled");
    assert!(analytics.health().await.cache_trusted, "and that it is trusted again");
    assert_eq!(read(&analytics).await, (2, false), "the old entry was invalidated");
    assert_eq!(read(&analytics).await, (2, true), "and the cache is used again");
}

#[tokio::test(start_paused = true)]
async fn another_instance_settles_what_it_finds_within_a_period() {
    let (store, cache) = (Arc::new(MemoryStore::new()), Arc::new(MokaCache::default()));
    let (link_a, link_b) = (Link::to(&cache), Link::to(&cache));
    let (a, b) = (instance(&store, &link_a), instance(&store, &link_b));
    a.ingest(&acme(), vec![click("e1")]).await.unwrap();
    assert_eq!(read(&b).await, (1, false));
    assert_eq!(read(&b).await, (1, true));

    // A is cut off from the cache B still reaches (a partial partition), and ingests.
    link_a.set_down(true);
    a.ingest(&acme(), vec![click("e2")]).await.unwrap();
    assert_eq!(read(&a).await, (2, false), "the writer reads its write at once");
    // B may serve its cached answer until its next look at the store — the documented bound —
    // and not after: B applies the invalidation through its own link.
    next_settlement().await;
    assert_eq!(read(&b).await.0, 2, "fresh within one settling period");
    assert!(
        store.owed_invalidations().await.unwrap().is_empty(),
        "B settled A's debt"
    );
    link_a.set_down(false);
    next_settlement().await;
    assert_eq!(read(&a).await.0, 2);
}

#[tokio::test(start_paused = true)]
async fn a_long_outage_is_settled_in_one_turn_with_one_invalidation_per_tenant_and_batch() {
    let (store, cache) = (Arc::new(MemoryStore::new()), Arc::new(MokaCache::default()));
    let link = Link::to(&cache);
    let analytics = instance(&store, &link);
    let beta = TenantId::parse("beta").unwrap();
    link.set_down(true);
    // More debts than one read returns, of two tenants: one per acknowledged ingest.
    let writes = 2 * MAX_OWED_READ + MAX_OWED_READ / 2;
    for i in 0..writes {
        let tenant = if i % 2 == 0 { acme() } else { beta.clone() };
        analytics.ingest(&tenant, vec![click(&format!("e{i}"))]).await.unwrap();
    }
    link.set_down(false);
    next_settlement().await;
    assert!(
        store.owed_invalidations().await.unwrap().is_empty(),
        "all settled in one turn"
    );
    let batches = writes.div_ceil(MAX_OWED_READ);
    assert_eq!(
        link.invalidations.load(Ordering::SeqCst),
        2 * batches,
        "one invalidation per tenant per batch read"
    );
    let acme_events = u64::try_from(writes.div_ceil(2)).unwrap();
    assert_eq!(read(&analytics).await, (acme_events, false));
    assert_eq!(read(&analytics).await, (acme_events, true), "the cache is used again");
}
