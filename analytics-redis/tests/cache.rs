//! The Redis caches on real servers: core's cache suite on a standalone server and on a
//! three-master cluster, eviction, and two instances kept coherent.

mod support;

use std::sync::Arc;
use std::time::Duration;

use analytics_core::cache::{CacheBackend, CacheEntry, CacheKey, Freshness, MokaCache, Tag};
use analytics_core::model::TenantId;
use analytics_core::testkit::{self, SuiteOptions};
use analytics_redis::{RedisCache, RedisConfig, TieredCache};
use chrono::{DateTime, TimeDelta, Utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_conforms() {
    let Some(config) = support::standalone("cache") else {
        return;
    };
    let cache = RedisCache::connect(&config).await.unwrap();
    testkit::cache::run_all(Arc::new(cache), SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_conforms_on_a_cluster() {
    let Some(config) = support::cluster("cache-cluster") else {
        return;
    };
    let cache = RedisCache::connect(&config).await.unwrap();
    testkit::cache::run_all(Arc::new(cache), SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_cache_conforms() {
    let Some(config) = support::standalone("tiered") else {
        return;
    };
    let cache = TieredCache::connect(&config, MokaCache::default()).await.unwrap();
    assert!(cache.is_coherent());
    testkit::cache::run_all(Arc::new(cache), SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_cache_conforms_on_a_cluster() {
    let Some(config) = support::cluster("tiered-cluster") else {
        return;
    };
    let cache = TieredCache::connect(&config, MokaCache::default()).await.unwrap();
    assert!(cache.is_coherent());
    testkit::cache::run_all(Arc::new(cache), SuiteOptions::exact()).await;
}

fn now() -> DateTime<Utc> {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// Stores `value` under `key` as the facade does (versions read first), fresh for a minute.
async fn put(cache: &dyn CacheBackend, key: &CacheKey, tags: &[Tag], value: &[u8]) {
    let versions = cache.get(&tenant(), key, tags, now()).await.unwrap().tag_versions;
    let entry = CacheEntry {
        value: value.to_vec().into(),
        created_at: now(),
        fresh_until: now() + TimeDelta::seconds(60),
        stale_until: now() + TimeDelta::seconds(120),
        tags: versions,
    };
    cache.set(&tenant(), key, entry, now()).await.unwrap();
}

async fn freshness(cache: &dyn CacheBackend, key: &CacheKey, tags: &[Tag]) -> Option<Freshness> {
    cache
        .get(&tenant(), key, tags, now())
        .await
        .unwrap()
        .hit
        .map(|h| h.freshness)
}

/// A plain connection to the standalone server, for what a test does behind the cache's back.
async fn raw() -> redis::aio::MultiplexedConnection {
    let url = std::env::var("REDIS_URL").unwrap();
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_evicted_tag_version_never_brings_a_stale_entry_back() {
    let Some((config, prefix)) = support::standalone_with_prefix("eviction") else {
        return;
    };
    let cache = RedisCache::connect(&config).await.unwrap();
    let key = CacheKey::from_text("summary:1");
    let tags = [Tag::tenant(), Tag::month(2024, 4)];
    put(&cache, &key, &tags, b"v1").await;
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
    let before = cache.get(&tenant(), &key, &tags, now()).await.unwrap().tag_versions;

    // Redis under memory pressure evicts the month's version key.
    let mut conn = raw().await;
    let evicted: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:{{t:acme}}:v:month:2024-04"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(evicted, 1, "the version key exists where the key layout says");

    // The entry's version is gone: it reads as invalidated — and stays so after the lookup
    // recreates the version, which starts above anything the tag had.
    assert_eq!(freshness(&cache, &key, &[]).await, Some(Freshness::Invalidated));
    let after = cache.get(&tenant(), &key, &tags, now()).await.unwrap().tag_versions;
    assert_eq!(after[0], before[0]);
    assert!(after[1].1 > before[1].1, "{after:?} vs {before:?}");
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Invalidated));
    // Recomputed and stored with the new version, the entry is fresh again.
    put(&cache, &key, &tags, b"v2").await;
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_reaches_the_local_tier_of_another() {
    let Some(config) = support::standalone("two-instances") else {
        return;
    };
    let a = TieredCache::connect(&config, MokaCache::default()).await.unwrap();
    let b = TieredCache::connect(&config, MokaCache::default()).await.unwrap();
    assert!(a.is_coherent() && b.is_coherent());
    let key = CacheKey::from_text("summary:shared");
    let tags = [Tag::tenant(), Tag::month(2024, 4)];
    put(&a, &key, &tags, b"v1").await;
    // B reads it from Redis into its local tier, then answers from there.
    assert_eq!(freshness(&b, &key, &tags).await, Some(Freshness::Fresh));
    let local_before = b.local_hits();
    assert_eq!(freshness(&b, &key, &tags).await, Some(Freshness::Fresh));
    assert_eq!(b.local_hits(), local_before + 1, "served by B's local tier");

    let mut received = b.invalidations_received();
    let seen = *received.borrow_and_update();
    a.invalidate(&tenant(), &[Tag::month(2024, 4)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), received.wait_for(|n| *n > seen))
        .await
        .expect("B receives the broadcast")
        .unwrap();
    assert_eq!(
        freshness(&b, &key, &tags).await,
        Some(Freshness::Invalidated),
        "B's local copy is no longer served"
    );
    assert_eq!(freshness(&a, &key, &tags).await, Some(Freshness::Invalidated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubscription_flushes_the_local_tier() {
    let Some(config) = support::standalone("resubscribe") else {
        return;
    };
    let cache = TieredCache::connect(&config, MokaCache::default()).await.unwrap();
    let key = CacheKey::from_text("summary:local");
    let tags = [Tag::tenant()];
    put(&cache, &key, &tags, b"v1").await;
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
    let local_hits = cache.local_hits();
    assert!(local_hits >= 1);

    // The server drops every pub/sub connection: messages may be lost until the subscriber is
    // back, so the local tier must be flushed.
    let mut subscriptions = cache.subscriptions();
    let before = *subscriptions.borrow_and_update();
    let mut conn = raw().await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), subscriptions.wait_for(|n| *n > before))
        .await
        .expect("the subscriber comes back")
        .unwrap();
    assert!(cache.is_coherent());
    // The next lookup finds nothing locally and goes to Redis (still fresh there).
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
    assert_eq!(cache.local_hits(), local_hits, "the local copy was flushed");
    assert_eq!(freshness(&cache, &key, &tags).await, Some(Freshness::Fresh));
    assert_eq!(cache.local_hits(), local_hits + 1, "and copied again");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    // Port 1 refuses connections: no server needed.
    let config = RedisConfig::new("redis://127.0.0.1:1").connection_timeout(Duration::from_secs(1));
    let error = RedisCache::connect(&config).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
