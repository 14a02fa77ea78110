//! The embedded defaults run the conformance suites (the adapters run the same ones).

use std::sync::Arc;

use analytics_core::cache::MokaCache;
use analytics_core::store::MemoryStore;
use analytics_core::testkit::{self, SuiteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    testkit::store::run_all(Arc::new(MemoryStore::new()), SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moka_cache_conforms() {
    testkit::cache::run_all(Arc::new(MokaCache::default()), SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_rate_limit_store_conforms() {
    use analytics_core::resilience::InProcessRateLimitStore;
    use analytics_core::testkit::rate_limit::{self, StoreTime};
    rate_limit::run_all(
        Arc::new(InProcessRateLimitStore::new()),
        StoreTime::Caller,
        SuiteOptions::exact(),
    )
    .await;
}

#[tokio::test]
async fn no_cache_counts_only_misses() {
    use analytics_core::cache::{CacheBackend, CacheKey, NoCache, Tag};
    let cache = NoCache::default();
    let tenant = analytics_core::model::TenantId::parse("t").unwrap();
    let lookup = cache
        .get(&tenant, &CacheKey::from_text("k"), &[Tag::tenant()], chrono::Utc::now())
        .await
        .unwrap();
    assert!(lookup.hit.is_none());
    assert_eq!(lookup.tag_versions, vec![(Tag::tenant(), 0)]);
    assert_eq!(cache.stats().await.unwrap().misses, 1);
}
